"""The small inference API: a trained StackGAN run folder (or checkpoint) -> pictures of dish names,
and the one sampler interface over StackGAN and the DCGAN baseline.

Used by ``stackgan generate``, the web page and evaluation::

    pipe = load_pipeline("runs/stage2-menu")          # or a ckpt-*.pt, or G_ema.safetensors
    res = pipe.generate("ピリ辛サーモン丼", n=8, seed=1)  # res.stage1 [8, 3, 64, 64], res.stage2 or None
    pipe.variations("ピリ辛サーモン丼", seed=3, n=8, sigma=0.5)
    pipe.explore("ピリ辛サーモン丼", seed=3, offsets=[1.0, 0, -0.5, 0])
    pipe.neighbours("ピリ辛サーモン丼", k=5)           # [(training name, cosine), ...]
    pipe.info()

Image ``i`` of ``generate(name, n, seed)`` is drawn from seed ``seed + i`` alone (z, then the
conditioning noise of stage I, then of stage II, from a CPU generator), so it is the same picture
for any ``n`` and on any device. Names the run was trained on use the stored sentence vectors;
new names are encoded with the run's text encoder, loaded lazily once, and cached.

Any run, StackGAN or DCGAN, as a sampler (:class:`ImageSampler`)::

    s = load_sampler("runs/dcgan/menu-64x64")        # a DCGANPipeline (stackgan.inference_dcgan)
    s = load_sampler("runs/stage2-menu")             # a Pipeline, as load_pipeline gives
    s.kind, s.image_size                             # "dcgan" / "stackgan-stage1" / "stackgan-stage2", (H, W)
    s.sample([1, 2, 3], name=None, truncation=1.0)   # float32 [3, C, H, W] in [-1, 1], on the CPU

``sample(seeds)`` draws the pictures ``generate`` draws for those seeds: a StackGAN needs a name, a
DCGAN refuses one.
"""

from __future__ import annotations

import json
import os
import random
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence, runtime_checkable

import torch
from torch import nn

from stackgan.errors import CheckpointError, UserError
from stackgan.models.stackgan import Stage1G, Stage2G, stage1_generator, stage2_generator
from stackgan.runs import DCGAN, STACKGAN, RunFolder, read_json, read_safetensors
from stackgan.stackgan_config import PARTS_SENTENCES, StackGANConfig
from stackgan.utils import io

if TYPE_CHECKING:
    from stackgan.inference_dcgan import DCGANPipeline

EXPLORE_DIRECTIONS = 4
MAX_N = 1024
MAX_SEED = 2**31 - 1
NAME_CACHE = 4096
#: what a model folder written by :meth:`Pipeline.save_pretrained` (or scripts/export_model.py) holds
MODEL_FOLDER_FILES = frozenset({"config.json", "G_ema.safetensors", "names.json", "embeddings.safetensors",
                                "metrics.json", "stage1", "README.md"})


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows: a, b [k, d], t [T] -> [k, T, d] (a at t=0, b at t=1); the
    path of Gaussian noise that keeps its norm, unlike a straight line through the origin's shell."""
    an, bn = a / a.norm(dim=1, keepdim=True).clamp_min(1e-8), b / b.norm(dim=1, keepdim=True).clamp_min(1e-8)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None]  # [k, 1]
    so = torch.sin(omega)
    tt = t[None, :]  # [1, T]
    wa = torch.where(so > 1e-6, torch.sin((1 - tt) * omega) / so, 1 - tt)
    wb = torch.where(so > 1e-6, torch.sin(tt * omega) / so, tt)
    return wa[:, :, None] * a[:, None] + wb[:, :, None] * b[:, None]


