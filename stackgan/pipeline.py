"""A diffusers-style front for :class:`stackgan.inference.Pipeline`: PIL pictures in, folders out.

    from stackgan import StackGANPipeline

    pipe = StackGANPipeline.from_pretrained("models/default")    # or any run folder / ckpt-*.pt
    out = pipe("月見カレーうどん", num_images=4, seed=1)
    out.images[0].save("udon.png")                            # stage II when the model has one
    out.stage1, out.seeds                                      # the stage-I pictures, one seed each
    pipe.save_pretrained("my-model")                           # loads with from_pretrained and `stackgan serve`

``variations``, ``explore`` and ``neighbours`` are those of the inference API, with PIL outputs.
Picture i of a call is drawn from seed ``seed + i`` alone, so it is the same for any ``num_images``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from stackgan.inference import Pipeline, Result, load_pipeline


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """[n, 3, H, W] pictures in [-1, 1] -> n RGB PIL images."""
    from stackgan.utils import viz

    return [viz.to_pil(a) for a in viz.to_uint8(images)]


@dataclass
class StackGANPipelineOutput:
    """``images``: the final pictures (stage II when the model has one), ``stage1``: the stage-I
    pictures, ``seeds``: one per picture; ``tensors``: the raw :class:`stackgan.inference.Result`."""

    images: list[Image.Image]
    stage1: list[Image.Image]
    seeds: list[int]
    tensors: Result

    @classmethod
    def of(cls, res: Result) -> "StackGANPipelineOutput":
        return cls(to_pil(res.images), to_pil(res.stage1), list(res.seeds), res)


class StackGANPipeline:
    """Text -> pictures with a trained StackGAN (one or two stages) and the names it knows."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        precision: str = "fp32") -> "StackGANPipeline":
        """Load a model folder (``models/default``, a folder written by :meth:`save_pretrained`), a run
        folder or a ``ckpt-*.pt``. ``path`` None: ``$STACKGAN_CHECKPOINT``, else the shipped model.
        Nothing is downloaded: a path that is not there is an error (the text encoder, for names the
        model was not trained on, loads from the local cache as in ``stackgan embed``)."""
        if path is None:
            from stackgan.defaults import default_model

            path = default_model()
        return cls(load_pipeline(path, device=device, precision=precision))

    # -- drawing -----------------------------------------------------------------------------------
    def __call__(self, name: str, num_images: int = 1, seed: int | None = None,
                 truncation: float = 1.0) -> StackGANPipelineOutput:
        """``num_images`` pictures of ``name`` (a random seed when None)."""
        return StackGANPipelineOutput.of(self.pipeline.generate(name, n=num_images, seed=seed, truncation=truncation))

    def variations(self, name: str, seed: int, num_images: int = 8, sigma: float = 0.5) -> StackGANPipelineOutput:
        """Pictures near picture ``seed`` of ``name`` (z moved by ``sigma``)."""
        return StackGANPipelineOutput.of(self.pipeline.variations(name, seed=seed, n=num_images, sigma=sigma))

    def explore(self, name: str, seed: int, offsets: Sequence[float]) -> StackGANPipelineOutput:
        """Picture ``seed`` of ``name`` moved along the model's main directions of z by ``offsets``."""
        return StackGANPipelineOutput.of(self.pipeline.explore(name, seed=seed, offsets=offsets))

    def neighbours(self, name: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` training names nearest to ``name`` (cosine of sentence vectors)."""
        return self.pipeline.neighbours(name, k)

    @property
    def names(self) -> list[str]:
        return list(self.pipeline.names)

    def info(self) -> dict:
        return self.pipeline.info()

    # -- saving ------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike, fp16: bool = False) -> Path:
        """Write what inference needs (config, EMA generator weights, stage1/ for a two-stage model,
        names with their sentence vectors, metrics) to ``folder``; no checkpoints or optimiser states."""
        return self.pipeline.save_pretrained(folder, fp16=fp16)
