"""The attribute reader: the menu evaluator's classifier, trained on renders of every combination.

The photo-trained attribute classifier (:func:`stackgan.metrics.evaluate.fit_classifier`) only
ever sees the training names' combinations, so it reads the parts of a combination it never saw
(an invented name) poorly, even on a true picture of it. The reader is trained instead on renders
of **every** combination of the menu vocabulary (10 bases x (13 toppings + none) x (4 modifiers +
none) = 700), drawn by the menu's own renderer with seeds that neither the menu set (seed 0) nor
the invented-name renders of the ceiling (seed 1) use, and is scored on a separate held-out
render set (other seeds). It is a measuring instrument only: nothing of it reaches a generator.

Rendering and training take a few minutes on two cores, once per machine: the rendered sets
(uint8 tensors) and the trained reader are cached under ``$STACKGAN_CACHE`` (default
``~/.cache/stackgan``), keyed by the render settings, the renderer's source and the classifier
settings (``renders/`` and ``classifiers/reader-*.safetensors``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from stackgan.errors import DataError
from stackgan.metrics.classifier import MODEL_VERSION, Classifier, ClassifierConfig, cache_root, train_classifier
from stackgan.metrics.realdata import NONE, PART_KEYS, RealData

READER_VERSION = "1"  # bump when the render pipeline changes (the reader's recipe is in its key): invalidates the cache
TRAIN_SEED = 101  # render seeds of the reader's training / held-out sets (the menu set uses 0, the
HELDOUT_SEED = 102  # invented-name ceiling renders 1): a seed s > 0 of ReaderConfig adds 2 * s to both

Combo = tuple[str, "str | None", "str | None"]


@dataclasses.dataclass
class ReaderConfig:
    """How the reader's renders are drawn and how it is trained."""

    renders: int = 16  # training renders per combination
    heldout: int = 2  # held-out renders per combination (other seeds)
    draw_size: int = 128  # px the renderer draws at
    image_size: int = 64  # px the renders are stored at (the evaluation size)
    input_size: int = 64  # px the network reads
    width: int = 24
    feat_dim: int = 128
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    augment: bool = False  # the renders vary enough; flips and rescaling blur what 大盛り looks like
    blur: float = 1.2  # a random Gaussian blur of the training batches, sigma 0.1 px up to this (0: none), so a
    blur_p: float = 0.6  # soft picture (a stage II at 128 px, an enlarged stage I) reads as the same content at 64 px
    seed: int = 0

    def classifier_config(self) -> ClassifierConfig:
        return ClassifierConfig(image_size=self.input_size, width=self.width, feat_dim=self.feat_dim,
                                epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, augment=self.augment,
                                seed=self.seed)

    def check(self) -> None:
        if self.renders < 1 or self.heldout < 1:
            raise DataError(f"the reader needs at least 1 training and 1 held-out render per combination, got "
                            f"{self.renders} and {self.heldout}")
        if min(self.draw_size, self.image_size, self.input_size) < 16:
            raise DataError("reader sizes (draw, image, input) must be at least 16 px")
        if not 0 <= self.blur <= 4 or not 0 <= self.blur_p <= 1:
            raise DataError(f"the reader's blur needs a sigma in 0..4 px and a probability in 0..1, got "
                            f"{self.blur} and {self.blur_p}")

    def augmenter(self):
        """The blur of the training batches (None without one): kornia's Gaussian blur, its kernel two
        sigmas wide either side."""
        if self.blur <= 0 or self.blur_p <= 0:
            return None
        import math

        import kornia.augmentation as K
        from torch import nn

        k = 2 * math.ceil(2 * self.blur) + 1
        return nn.Sequential(K.RandomGaussianBlur((k, k), (min(0.1, self.blur), self.blur), p=self.blur_p))


# -- the vocabulary ------------------------------------------------------------------------------
def vocabulary() -> dict[str, list[str]]:
    """The class lists of the reader's heads: every base, every topping and every modifier of the
    menu, with ``-`` (none) for topping and modifier."""
    from stackgan.menu.parts import BASES, MODIFIERS, TOPPINGS

    return {"base": sorted(BASES), "topping": sorted([NONE, *TOPPINGS]), "modifier": sorted([NONE, *MODIFIERS])}