@runtime_checkable
class ImageSampler(Protocol):
    """What every trained generator offers, whatever the model: :class:`Pipeline` (StackGAN) and
    :class:`stackgan.inference_dcgan.DCGANPipeline` (the DCGAN baseline)."""

    @property
    def kind(self) -> str:
        """``stackgan-stage1``, ``stackgan-stage2`` or ``dcgan`` (the kinds of :mod:`stackgan.runs`)."""
        ...

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the pictures :meth:`sample` draws."""
        ...

    def sample(self, seeds: Iterable[int], name: str | None = None, truncation: float = 1.0) -> torch.Tensor:
        """One picture per seed, the picture of that seed alone: **float32** [len(seeds), C, H, W] in
        [-1, 1], on the CPU. ``name``: the dish name (StackGAN: required; DCGAN: must be None, it is
        unconditional). ``truncation`` scales the noise towards its mean."""
        ...


@dataclass
class Result:
    """Pictures in [-1, 1] on the CPU: ``stage1`` [n, 3, S, S], ``stage2`` [n, 3, S2, S2] or None;
    ``seeds`` (one per picture) and the ``z`` [n, z_dim] used."""

    stage1: torch.Tensor
    stage2: torch.Tensor | None
    seeds: list[int]
    z: torch.Tensor

    @property
    def images(self) -> torch.Tensor:
        """The final pictures: stage II when there is one."""
        return self.stage2 if self.stage2 is not None else self.stage1


def _check_stages_belong_together(cfg: StackGANConfig, cfg1: StackGANConfig, where: Path) -> None:
    """A stage-II run's ``stage1/`` must be a stage-I run that stage II was trained on (as training checks)."""
    problems = []
    if cfg1.stage != 1:
        problems.append(f"it is a stage-{cfg1.stage} run")
    for field, what in (("image_size", "picture size"), ("emb_dim", "embedding size"), ("z_dim", "z size"),
                        ("text_encoder", "text encoder")):
        if getattr(cfg1, field) != getattr(cfg, field):
            problems.append(f"{what} {getattr(cfg1, field)!r} vs stage II's {getattr(cfg, field)!r}")
    if problems:
        raise CheckpointError(f"{where} is not the stage I this stage-II run was trained on: " + "; ".join(problems))


def load_pipeline(path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "fp32"
                  ) -> "Pipeline":
    """A :class:`Pipeline` from a run or model folder (its G_ema.safetensors, else its newest intact
    checkpoint), a ``ckpt-*.pt`` or a ``G_ema.safetensors`` beside its ``config.json``, read as
    :mod:`stackgan.runs` says. Stage-II runs carry their stage-I generator in ``stage1/``. ``precision``: ``fp32`` (exact, what evaluation scores),
    ``bf16`` (autocast: 1.6x faster for 8 pictures on a CPU with native bf16, PSNR about 55 dB against
    fp32) or ``auto`` (bf16 where the device runs it natively)."""
    device = _device(device)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no model at {path}")
    return _load_stackgan(RunFolder.open(path), path, device, precision)


def _device(device: str | torch.device) -> torch.device:
    from stackgan.utils.device import resolve_device

    return resolve_device(device) if isinstance(device, str) else torch.device(device)


def _load_stackgan(run: RunFolder, path: Path, device: torch.device, precision: str) -> "Pipeline":
    cfg = run.require(STACKGAN)
    folder = run.folder
    # weights with NaN or infinite values are refused: they would serve black pictures while /api/health says ok
    if cfg.stage == 1:
        g1 = run.load_into(stage1_generator(cfg), check_finite=True)
        cfg1, g2 = cfg, None
    else:
        s1 = RunFolder.open(folder / "stage1")
        cfg1 = s1.require(STACKGAN)
        _check_stages_belong_together(cfg, cfg1, s1.folder)
        g1 = s1.load_into(stage1_generator(cfg1), check_finite=True)
        g2 = run.load_into(stage2_generator(cfg), check_finite=True)
    meta = run.weights()[1]

    names: list[str] = []
    emb = None
    train_info: dict[str, Any] = {}
    if (folder / "names.json").is_file() and (folder / "embeddings.safetensors").is_file():
        info = read_json(folder / "names.json")
        names = list(info.get("names", []))
        tensors, _ = read_safetensors(folder / "embeddings.safetensors")
        emb = tensors.get("names")
        if emb is None or emb.shape[0] != len(names):
            raise CheckpointError(f"{folder}: names.json and embeddings.safetensors do not match")
        counts = info.get("counts") or []
        train_info = {"data": info.get("data"), "n_images": info.get("n_images"), "n_names": len(names),
                      "encoder_id": info.get("encoder_id"), "parts": info.get("parts"),
                      "photos_per_name": {"min": min(counts), "max": max(counts)} if counts else None,
                      "grid_names": info.get("grid_names", [])}
    metrics = read_json(folder / "metrics.json", default=None)
    return Pipeline(cfg, g1, g2, cfg1, names, emb, folder=folder, device=device,
                    extra={"step": meta.get("step"), "train": train_info, "metrics": metrics,
                           "source": str(path)}, precision=precision)


