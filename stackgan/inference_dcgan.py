"""DCGAN inference: a trained DCGAN run (folder, checkpoint or G.safetensors) -> pictures by seed.

The DCGAN side of the sampler interface of :mod:`stackgan.inference`::

    pipe = load_dcgan_pipeline("runs/dcgan/menu-64x64")   # or stackgan.inference.load_sampler(path)
    pipe.sample([1, 2, 3])                                # [3, C, H, W] float32 in [-1, 1], CPU
    pipe.variations(4, n=8, sigma=0.5, noise_seed=1)      # picture 0 is seed 4's, the rest near it

The picture of seed ``s`` is ``G(make_z([s], ...))``: its z is drawn on the CPU from ``s`` alone
(:func:`stackgan.models.dcgan.make_z`), so it is the same picture in any batch and on any device.
The DCGAN is unconditional: it takes no dish name. Runs are read as :mod:`stackgan.runs` says.

The free functions :func:`load_dcgan_generator`, :func:`generate_images` and :func:`sample_dcgan`
(also importable from :mod:`stackgan.train.dcgan`, which draws its training grids with
:func:`generate_images`) are the lower-level API. This module loads neither training code nor Flask.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import torch

from stackgan.dcgan_config import DCGANConfig
from stackgan.errors import UserError
from stackgan.models.dcgan import Generator, generator, make_z
from stackgan.runs import DCGAN, RunFolder


def load_dcgan_generator(path: str | os.PathLike, device: str | torch.device = "cpu"
                         ) -> tuple[Generator, DCGANConfig]:
    """G (in eval mode, on ``device``) and its config from a ``ckpt-*.pt``, a run folder, or
    ``G.safetensors`` with its ``config.json`` (read as :mod:`stackgan.runs` says)."""
    return _load(RunFolder.open(path), device)


def _load(run: RunFolder, device: str | torch.device) -> tuple[Generator, DCGANConfig]:
    cfg = run.require(DCGAN)
    return run.load_into(generator(cfg), check_finite=True).to(device).eval(), cfg


@torch.no_grad()
def generate_images(G: Generator, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Images in [-1, 1] (CPU) for the latents ``z``, with G in eval mode (BatchNorm's running
    statistics), restoring G's mode afterwards."""
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    try:
        out = [G(z[i:i + batch_size].to(device)).float().cpu() for i in range(0, z.shape[0], batch_size)]
    finally:
        G.train(was_training)
    return torch.cat(out)


def sample_dcgan(G: Generator, cfg: DCGANConfig, seeds: Sequence[int], truncation: float = 1.0) -> torch.Tensor:
    """One image per seed (the same seed gives the same image on any device)."""
    return generate_images(G, make_z(list(seeds), cfg.z_dim, cfg.z_dist, truncation=truncation))


def load_dcgan_pipeline(path: str | os.PathLike, device: str | torch.device = "cpu") -> "DCGANPipeline":
    """A :class:`DCGANPipeline` from a run or model folder, a ``ckpt-*.pt`` or a ``G.safetensors``
    beside its ``config.json``; the errors are those of :func:`load_dcgan_generator`."""
    return DCGANPipeline.from_run(RunFolder.open(path), device)


class DCGANPipeline:
    """A trained DCGAN generator behind the sampler interface of :mod:`stackgan.inference`
    (``kind``, ``image_size``, ``sample``). Always fp32."""

    kind = DCGAN

    def __init__(self, G: Generator, cfg: DCGANConfig, source: str | os.PathLike | None = None,
                 extra: dict[str, Any] | None = None):
        self.G = G.eval().requires_grad_(False)
        self.cfg = cfg
        self.source = str(source) if source is not None else None
        self.extra = extra or {}

    @classmethod
    def from_run(cls, run: RunFolder, device: str | torch.device = "cpu") -> "DCGANPipeline":
        """The generator of an opened run (a CheckpointError when it is not a DCGAN run)."""
        from stackgan.utils.device import resolve_device

        device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        G, cfg = _load(run, device)
        return cls(G, cfg, source=run.path, extra={"step": run.weights()[1].get("step")})

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the pictures."""
        return self.cfg.size

    @property
    def channels(self) -> int:
        return self.cfg.channels

    def _refuse_name(self, name: str | None) -> None:
        if name is not None:
            where = f"{self.source} is" if self.source else "this is"
            raise UserError(f"{where} an unconditional DCGAN: it takes no dish name (got {name!r}); "
                            f"drop the name, or use a StackGAN model")

    def sample(self, seeds: Iterable[int], name: str | None = None, truncation: float = 1.0) -> torch.Tensor:
        """One picture per seed: float32 [len(seeds), C, H, W] in [-1, 1] on the CPU. ``truncation``
        scales z towards its mean (0). ``name`` must be None: a DCGAN draws no names."""
        self._refuse_name(name)
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise UserError("sample needs at least one seed")
        return sample_dcgan(self.G, self.cfg, seeds, truncation=truncation)

    def variations(self, seed: int, n: int, sigma: float, truncation: float = 1.0, noise_seed: int = 0
                   ) -> torch.Tensor:
        """``n`` pictures near the picture of ``seed``: picture 0 is that picture, picture i > 0 adds
        ``sigma`` x N(0, I) noise drawn from seed ``noise_seed + i`` to its (truncated) z, clamped to
        [-1, 1] for a uniform z. Float32 [n, C, H, W] in [-1, 1] on the CPU."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"n must be an integer >= 1, got {n!r}")
        cfg = self.cfg
        z0 = make_z([seed], cfg.z_dim, cfg.z_dist, truncation=truncation)
        eps = make_z([noise_seed + i for i in range(n)], cfg.z_dim, "normal")
        eps[0] = 0
        z = z0 + sigma * eps
        if cfg.z_dist == "uniform":
            z = z.clamp(-1, 1)
        return generate_images(self.G, z)

    def info(self) -> dict[str, Any]:
        h, w = self.image_size
        step = self.extra.get("step")
        return {"model": DCGAN, "height": h, "width": w, "channels": self.cfg.channels, "z_dim": self.cfg.z_dim,
                "z_dist": self.cfg.z_dist, "step": int(step) if str(step or "").isdigit() else None,
                "device": str(self.device), "precision": "fp32"}

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"DCGANPipeline({self.source!r}, {h}x{w}x{self.cfg.channels})"