def all_combos() -> list[Combo]:
    """Every (base, topping or None, modifier or None) the renderer can draw: 700 of them."""
    from stackgan.menu.parts import BASES, MODIFIERS, TOPPINGS

    return [(b, t, m) for b in BASES for t in (None, *TOPPINGS) for m in (None, *MODIFIERS)]


def unknown_parts(parts: dict[str, str]) -> list[str]:
    """What in ``parts`` ({base, topping, modifier}, ``-`` for none) the menu vocabulary lacks."""
    vocab = vocabulary()
    out = []
    for h in PART_KEYS:
        v = parts.get(h, NONE)
        if v not in vocab[h]:
            out.append(f"{h} {v!r}" if h != "base" or v != NONE else "no base")
    return out


def is_menu_data(data: RealData) -> bool:
    """Whether every training name of ``data`` is made of the menu vocabulary (the reader can read it)."""
    if not data.has_attributes:
        return False
    assert data.parts is not None
    return all(not unknown_parts(data.parts[n]) for n in data.names)


def renderer_fingerprint() -> str:
    """A hash of the renderer's and the vocabulary's source: a changed renderer means new renders."""
    import stackgan.menu.parts as parts
    import stackgan.menu.render as render

    h = hashlib.sha256()
    for mod in (render, parts):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