def load_sampler(path: str | os.PathLike, device: str | torch.device = "cpu", precision: str = "fp32"
                 ) -> "Pipeline | DCGANPipeline":
    """The sampler of any trained run: a :class:`Pipeline` for a StackGAN run (as :func:`load_pipeline`
    gives, with its errors), a :class:`~stackgan.inference_dcgan.DCGANPipeline` for a DCGAN run
    (always fp32: ``precision`` is StackGAN's), decided by the run's config (``RunFolder.kind``)."""
    device = _device(device)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no model at {path}")
    run = RunFolder.open(path)
    if run.model == DCGAN:
        from stackgan.inference_dcgan import DCGANPipeline
        from stackgan.utils.device import resolve_precision

        resolve_precision(precision, device)  # a bad value is refused as for a StackGAN
        return DCGANPipeline.from_run(run, device)
    return _load_stackgan(run, path, device, precision)


class Pipeline:
    """Stage-I (and optionally stage-II) EMA generators with the names they were trained on."""

    def __init__(self, cfg: StackGANConfig, g1: Stage1G, g2: Stage2G | None, cfg1: StackGANConfig,
                 names: Sequence[str] = (), emb: torch.Tensor | None = None, folder: Path | None = None,
                 device: torch.device | str = "cpu", extra: dict[str, Any] | None = None,
                 precision: str = "fp32"):
        from stackgan.utils.device import resolve_precision

        self.cfg, self.cfg1 = cfg, cfg1
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.g1 = g1.to(self.device).eval().requires_grad_(False)
        self.g2 = g2.to(self.device).eval().requires_grad_(False) if g2 is not None else None
        self.names = list(names)
        self.emb = emb.float() if emb is not None else None
        self._row = {n: i for i, n in enumerate(self.names)}
        self.folder = folder
        self.extra = extra or {}
        self._encoder = None
        self.parts = None  # the parts vocabulary of a --parts model (stackgan.text.parts)
        if cfg1.part_dim:
            from stackgan.text.parts import PartVocab

            vocab = (self.extra.get("train") or {}).get("parts")
            if vocab is None:
                raise CheckpointError(f"{folder}: the model reads names with their parts (--parts), but its "
                                      "names.json has no parts vocabulary")
            self.parts = PartVocab.from_json(vocab)
            if self.parts.dim != cfg1.part_dim:
                raise CheckpointError(f"{folder}: names.json's parts vocabulary codes {self.parts.dim} values, "
                                      f"the model {cfg1.part_dim}")
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._fit = None
        self.parts_sentence = cfg1.parts_sentence if self.parts is not None else "own"
        self._directions = self._explore_directions()

    # -- names ---------------------------------------------------------------------------------
    def _normalize(self, name: str) -> str:
        from stackgan.data import normalize_name

        return normalize_name(name)

    def encoder(self):
        """The run's text encoder, loaded on first use."""
        if self._encoder is None:
            from stackgan.text import load_text_encoder

            enc = load_text_encoder(self.cfg.text_encoder)
            if enc.dim != self.text_dim:
                raise CheckpointError(f"the text encoder {self.cfg.text_encoder!r} gives {enc.dim}-d vectors, "
                                      f"the model was trained on {self.text_dim}-d ones")
            want = (self.extra.get("train") or {}).get("encoder_id")
            have = getattr(enc, "id", None)
            if want and have and have != want:
                raise CheckpointError(f"the model's names were encoded by text encoder {want}; --text-encoder "
                                      f"{self.cfg.text_encoder!r} here is {have} (another conversion or model "
                                      "version), so new names would be read differently. Install the encoder "
                                      "the model was trained with, or retrain")
            self._encoder = enc
        return self._encoder

    def embed(self, name: str) -> torch.Tensor:
        """The sentence vector [D] of a name: stored for training names, else encoded and cached."""
        key = self._normalize(name)
        if key in self._row and self.emb is not None:
            return self.emb[self._row[key]]
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        with torch.inference_mode():
            vec = self.encoder().encode([key])[0].float().cpu()
        if self.parts is not None:  # a name outside training: its parts as the vocabulary reads them
            parts = self.parts.parse(key)
            code = self.parts.code(parts)
            if self.parts_sentence == "parts" and "?" not in parts.values():
                vec = self._sentence_fit()(code[None])[0]  # read whole: the sentence its parts predict
            vec = torch.cat([vec, code])
        self._cache[key] = vec
        while len(self._cache) > NAME_CACHE:
            self._cache.popitem(last=False)
        return vec

    @property
    def parts_sentence(self) -> str:
        """A ``--parts`` model: how a name outside training that the parts vocabulary reads whole gets its
        sentence vector: ``own`` (its encoding) or ``parts`` (predicted from its parts,
        :class:`stackgan.text.parts.SentenceFit`); the run's ``--parts-sentence`` unless set."""
        return self._parts_sentence

    @parts_sentence.setter
    def parts_sentence(self, mode: str) -> None:
        if mode not in PARTS_SENTENCES:
            raise UserError(f"parts_sentence is 'own' or 'parts', got {mode!r}")
        if mode != "own" and self.parts is None:
            raise UserError("--parts-sentence applies to a model trained with --parts; this one reads names "
                            "by their sentence vector only")
        if mode != getattr(self, "_parts_sentence", None):
            self._cache.clear()
        self._parts_sentence = mode

    def _sentence_fit(self):
        if self._fit is None:
            from stackgan.text.parts import SentenceFit

            if self.emb is None:
                raise CheckpointError(f"{self.folder}: --parts-sentence parts needs the training names' vectors "
                                      "(embeddings.safetensors)")
            self._fit = SentenceFit(self.emb, self.text_dim)
        return self._fit

    @property
    def text_dim(self) -> int:
        """Size of the sentence-vector block of the name vectors (without a parts code)."""
        return self.cfg.emb_dim - self.cfg1.part_dim

    # -- latents -------------------------------------------------------------------------------
    def _noise(self, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, stage-I CA noise, stage-II CA noise) of one seed, from a CPU generator."""
        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(self.cfg1.z_dim, generator=g)
        e1 = torch.randn(self.cfg1.c_dim, generator=g)
        e2 = torch.randn(self.cfg.c_dim, generator=g)
        return z, e1, e2

    def _draw(self, name: str | torch.Tensor, z: torch.Tensor, e1: torch.Tensor, e2: torch.Tensor,
              seeds: list[int]) -> Result:
        """``name``: a dish name, or sentence vectors [n, D] (one per picture)."""
        n = z.shape[0]
        emb = (self.embed(name).expand(n, -1) if isinstance(name, str) else name).to(self.device)
        z_d, e1_d, e2_d = z.to(self.device), e1.to(self.device), e2.to(self.device)
        from stackgan.utils.device import autocast

        def maps(g: Stage1G | Stage2G) -> list[torch.Tensor] | None:
            drawn = g.draw_noise(seeds)
            return None if drawn is None else [m.to(self.device) for m in drawn]

        with autocast(self.device, self.precision == "bf16"):
            low, _, _ = self.g1(z_d, emb, e1_d, noise=maps(self.g1))
            high = None
            if self.g2 is not None:
                high, _, _ = self.g2(low, emb, e2_d, noise=maps(self.g2))
                high = high.float().clamp(-1, 1).cpu()
        return Result(low.float().clamp(-1, 1).cpu(), high, seeds, z.clone())

    @staticmethod
    def _check_n(n: int) -> int:
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
            raise UserError(f"n must be an integer from 1 to {MAX_N}, got {n!r}")
        return n

    @staticmethod
    def _check_seed(seed: int, n: int = 1) -> int:
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED - n:
            raise UserError(f"seed must be an integer from 0 to {MAX_SEED - n}, got {seed!r}")
        return seed

    @staticmethod
    def _check_truncation(truncation: float) -> float:
        if not 0.0 <= float(truncation) <= 2.0:
            raise UserError(f"truncation must be in [0, 2], got {truncation}")
        return float(truncation)

    def _seeded(self, name: str, seeds: list[int], truncation: float) -> Result:
        """The pictures of ``name`` for ``seeds``, picture i from seed ``seeds[i]`` alone."""
        zs, e1s, e2s = zip(*(self._noise(s) for s in seeds))
        t = float(truncation)
        return self._draw(name, torch.stack(zs) * t, torch.stack(e1s) * t, torch.stack(e2s) * t, seeds)

    # -- the API -------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, name: str, n: int = 1, seed: int | None = None, truncation: float = 1.0) -> Result:
        """``n`` pictures of ``name``; picture i from seed ``seed + i`` (a random seed when None).
        ``truncation`` < 1 scales z and the conditioning noise towards their mean."""
        n = self._check_n(n)
        if seed is None:
            seed = random.SystemRandom().randrange(0, MAX_SEED - n)
        seed = self._check_seed(seed, n)
        truncation = self._check_truncation(truncation)
        return self._seeded(name, [seed + i for i in range(n)], truncation)

    # -- the sampler interface (ImageSampler, shared with the DCGAN) -----------------------------
    @property
    def kind(self) -> str:
        """``stackgan-stage1`` or ``stackgan-stage2``."""
        return self.cfg.kind

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the final pictures (stage II's when there is one)."""
        size = self.cfg.out_size if self.g2 is not None else self.cfg1.image_size
        return size, size

    @torch.inference_mode()
    def sample(self, seeds: Iterable[int], name: str | None = None, truncation: float = 1.0,
               stage: int | None = None) -> torch.Tensor:
        """The pictures of ``name``, one per seed: float32 [len(seeds), 3, S, S] in [-1, 1] on the CPU,
        the final ones (stage II when there is one) or those of ``stage`` (1 or 2). For seeds
        ``seed .. seed + n - 1`` they are ``generate(name, n, seed, truncation)``'s."""
        if name is None:
            raise UserError("a StackGAN draws dish names: give one")
        seeds = list(seeds)
        self._check_n(len(seeds))
        seeds = [self._check_seed(s) for s in seeds]
        truncation = self._check_truncation(truncation)
        if stage not in (None, 1, 2):
            raise UserError(f"stage must be 1 or 2, got {stage!r}")
        if stage == 2 and self.g2 is None:
            raise UserError("this is a stage-I model: it has no stage-II pictures")
        res = self._seeded(name, seeds, truncation)
        return res.stage1 if stage == 1 else res.images

    @torch.inference_mode()
    def variations(self, name: str, seed: int, n: int = 8, sigma: float = 0.5) -> Result:
        """Picture 0 is ``generate(name, 1, seed)``; picture i > 0 moves its z by ``sigma`` x N(0, I)
        (noise drawn from seed and i), keeping the conditioning noise: "more like this one"."""
        n = self._check_n(n)
        seed = self._check_seed(seed)
        if not 0.0 <= float(sigma) <= 10.0:
            raise UserError(f"sigma must be in [0, 10], got {sigma}")
        z0, e1, e2 = self._noise(seed)
        eps = torch.zeros(n, z0.shape[0])
        for i in range(1, n):
            eps[i] = torch.randn(z0.shape[0], generator=torch.Generator().manual_seed(seed * 1_000_003 + i))
        z = z0[None] + float(sigma) * eps
        return self._draw(name, z, e1.expand(n, -1), e2.expand(n, -1), [seed] * n)

    @torch.inference_mode()
    def interpolate(self, names: Sequence[str], seeds: Sequence[int], frames: int = 16) -> Result:
        """Frames of a walk, ``frames`` per leg, back to the start (a loop): with one name, between the
        pictures of ``seeds`` (spherical interpolation of z and of the conditioning noise); with
        several names, between the names (linear interpolation of their sentence vectors) at
        ``seeds[0]``. Returns the frames as one Result ([legs * frames, 3, S, S])."""
        names = list(names)
        seeds = [self._check_seed(int(s)) for s in seeds]
        if not names or not seeds:
            raise UserError("interpolate needs at least one name and one seed")
        if not isinstance(frames, int) or not 2 <= frames <= 120:
            raise UserError(f"frames per leg must be an integer from 2 to 120, got {frames!r}")
        if len(names) == 1 and len(seeds) < 2:
            raise UserError("interpolate between seeds needs at least 2 of them (-n 2 or more)")
        t = torch.arange(frames, dtype=torch.float32) / frames  # 0 .. (frames-1)/frames: the next key is the next leg's
        if len(names) > 1:
            keys = torch.stack([self.embed(n) for n in names])
            a, b = keys, keys.roll(-1, 0)
            emb = (a[:, None] * (1 - t[None, :, None]) + b[:, None] * t[None, :, None]).flatten(0, 1)
            z, e1, e2 = (x[None].expand(emb.shape[0], -1) for x in self._noise(seeds[0]))
            if len(names) * frames > MAX_N:
                raise UserError(f"too many frames: {len(names) * frames} > {MAX_N}")
            return self._draw(emb, z, e1, e2, [seeds[0]] * emb.shape[0])
        if len(seeds) * frames > MAX_N:
            raise UserError(f"too many frames: {len(seeds) * frames} > {MAX_N}")
        noise = [torch.stack(x) for x in zip(*(self._noise(s) for s in seeds))]  # z, e1, e2: [k, dim] each
        walked = [slerp(x, x.roll(-1, 0), t).flatten(0, 1) for x in noise]
        frame_seeds = [s for s in seeds for _ in range(frames)]
        return self._draw(names[0], *walked, frame_seeds)

    def _explore_directions(self) -> torch.Tensor:
        """``EXPLORE_DIRECTIONS`` orthonormal z directions: the ones stage I's first layer
        amplifies most (top right singular vectors of its weight on z), sign fixed."""
        w = self.g1.fc[0].weight.detach().float().cpu()[:, : self.cfg1.z_dim]
        k = min(EXPLORE_DIRECTIONS, self.cfg1.z_dim)
        _, _, vh = torch.linalg.svd(w, full_matrices=False)
        dirs = vh[:k].clone()
        sign = torch.sign(dirs.gather(1, dirs.abs().argmax(1, keepdim=True)))
        return dirs * sign

    @torch.inference_mode()
    def explore(self, name: str, seed: int, offsets: Sequence[float]) -> Result:
        """One picture: the z of ``seed`` moved by ``offsets[j]`` along fixed direction j."""
        seed = self._check_seed(seed)
        offsets = [float(o) for o in offsets]
        k = self._directions.shape[0]
        if len(offsets) > k:
            raise UserError(f"at most {k} offsets (one per direction), got {len(offsets)}")
        z, e1, e2 = self._noise(seed)
        if offsets:
            z = z + torch.tensor(offsets) @ self._directions[: len(offsets)]
        return self._draw(name, z[None], e1[None], e2[None], [seed])

    @torch.inference_mode()
    def neighbours(self, name: str, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` training names nearest to ``name`` by cosine of sentence vectors."""
        if self.emb is None or not self.names:
            return []
        t = self.text_dim  # the sentence vectors alone: how near the wording is
        q = torch.nn.functional.normalize(self.embed(name).float()[:t], dim=0)
        sims = torch.nn.functional.normalize(self.emb[:, :t], dim=1) @ q
        top = torch.topk(sims, min(int(k), len(self.names)))
        return [(self.names[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]

    def familiar_threshold(self) -> float | None:
        """The least cosine any training name has with its nearest *other* training name: a new name
        whose nearest known name is less similar than that lies outside what the model was trained
        on (it is farther from every known dish than any known dish is from its neighbour)."""
        if self.emb is None or len(self.names) < 2:
            return None
        e = torch.nn.functional.normalize(self.emb.float()[:, :self.text_dim], dim=1)
        sims = e @ e.T
        sims.fill_diagonal_(-2.0)
        return float(sims.max(dim=1).values.min())

    @torch.inference_mode()
    def familiarity(self, name: str) -> dict[str, Any]:
        """How close ``name`` is to the training names: the nearest one with its cosine, the
        threshold (:meth:`familiar_threshold`) and ``far`` when the cosine is below it. A ``--parts``
        model also says how it reads the name (``parts``: each part's value, None for none, ``"?"`` for
        unknown); a name read into known parts only is not far, whatever its cosine: the model draws
        it from its parts."""
        parts = self.parts.parse(self._normalize(name)) if self.parts is not None else None
        composed = parts is not None and "?" not in parts.values()
        extra = {"parts": parts} if parts is not None else {}
        nearest = self.neighbours(name, 1)
        threshold = self.familiar_threshold()
        if not nearest or threshold is None:
            return {"nearest": None, "similarity": None, "threshold": None, "far": False, **extra}
        (known, sim), = nearest
        return {"nearest": known, "similarity": round(sim, 4), "threshold": round(threshold, 4),
                "far": sim < threshold and not composed, **extra}

    def model_card(self) -> str:
        """The model folder's README.md (Hugging Face model card) from its config, names and metrics."""
        from stackgan.model_card import model_card

        src = self.folder / "names.json" if self.folder is not None else None
        info = read_json(src) if src is not None and src.is_file() else {}
        encoder_id = info.get("encoder_id") if isinstance(info, dict) else None
        return model_card(self.cfg, self.cfg1, 2 if self.g2 is not None else 1, self.names,
                          self.extra.get("train") or {}, self.extra.get("metrics"), encoder_id=encoder_id)

    def save_pretrained(self, folder: str | os.PathLike, fp16: bool = False) -> Path:
        """Write a model folder that :func:`load_pipeline` (and ``stackgan serve``) loads: config.json,
        G_ema.safetensors (float16 with ``fp16``), stage1/ for a two-stage model, names.json and
        embeddings.safetensors of the training names, and metrics.json when the model has metrics.
        Written beside ``folder`` first and moved into place, so a failure leaves no half folder."""
        import shutil

        dst = Path(folder)
        if dst.exists() and not dst.is_dir():
            raise UserError(f"{dst} exists and is not a folder")
        if dst.is_dir():
            other = sorted(p.name for p in dst.iterdir() if p.name not in MODEL_FOLDER_FILES)
            if other:  # never delete what is not a model folder's (a run folder's checkpoints, photos ...)
                raise UserError(f"{dst} holds other files ({', '.join(other[:3])}{' ...' if len(other) > 3 else ''}); "
                                f"save into a new or empty folder")
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)

        def weights(model: nn.Module, where: Path, cfg: StackGANConfig) -> None:
            state = {k: (v.half() if fp16 and v.is_floating_point() else v.float() if v.is_floating_point() else v)
                     for k, v in model.state_dict().items()}
            step = self.extra.get("step")
            meta = {"kind": cfg.kind, "dtype": "float16" if fp16 else "float32", **({"step": str(step)} if step else {})}
            cfg.save_json(where / "config.json")
            io.atomic_save_safetensors(state, where / "G_ema.safetensors", meta)

        try:
            if self.g2 is not None:
                weights(self.g2, tmp, self.cfg)
                (tmp / "stage1").mkdir()
                weights(self.g1, tmp / "stage1", self.cfg1)
            else:
                weights(self.g1, tmp, self.cfg)
            info: dict[str, Any] = {}
            if self.names and self.emb is not None:
                src = self.folder / "names.json" if self.folder is not None else None
                info = read_json(src) if src is not None and src.is_file() else {}
                info = {**info, "names": self.names, "text_encoder": self.cfg.text_encoder, "emb_dim": self.cfg.emb_dim}
                io.atomic_write_text(tmp / "names.json", json.dumps(info, ensure_ascii=False, indent=1) + "\n")
                io.atomic_save_safetensors({"names": self.emb.float()}, tmp / "embeddings.safetensors",
                                           metadata={"text_encoder": self.cfg.text_encoder})
            io.atomic_write_text(tmp / "README.md", self.model_card())
            if self.extra.get("metrics") is not None:
                io.atomic_write_text(tmp / "metrics.json",
                                     json.dumps(self.extra["metrics"], ensure_ascii=False, indent=1) + "\n")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
        return dst

    def info(self) -> dict[str, Any]:
        c, c1 = self.cfg, self.cfg1
        out: dict[str, Any] = {
            "model": "stackgan",
            "stages": 2 if self.g2 is not None else 1,
            "stage1_size": c1.image_size,
            "stage2_size": c.out_size if self.g2 is not None else None,
            "text_encoder": c.text_encoder,
            "emb_dim": c.emb_dim,
            "parts": list(self.parts.slots) if self.parts is not None else None,  # --parts: the name's parts
            "part_dim": c1.part_dim,
            "z_dim": c1.z_dim,
            "c_dim": c.c_dim,
            "widths": {"stage1": {"ngf": c1.ngf, "ndf": c1.ndf},
                       **({"stage2": {"ngf": c.ngf, "ndf": c.ndf, "r_num": c.r_num}} if self.g2 is not None else {})},
            "conditioning": {"g": c1.g_cond, "d": c1.d_cond},
            **({"stage2_residual": c.stage2_residual, "stage2_skips": c.stage2_skips,
                "stage2_input_pool": c.stage2_input_pool} if self.g2 is not None else {}),
            "loss": c.loss, "kl": c.kl, "diffaugment": c.diffaugment, "mode_seeking": c.mode_seeking,
            "step": int(self.extra["step"]) if str(self.extra.get("step") or "").isdigit() else None,
            "training": self.extra.get("train") or {},
            "metrics": self.extra.get("metrics"),
            "explore_directions": int(self._directions.shape[0]),
            "device": str(self.device),
            "precision": self.precision,
        }
        return out