# -- rendering -----------------------------------------------------------------------------------
def render_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def render_combos(combos: Sequence[Combo], count: int, seed: int, draw_size: int, image_size: int,
                  workers: int | None = None, progress: bool = True) -> torch.Tensor:
    """``count`` renders of every combination (seeded by ``(seed, name, index)`` as the menu set
    is), resized to ``image_size``: uint8 ``[len(combos) * count, 3, S, S]``, combination-major."""
    from tqdm import tqdm

    jobs = [(tuple(c), seed, count, draw_size, image_size) for c in combos]
    workers = render_workers() if workers is None else max(1, workers)
    bar = tqdm(total=len(jobs), desc=f"rendering {len(jobs)} x {count} at {draw_size} px", disable=not progress,
               leave=False)
    from stackgan.metrics.renderjob import render_combo

    parts: list[np.ndarray] = []
    if workers == 1 or len(jobs) < 8:
        for job in jobs:
            parts.append(render_combo(job))
            bar.update(1)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork where there is one: the workers only run numpy and PIL (never torch, whose thread pools
        # the parent may hold), and a forked worker needs no `if __name__ == "__main__"` in a caller's script
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method)) as pool:
            for arr in pool.map(render_combo, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
                parts.append(arr)
                bar.update(1)
    bar.close()
    return torch.from_numpy(np.concatenate(parts)).permute(0, 3, 1, 2).contiguous()


def combo_targets(combos: Sequence[Combo], count: int) -> dict[str, torch.Tensor]:
    """Class indices (into :func:`vocabulary`) of every render of :func:`render_combos`."""
    vocab = vocabulary()
    idx = {h: {v: i for i, v in enumerate(vocab[h])} for h in PART_KEYS}
    out = {}
    for k, h in enumerate(PART_KEYS):
        vals = [idx[h][c[k] if c[k] is not None else NONE] for c in combos]
        out[h] = torch.tensor(vals, dtype=torch.long).repeat_interleave(count)
    return out


def _render_key(cfg: ReaderConfig, which: str, count: int, seed: int) -> str:
    h = hashlib.sha256(json.dumps({"v": READER_VERSION, "renderer": renderer_fingerprint(), "set": which,
                                   "count": count, "seed": seed, "draw": cfg.draw_size, "size": cfg.image_size,
                                   "vocab": vocabulary()}, ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()


def render_set(cfg: ReaderConfig, which: str, cache: bool | str | os.PathLike = True, progress: bool = True,
               workers: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor], float]:
    """The reader's ``train`` or ``heldout`` render set: (uint8 images, targets, seconds its rendering
    took, also when it comes from the cache). Cached as one safetensors file of uint8 tensors."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    count = cfg.renders if which == "train" else cfg.heldout
    seed = (TRAIN_SEED if which == "train" else HELDOUT_SEED) + 2 * cfg.seed
    combos = all_combos()
    path = None
    if cache:
        key = _render_key(cfg, which, count, seed)
        path = (cache_root() if cache is True else Path(cache)) / "renders" / f"reader-{which}-{key[:20]}.safetensors"
        if path.is_file():
            try:
                t = load_file(str(path))
                with safe_open(str(path), framework="pt") as fh:
                    took = float((fh.metadata() or {}).get("seconds", "nan"))
                if t["images"].shape == (len(combos) * count, 3, cfg.image_size, cfg.image_size):
                    return t["images"], {h: t[h] for h in PART_KEYS}, took
            except Exception:  # noqa: BLE001 - a damaged cache file: render again and overwrite it
                pass
    t0 = time.perf_counter()
    images = render_combos(combos, count, seed, cfg.draw_size, cfg.image_size, workers=workers, progress=progress)
    seconds = time.perf_counter() - t0
    targets = combo_targets(combos, count)
    if path is not None:
        from stackgan.utils.io import atomic_save_safetensors

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors({"images": images, **targets}, path,
                                metadata={"seconds": f"{seconds:.1f}", "count": str(count), "seed": str(seed)})
    return images, targets, seconds


def reader_key(cfg: ReaderConfig) -> str:
    h = hashlib.sha256()
    h.update(f"reader|{READER_VERSION}|{MODEL_VERSION}|{renderer_fingerprint()}|".encode())
    h.update(json.dumps(dataclasses.asdict(cfg), sort_keys=True).encode())
    h.update(json.dumps(vocabulary(), ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()


def reader_path(cfg: ReaderConfig, cache: bool | str | os.PathLike = True) -> Path:
    folder = (cache_root() if cache is True else Path(cache)) / "classifiers"
    return folder / f"reader-{reader_key(cfg)[:20]}.safetensors"


def train_reader(cfg: ReaderConfig | None = None, cache: bool | str | os.PathLike = True,
                 device: torch.device | str = "cpu", progress: bool = True,
                 printer: Callable[[str], None] | None = None, workers: int | None = None) -> Classifier:
    """The attribute reader for ``cfg``: loaded from the cache, or rendered, trained and cached.

    ``cache``: True for the default cache folder, a folder, or False to always render and train.
    """
    cfg = cfg or ReaderConfig()
    cfg.check()
    say = printer or (lambda s: None)
    key = reader_key(cfg)
    path = reader_path(cfg, cache) if cache else None
    clf = Classifier.cached(path, key, device)
    if clf is not None:
        return clf
    n = len(all_combos())
    say(f"attribute reader: rendering {n} combinations x ({cfg.renders} training + {cfg.heldout} held-out) at "
        f"{cfg.draw_size} px (once per machine, then cached)")
    x, y, t_train = render_set(cfg, "train", cache, progress, workers)
    xv, yv, t_held = render_set(cfg, "heldout", cache, progress, workers)
    blur = cfg.augmenter()
    say(f"attribute reader: training on {len(x)} renders, {cfg.epochs} epochs"
        + (f", blurred (sigma up to {cfg.blur} px) on {cfg.blur_p:.0%} of the batches" if blur is not None else ""))
    clf = train_classifier(x, y, vocabulary(), cfg.classifier_config(), val_images=xv, val_targets=yv,
                           kind="reader", cache=False, device=device, progress=progress, augmenter=blur)
    clf.key = key
    clf.metrics.update(render_seconds=round(t_train + t_held, 2), reader=dataclasses.asdict(cfg),
                       combinations=n)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        clf.save(path)
    return clf


def load_reader_config(clf: Classifier) -> ReaderConfig | None:
    raw = clf.metrics.get("reader")
    if not isinstance(raw, dict):
        return None
    return ReaderConfig(**{"blur": 0.0, **raw})  # a reader saved before the blur had none
