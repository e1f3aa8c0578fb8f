"""Training one StackGAN stage, and its run folder.

:func:`train` is the entry point of ``stackgan train``: it loads the photos and embeds their
names once (:func:`load_training_data`), then hands everything to :class:`StackGANTrainer`.
The trainer takes the sentence vectors as an input tensor, so tests (and other callers) can
train on random embeddings without any text encoder.

Run folder (``--out``)::

    config.json               the StackGANConfig (emb_dim filled in)
    ckpt-000500.pt            G, G_ema, D, optimisers, step, RNG, ADA state (atomic)
    G_ema.safetensors         this stage's EMA generator, for inference (+ config.json)
    stage1/                   stage-II runs: a copy of the stage-I G_ema + config they build on
    names.json                training names, photo counts and the grid's names
    embeddings.safetensors    their sentence vectors (inference needs no data set)
    samples/000500.png        the fixed grid (rows: names, columns: fixed z); stage II: pairs
    log.jsonl                 losses, timings, lr, augmentation p, diversity
    losses.png, progress.gif
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stackgan.augment import AdaController, DiffAugment, elastic_warp
from stackgan.metrics.diversity import mean_pairwise_l1, real_pixel_diversity
from stackgan.errors import CheckpointError, ConfigError, DataError
from stackgan.models.init import init_weights
from stackgan.models.stackgan import (Stage1G, discriminator, stage1_generator,
                                      stage2_generator)
from stackgan.runs import STACKGAN, RunFolder, read_json
from stackgan.stackgan_config import RESUMABLE_CHANGES, StackGANConfig
from stackgan.text.parts import PartVocab, names_parts
from stackgan.train.interrupt import graceful_interrupt
from stackgan.train.losses import PatchPrior, StackGANLoss
from stackgan.train.recovery import GOOD_STATE_EVERY, MAX_NAN_EVENTS, NanGuard, TrainingDiverged  # noqa: F401
from stackgan.train.resume import checkpoint_to_resume
from stackgan.utils import io, viz
from stackgan.utils.device import autocast, resolve_device, resolve_precision, to_channels_last
from stackgan.utils.runlog import JsonlLog, read_jsonl

DIVERSITY_SIZE = 32


@dataclass
class TrainData:
    """Everything a stage trains on: photos (uint8, at the stage's output size), their labels,
    the sorted names and one sentence vector per name; plus the names shown in the grid."""

    images: torch.Tensor  # uint8 [N, 3, S, S]
    labels: torch.Tensor  # long [N], index into names
    names: list[str]
    emb: torch.Tensor  # float [K, D]
    grid_names: list[str] = dataclasses.field(default_factory=list)
    grid_emb: torch.Tensor | None = None  # float [R, D]
    source: str = ""
    encoder_id: str | None = None  # the exact text encoder that made ``emb`` (its conversion / folder hash)
    parts: PartVocab | None = None  # --parts: the vocabulary whose code ends every row of ``emb``

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise DataError(f"training photos must be uint8 [N, 3, H, W], got {self.images.dtype} "
                            f"{tuple(self.images.shape)}")
        if self.images.shape[2] != self.images.shape[3]:
            raise DataError(f"training photos must be square, got {self.images.shape[2]}x{self.images.shape[3]}")
        if len(self.names) < 2:
            raise DataError(f"a matching-aware discriminator needs photos of at least 2 different names, "
                            f"got {len(self.names)}")
        if self.emb.shape[0] != len(self.names):
            raise DataError(f"{self.emb.shape[0]} sentence vectors for {len(self.names)} names")
        if self.labels.shape != (self.images.shape[0],):
            raise DataError("one label per photo is needed")
        if not self.grid_names:
            self.grid_names = list(self.names[:8])
            self.grid_emb = self.emb[:8]
        if self.grid_emb is None or self.grid_emb.shape[0] != len(self.grid_names):
            raise DataError("one sentence vector per grid name is needed")

    @property
    def size(self) -> int:
        return self.images.shape[2]

    def counts(self) -> dict[str, int]:
        c = torch.bincount(self.labels, minlength=len(self.names)).tolist()
        return dict(zip(self.names, c))


# -- data ----------------------------------------------------------------------------------------
def read_invented(data_root: str | os.PathLike) -> list[str]:
    """Invented names from ``<data>/invented.tsv`` (first column; header ``name`` skipped), or []."""
    from stackgan.data import normalize_name

    path = Path(data_root) / "invented.tsv"
    if not path.is_file():
        return []
    out: list[str] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip() or line.startswith("#"):
            continue
        cell = line.split("\t")[0].strip()
        if i == 0 and cell.lower() == "name":
            continue
        if cell:
            out.append(normalize_name(cell))
    return list(dict.fromkeys(out))


def choose_grid_names(names: Sequence[str], emb: torch.Tensor | None, invented: Sequence[str], rows: int,
                      counts: Sequence[int] | None = None) -> list[str]:
    """A fixed list of grid rows: about half training names, half invented ones (in file order).

    Training names are picked far apart: with their sentence vectors ``emb``, farthest-point
    sampling on cosine similarity, starting from the name with the most photos; without, evenly
    spread over the sorted list.
    """
    n_inv = min(len(invented), rows // 2) if invented else 0
    n_train = min(len(names), rows - n_inv)
    picked: list[int] = []
    if n_train > 0 and emb is not None and len(emb) == len(names):
        e = F.normalize(emb.float(), dim=1)
        first = max(range(len(names)), key=lambda i: (counts[i] if counts else 0, -i))
        picked = [first]
        closest = e @ e[first]
        while len(picked) < n_train:
            closest[picked] = float("inf")
            nxt = int(torch.argmin(closest))
            picked.append(nxt)
            closest = torch.maximum(closest, e @ e[nxt])
    elif n_train > 0:
        step = len(names) / n_train
        picked = [int(i * step) for i in range(n_train)]
    out = [names[i] for i in picked]
    rest = [n for n in invented if n not in out]
    return out + rest[: rows - len(out)]


def embedding_cache(cfg: StackGANConfig) -> Path | None:
    """The text module's cache file beside the data (None when that folder is read-only)."""
    from stackgan.text import default_cache_path

    path = default_cache_path(cfg.data, cfg.text_encoder)
    ok = os.access(path, os.W_OK) if path.exists() else os.access(path.parent, os.W_OK)
    return path if ok else None


def load_training_data(cfg: StackGANConfig, progress: bool = True, grid_names: Sequence[str] | None = None
                       ) -> TrainData:
    """Photos at the stage's size, and sentence vectors of their names and of the grid's names
    (embedded once, through the text module's cache). ``grid_names`` keeps a resumed run's rows."""
    from stackgan.data import load_dataset
    from stackgan.text import embed_names

    ds = load_dataset(cfg.data, image_size=cfg.out_size, channels=3, progress=progress)
    if cfg.held_out > 0:  # train on the train split only; evaluation scores against the rest
        ds, _ = ds.split(cfg.held_out, cfg.split_seed)
    counts = ds.counts()
    if grid_names:
        invented = [n for n in dict.fromkeys(grid_names) if n not in counts]
    else:
        invented = [n for n in read_invented(cfg.data) if n not in counts][: cfg.grid_rows]
    all_names = list(ds.names) + invented
    emb_all = embed_names(all_names, cfg.text_encoder, cache_path=embedding_cache(cfg)).float()
    vocab = None
    if cfg.parts:
        vocab, table = read_parts(cfg.data, ds.names)
        emb_all = torch.cat([emb_all, vocab.codes(all_names, table)], dim=1)
    emb = emb_all[: len(ds.names)]
    if grid_names:
        grid = list(grid_names)
    else:
        grid = choose_grid_names(ds.names, emb, invented, cfg.grid_rows, [counts[n] for n in ds.names])
    row = {n: i for i, n in enumerate(all_names)}
    grid_emb = emb_all[[row[n] for n in grid]]
    return TrainData(ds.images, ds.labels, list(ds.names), emb, grid, grid_emb, source=str(cfg.data),
                     encoder_id=text_encoder_id(cfg.text_encoder, embedding_cache(cfg)), parts=vocab)


def read_parts(data_root: str | os.PathLike, names: Sequence[str]) -> tuple[PartVocab, dict[str, dict[str, str]]]:
    """``--parts``: the vocabulary of the training names' parts and each name's parts, from
    ``<data>/attributes.tsv``."""
    from stackgan.data.names import read_attributes_tsv

    path = Path(data_root) / "attributes.tsv"
    if not path.is_file():
        raise DataError(f"--parts needs {path}: one row per photo with its name's parts (columns file, name, then "
                        "e.g. base, topping, modifier; '-' where a name has no such part)")
    table = names_parts(read_attributes_tsv(path), names)
    return PartVocab.from_table(table), table


def text_encoder_id(spec: str, cache: Path | None) -> str | None:
    """The exact id of the encoder that wrote the sentence vectors: from the embedding cache when there is
    one (the encoder is then not loaded), else from the (memoised) encoder itself; None if it has none."""
    from stackgan.text import load_text_encoder
    from stackgan.text.cache import load_embeddings

    if cache is not None and cache.is_file():
        try:
            found = load_embeddings(cache).encoder_id
        except Exception:  # noqa: BLE001 - an unreadable cache: ask the encoder instead
            found = None
        if found:
            return found
    return getattr(load_text_encoder(spec), "id", None)


# -- helpers ------------------------------------------------------------------------------------------
def wrong_labels(labels: torch.Tensor, n_names: int, generator: torch.Generator | None = None,
                 near: torch.Tensor | None = None, p_near: float = 0.0) -> torch.Tensor:
    """For each label, a *different* label (never the same name): drawn uniformly, or with
    probability ``p_near`` among ``near[label]`` (each name's nearest other names, [K, k])."""
    if n_names < 2:
        raise DataError("wrong names need at least 2 names")
    shift = torch.randint(1, n_names, labels.shape, device=labels.device, generator=generator)
    wrong = (labels + shift) % n_names
    if near is not None and p_near > 0:
        pick = torch.randint(0, near.shape[1], labels.shape, device=labels.device, generator=generator)
        use = torch.rand(labels.shape, device=labels.device, generator=generator) < p_near
        wrong = torch.where(use, near[labels, pick], wrong)
    return wrong


def nearest_names(emb: torch.Tensor, k: int = 4) -> torch.Tensor:
    """[K, min(k, K-1)]: for each name, the other names with the most similar sentence vectors."""
    e = F.normalize(emb.float() - emb.float().mean(0), dim=1)  # the names share a large common part
    sims = e @ e.T
    sims.fill_diagonal_(-float("inf"))
    return sims.topk(min(k, emb.shape[0] - 1), dim=1).indices


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float().div(127.5).sub(1.0)


def real_diversity(data: TrainData, names: Sequence[str], per_name: int = 16) -> float:
    """Mean within-name pairwise L1 of the real photos of ``names`` (the in-training diversity's reference)."""
    label_of = {n: i for i, n in enumerate(data.names)}
    return real_pixel_diversity(data.images, data.labels, [label_of[n] for n in names if n in label_of],
                                per_name, DIVERSITY_SIZE)


def ema_decay(target: float, step: int) -> float:
    """EMA decay with a warm-up: ``min(target, (1 + step) / (10 + step))``, so that a short run's
    EMA is not still mostly its random initialisation (0.999 alone needs thousands of steps)."""
    return min(target, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = lerp(ema, model, 1 - decay)`` for the weights (one fused call), buffers copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))


@torch.no_grad()
def recalibrate_bn(G: nn.Module, forward: Callable[[int, torch.Generator], Any], batches: int = 8,
                   batch_size: int = 64, seed: int = 1234) -> None:
    """Recompute BatchNorm running statistics of ``G`` (an EMA copy whose weights drifted from the
    statistics it inherited) from ``batches`` forward passes in train mode. Draws come from a
    private generator, so training's RNG is untouched."""
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes
    gen = torch.Generator().manual_seed(seed)
    was = G.training
    G.train()
    try:
        for _ in range(batches):
            forward(batch_size, gen)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        G.train(was)


def _state_to(obj: Any, device: torch.device | str) -> Any:
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _state_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_state_to(v, device) for v in obj)
    return obj


# -- stage-I reference for stage II --------------------------------------------------------------------
@dataclass
class Stage1Ref:
    cfg: StackGANConfig
    G: Stage1G
    source: Path
    config_file: Path | None
    weights_file: Path | None


def load_stage1(path: str | os.PathLike, device: torch.device | str = "cpu") -> Stage1Ref:
    """A stage-I EMA generator from a run folder, a ckpt-*.pt or a G_ema.safetensors, with its config
    (read as :mod:`stackgan.runs` says).

    A clear :class:`CheckpointError` for anything that is not a stage-I StackGAN run.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"stage-I checkpoint not found: {path}")
    run = RunFolder.open(path)
    cfg = run.require(STACKGAN, needs="--stage1 needs a `stackgan train --stage 1` run")
    if cfg.stage != 1:
        raise CheckpointError(f"{path} is a stage-{cfg.stage} run; --stage1 needs a stage-I run")
    G = run.load_into(stage1_generator(cfg))
    G.to(device).eval().requires_grad_(False)
    return Stage1Ref(cfg, G, path, run.config_file, run.weights_file)


def check_stage1_matches(cfg: StackGANConfig, ref: Stage1Ref) -> None:
    """Stage II must share stage I's text encoder, embedding size and stage-I picture size."""
    s1 = ref.cfg
    problems = []
    if s1.text_encoder != cfg.text_encoder:
        problems.append(f"text encoder {s1.text_encoder!r} vs {cfg.text_encoder!r}")
    if cfg.emb_dim and s1.emb_dim != cfg.emb_dim:
        problems.append(f"embedding size {s1.emb_dim} vs {cfg.emb_dim}")
    if s1.image_size != cfg.image_size:
        problems.append(f"image size {s1.image_size} vs --image-size {cfg.image_size}")
    if s1.z_dim != cfg.z_dim:
        problems.append(f"z size {s1.z_dim} vs --z-dim {cfg.z_dim}")
    if s1.parts != cfg.parts:
        problems.append(f"parts {'on' if s1.parts else 'off'} vs {'on' if cfg.parts else 'off'}")
    if problems:
        raise CheckpointError(f"the stage-I run {ref.source} does not match this stage-II run: "
                              + "; ".join(problems))


# -- the trainer ---------------------------------------------------------------------------------------
class StackGANTrainer:
    """One stage of StackGAN: models, optimisers, the step, checkpoints and the run folder."""

    def __init__(self, cfg: StackGANConfig, data: TrainData, out: str | os.PathLike,
                 stage1: Stage1Ref | None = None, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else resolve_device(cfg.device)
        if cfg.emb_dim == 0:
            cfg = dataclasses.replace(cfg, emb_dim=int(data.emb.shape[1]))
        elif cfg.emb_dim != data.emb.shape[1]:
            raise ConfigError(f"the config says {cfg.emb_dim}-d sentence vectors, the data has {data.emb.shape[1]}")
        if cfg.parts != (data.parts is not None):
            raise ConfigError("--parts needs name vectors that end in the parts code (load_training_data with "
                              "--parts), and only then")
        if data.parts is not None:
            if cfg.part_dim == 0:
                cfg = dataclasses.replace(cfg, part_dim=data.parts.dim)
            elif cfg.part_dim != data.parts.dim:
                raise ConfigError(f"the run's parts code has {cfg.part_dim} values, the data's {data.parts.dim} "
                                  "(another attributes.tsv?)")
        if data.size != cfg.out_size:
            raise DataError(f"stage {cfg.stage} trains on {cfg.out_size} px photos, got {data.size} px")
        self.cfg = cfg.validate()
        self.data = data
        self.out = Path(out)
        self.stage1 = stage1
        if cfg.stage == 2:
            if stage1 is None:
                raise ConfigError("stage 2 needs a stage-I generator")
            check_stage1_matches(cfg, stage1)
            stage1.G.to(self.device).eval().requires_grad_(False)

        torch.manual_seed(cfg.seed)
        if cfg.stage == 1:
            self.G: nn.Module = stage1_generator(cfg)
        else:
            self.G = stage2_generator(cfg)
        self.D: nn.Module = discriminator(cfg)
        init_weights(self.G)
        init_weights(self.D)
        self.G.ca.set_normalization(data.emb)
        self.G.to(self.device)
        self.D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.precision = resolve_precision(cfg.precision if cfg.amp else "fp32", self.device)
        self.use_amp = self.precision == "bf16"
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes every step
        if self.use_amp:
            to_channels_last(self.G, self.D, self.G_ema)
            if stage1 is not None:
                to_channels_last(stage1.G)

        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas)
        self.augment = DiffAugment(cfg.diffaugment)
        self.ada = AdaController(self.augment, target=cfg.ada_target, speed_imgs=cfg.ada_speed) if cfg.ada else None
        prior = PatchPrior(data.images.to(self.device), seed=cfg.seed) if cfg.patch_prior > 0 else None
        self.loss = StackGANLoss(cfg, self.D, self.augment, data.parts.sizes if data.parts is not None else (),
                                 patch_prior=prior)
        self._last_vision: dict[str, float] = {}  # --d-vision's latest terms, for the log
        self._part_shares: tuple[torch.Tensor, ...] | None = None  # --part-mix, computed on first use
        self._sentence_fit = None  # --part-mix-sentence parts, fitted on first use
        self._bank: dict[str, torch.Tensor] | None = None  # --stage2-paired-inverted, fitted on first use

        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        counts = torch.bincount(self.labels, minlength=len(data.names)).float()
        self.draw_weights = (1.0 / counts)[self.labels]  # every name equally likely, then one of its photos
        self.emb = data.emb.float().to(self.device)
        self.near = nearest_names(self.emb).to(self.device) if len(data.names) > 1 else None
        self.grid_emb = data.grid_emb.float().to(self.device)
        self.step = 0
        self.train_seconds = 0.0  # training time of this run, summed over resumptions (--max-minutes)
        self._bn_fresh_step = -1  # the step at which G_ema's BatchNorm statistics were last recomputed
        # the last good state, and the learning-rate scale lowered after a NaN (recovery.py)
        self.nan_guard = NanGuard({"G": self.G, "D": self.D, "G_ema": self.G_ema, "opt_g": self.opt_g,
                                   "opt_d": self.opt_d})
        self._last_t = time.perf_counter()
        self.log = JsonlLog(self.out / "log.jsonl")
        self._printer: Callable[[str], None] = print

        fixed = torch.Generator().manual_seed(cfg.seed + 7919)
        cols = cfg.grid_cols if cfg.stage == 1 else max(1, cfg.grid_cols // 2)
        self.grid_cols = cols
        self.fixed_z = torch.randn(cols, cfg.z_dim, generator=fixed).to(self.device)
        self.fixed_eps1 = torch.randn(cols, (stage1.cfg.c_dim if stage1 else cfg.c_dim), generator=fixed).to(self.device)
        self.fixed_eps2 = torch.randn(cols, cfg.c_dim, generator=fixed).to(self.device)
        self.div_real = real_diversity(data, data.grid_names)

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def lr_scale(self) -> float:
        """The factor on the learning rates: 1, halved at every recovery from a NaN."""
        return self.nan_guard.lr_scale

    @lr_scale.setter
    def lr_scale(self, value: float) -> None:
        self.nan_guard.lr_scale = value

    @property
    def nan_events(self) -> int:
        return self.nan_guard.events

    @nan_events.setter
    def nan_events(self, value: int) -> None:
        self.nan_guard.events = value

    @property
    def steps_per_epoch(self) -> float:
        return self.images.shape[0] / self.cfg.batch_size

    @property
    def epoch(self) -> float:
        return self.step / self.steps_per_epoch

    def total_steps(self) -> int | None:
        """The last step of the run, or None when only --max-minutes bounds it."""
        s = []
        if self.cfg.max_steps:
            s.append(self.cfg.max_steps)
        if self.cfg.epochs:
            s.append(math.ceil(self.cfg.epochs * self.steps_per_epoch))
        return min(s) if s else None

    def out_of_time(self) -> bool:
        return bool(self.cfg.max_minutes) and self.train_seconds >= self.cfg.max_minutes * 60.0

    def current_lr(self) -> tuple[float, float]:
        decay = 1.0
        if self.cfg.lr_decay_epochs:
            decay = 0.5 ** int(self.epoch // self.cfg.lr_decay_epochs)
        f = decay * self.lr_scale
        return self.cfg.lr_g * f, self.cfg.lr_d * f

    def _set_lr(self) -> tuple[float, float]:
        lr_g, lr_d = self.current_lr()
        for g in self.opt_g.param_groups:
            g["lr"] = lr_g
        for g in self.opt_d.param_groups:
            g["lr"] = lr_d
        return lr_g, lr_d

    # -- one step --------------------------------------------------------------------------------
    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = self.cfg.batch_size
        if self.cfg.balance_names:
            idx = torch.multinomial(self.draw_weights, b, replacement=True)
        else:
            idx = torch.randint(0, self.images.shape[0], (b,), device=self.device)
        real = to_float(self.images[idx])
        if self.cfg.flip:
            flip = torch.rand(b, device=self.device) < 0.5
            real = torch.where(flip[:, None, None, None], real.flip(3), real)
        if self.use_amp:
            real = real.contiguous(memory_format=torch.channels_last)
        y = self.labels[idx]
        return real, y, wrong_labels(y, len(self.data.names), near=self.near, p_near=self.cfg.wrong_near)

    def hide(self, emb: torch.Tensor) -> torch.Tensor:
        """``--parts``: name vectors with the sentence vector (``--name-drop``) or a part (``--parts-drop``)
        hidden at random: the sentence vector becomes the training names' mean, a part's block all zeros
        (unknown). Unchanged without ``--parts``."""
        cfg = self.cfg
        if not cfg.parts or (cfg.name_drop == 0 and cfg.parts_drop == 0):
            return emb
        emb = emb.clone()
        n, t = emb.shape[0], self.G.ca.text_dim
        if cfg.name_drop > 0:
            hidden = torch.rand(n, device=emb.device) < cfg.name_drop
            emb[hidden, :t] = self.G.ca.emb_shift[:t].to(emb.dtype)
        at = t
        for size in self.data.parts.sizes:
            if cfg.parts_drop > 0:
                emb[torch.rand(n, device=emb.device) < cfg.parts_drop, at:at + size] = 0
            at += size
        return emb

    def mix_parts(self, emb: torch.Tensor, share: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``--part-mix``: a share of the rows (``share``, else ``--part-mix``) replaced by random
        combinations of known parts (each part drawn independently, from its share among the training
        names or, with ``--part-mix-draw uniform``, alike among the values they have) with the sentence
        vector hidden (``--part-mix-sentence parts``: predicted from the parts; ``nearest``: that of a training
        name sharing the most parts).
        Returns the rows and the mask of the replaced ones."""
        cfg = self.cfg
        n, t = emb.shape[0], self.G.ca.text_dim
        mixed = torch.rand(n, device=emb.device) < (cfg.part_mix if share is None else share)
        k = int(mixed.sum())
        if k == 0:
            return emb, mixed
        emb = emb.clone()
        codes = torch.zeros(k, cfg.part_dim, device=emb.device, dtype=emb.dtype)
        at = 0
        for weights in self.part_shares():
            if cfg.part_mix_draw == "uniform":
                weights = (weights > 0).float()
            pick = torch.multinomial(weights, k, replacement=True)
            codes[torch.arange(k, device=emb.device), at + pick] = 1.0
            at += len(weights)
        if cfg.part_mix_sentence == "parts":  # the sentence vector a new name of these parts is read with
            emb[mixed, :t] = self.sentence_fit(codes)
        elif cfg.part_mix_sentence == "nearest":  # a training name's own vector, with other parts
            emb[mixed, :t] = self.emb[self.nearest_by_parts(codes), :t].to(emb.dtype)
        else:
            emb[mixed, :t] = self.G.ca.emb_shift[:t].to(emb.dtype)
        emb[mixed, t:] = codes
        return emb, mixed

    def nearest_by_parts(self, codes: torch.Tensor) -> torch.Tensor:
        """``--part-mix-sentence nearest``: for each parts code, the index of a training name that shares the
        most parts with it (drawn at random among the ties)."""
        shared = codes.float() @ self.emb[:, self.G.ca.text_dim:].float().T  # [k, names]: parts in common
        return (shared + 0.5 * torch.rand_like(shared)).argmax(1)

    def sentence_fit(self, codes: torch.Tensor) -> torch.Tensor:
        """``--part-mix-sentence parts``: the sentence vectors predicted from parts codes by the fit on the
        training names' vectors (:class:`stackgan.text.parts.SentenceFit`, as the pipeline reads new names)."""
        if self._sentence_fit is None:
            from stackgan.text.parts import SentenceFit

            self._sentence_fit = SentenceFit(self.emb, self.G.ca.text_dim)
        return self._sentence_fit(codes)

    def part_shares(self) -> tuple[torch.Tensor, ...]:
        """Each part value's share among the training names, one tensor per part (computed once)."""
        if self._part_shares is None:
            t = self.G.ca.text_dim
            self._part_shares = self.emb[:, t:].float().mean(0).split(list(self.data.parts.sizes))
        return self._part_shares

    def swap_a_part(self, own: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
        """``--wrong-parts``: a share of the wrong-name rows replaced by the real photo's own name vector
        (``own``) with the sentence vector hidden and one part (drawn among the parts that have another
        value) changed to another value the training names have, drawn by its share."""
        cfg = self.cfg
        t = self.G.ca.text_dim
        shares = self.part_shares()
        sizes = list(self.data.parts.sizes)
        starts = [sum(sizes[:j]) for j in range(len(sizes))]
        pick = (torch.rand(own.shape[0], device=own.device) < cfg.wrong_parts).nonzero().flatten().tolist()
        if not pick:
            return wrong
        wrong = wrong.clone()
        for i in pick:
            row = own[i].clone()
            row[:t] = self.G.ca.emb_shift[:t].to(row.dtype)
            blocks = row[t:].split(sizes)
            options = []
            for j, (block, share) in enumerate(zip(blocks, shares)):
                other = share.clone()
                other[int(block.argmax())] = 0
                if float(other.sum()) > 0:
                    options.append((j, other))
            if not options:
                continue
            j, other = options[int(torch.randint(len(options), ()))]
            new = int(torch.multinomial(other, 1))
            row[t + starts[j]:t + starts[j] + sizes[j]] = 0
            row[t + starts[j] + new] = 1
            wrong[i] = row
        return wrong

    def _generate(self, G: nn.Module, z: torch.Tensor, emb: torch.Tensor, eps1: torch.Tensor | None = None,
                  eps2: torch.Tensor | None = None, noise1: list[torch.Tensor] | None = None,
                  noise2: list[torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(picture, mu, logvar, stage-I picture or None) from the model being trained (or its EMA);
        ``noise1`` / ``noise2``: stage I's / stage II's noise-input maps (drawn anew where not given)."""
        if self.cfg.stage == 1:
            img, mu, logvar = G(z, emb, eps1, noise=noise1)
            return img, mu, logvar, None
        with torch.no_grad():
            low, _, _ = self.stage1.G(z, emb, eps1, noise=noise1)
        img, mu, logvar = G(low, emb, eps2, noise=noise2)
        return img, mu, logvar, low

    def _maps(self, maps: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
        return None if maps is None else [m.to(self.device) for m in maps]

    def train_step(self) -> dict[str, float] | None:
        """One D update and one G update. Returns the step's numbers, or None when it was skipped
        (non-finite loss: the last good state is restored and the learning rate lowered)."""
        cfg = self.cfg
        lr_g, lr_d = self._set_lr()
        self.G.train()
        self.D.train()
        real, y, yw = self._batch()
        emb_w = self.hide(self.emb[yw])
        if cfg.wrong_parts > 0:  # some wrong names differ from the photo's own in one part only
            emb_w = self.swap_a_part(self.emb[y], emb_w)
        half = real.shape[0] // 2
        y_fake = y
        emb = self.hide(self.emb[y_fake])
        if cfg.part_mix > 0 and cfg.part_mix_add:  # more fakes, of random combinations of known parts
            k = round(cfg.part_mix * len(y_fake))
            extra, _ = self.mix_parts(emb[:k], share=1.0)
            emb = torch.cat([emb, extra])
            y_fake = torch.cat([y_fake, torch.full((k,), -1, dtype=y_fake.dtype, device=y_fake.device)])
        elif cfg.part_mix > 0:  # some fakes are of random combinations of known parts: no training name
            emb, mixed = self.mix_parts(emb)
            y_fake = torch.where(mixed, torch.full_like(y_fake, -1), y_fake)
        if cfg.mode_seeking > 0:  # the fakes in pairs: the second half repeats the first half's name vectors
            # (what --parts hid, or the --part-mix combination, too)
            y_fake = torch.cat([y_fake[:half], y_fake[:half], y_fake[2 * half:]])
            emb = torch.cat([emb[:half], emb[:half], emb[2 * half:]])
        z = torch.randn(emb.shape[0], cfg.z_dim, device=self.device)
        with autocast(self.device, self.use_amp):
            fake, mu, logvar, low = self._generate(self.G, z, emb)
            with torch.no_grad():
                mu_w, _ = self.G.ca.encode(emb_w)
                mu_r, _ = self.G.ca.encode(self.hide(self.emb[y])) if y_fake is not y else (mu, None)
            c, c_w, c_r = mu.detach(), mu_w.detach(), mu_r.detach()
            c_all = None
            if cfg.name_loss > 0:
                with torch.no_grad():
                    c_all = self.G.ca.encode(self.emb)[0].detach()  # every training name's code
            t = self.G.ca.text_dim
            d_loss, d_parts = self.loss.d_phase(real, fake, y, c, c_w, c_r, c_all, self.step,
                                                parts_real=self.emb[y][:, t:] if cfg.part_loss > 0 else None,
                                                cond_fakes=self.loss.cond_fakes(y_fake),
                                                parts_fake=emb[:, t:] if cfg.part_twin else None)
        if not torch.isfinite(d_loss):
            return self._recover("D", d_loss)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        if self.ada is not None:
            self.ada.update(d_parts["real_u"])

        self.D.requires_grad_(False)  # G's phase: gradients flow through D to G, D's own are not needed
        with autocast(self.device, self.use_amp):
            paired = None
            if cfg.stage2_paired > 0:  # real photos redrawn from stage-I-size pictures of them (own names)
                low_p, real_p, y_p = self._paired_batch(real, y)
                paired = (self.G(low_p, self.hide(self.emb[y_p]))[0], real_p)
            if low is not None and cfg.stage2_input_pool > 1:  # consistency at the size stage II reads
                low = F.avg_pool2d(low, cfg.stage2_input_pool)
            g_loss, g_parts = self.loss.g_phase(fake, y_fake, c, mu, logvar, c_all, z, half, low=low,
                                                parts_fake=emb[:, t:] if cfg.part_loss > 0 else None,
                                                paired=paired, step=self.step)
        if not torch.isfinite(g_loss):
            self.D.requires_grad_(True)
            return self._recover("G", g_loss)
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.D.requires_grad_(True)
        self.opt_g.step()
        ema_update(self.G_ema, self.G, ema_decay(cfg.ema, self.step))
        self.step += 1
        self.nan_guard.after_step(self.step)

        with torch.no_grad():
            prob = torch.sigmoid
            return {
                "d_loss": float(d_loss), "g_loss": float(g_loss), "g_adv": float(g_parts["g_adv"]),
                "kl": float(g_parts["kl"]), "gp": float(d_parts["gp"]), "ms": float(g_parts["ms"]),
                "cons": float(g_parts["cons"]),
                "r1": float(d_parts["r1"]), "name_d": float(d_parts["name_d"]), "name_g": float(g_parts["name_g"]),
                **({"part_d": float(d_parts["part_d"]), "part_g": float(g_parts["part_g"])} if cfg.part_loss > 0
                   else {}),
                **({"twin_d": float(d_parts["twin_d"]), "twin_g": float(g_parts["twin_g"])} if cfg.part_twin
                   else {}),
                **({"paired": float(g_parts["paired"])} if cfg.stage2_paired > 0 else {}),
                **({"d_recon": float(d_parts["d_recon"])} if cfg.d_recon > 0 else {}),
                **({"d_patch": float(d_parts["d_patch"]), "g_patch": float(g_parts["g_patch"])} if cfg.d_patch > 0
                   else {}),
                **({"bcr": float(d_parts["bcr"])} if cfg.bcr > 0 else {}),
                **({"patch_prior": float(g_parts["patch_prior"])} if cfg.patch_prior > 0 else {}),
                **(self._vision_stats(d_parts, g_parts) if cfg.d_vision > 0 else {}),
                "d_real": float(prob(d_parts["real_c"].float()).mean()),
                "d_wrong": float(prob(d_parts["wrong_c"].float()).mean()),
                # D's mean "real" on the fakes with their codes (unconditionally in a batch where none met
                # the conditional term: --no-part-mix-cond with every draw mixed)
                "d_fake": float(prob((d_parts["fake_c"] if d_parts["fake_c"].numel() else d_parts["fake_u"])
                                     .float()).mean()),
                "mu_abs": float(mu.float().abs().mean()), "sigma": float(torch.exp(0.5 * logvar.float()).mean()) if logvar is not None else 0.0,
                "lr_g": lr_g, "lr_d": lr_d, "aug_p": float(self.augment.p),
            }

    def _paired_batch(self, real: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(stage-I-size inputs, photos, labels) of --stage2-paired: the batch's photos pooled (and bent by
        --stage2-paired-warp), or with --stage2-paired-inverted a draw from the inverted bank, flipped alike."""
        cfg = self.cfg
        if not cfg.stage2_paired_inverted:
            return elastic_warp(F.avg_pool2d(real, cfg.stage2_scale), cfg.stage2_paired_warp), real, y
        bank = self.inverted_bank()
        b = real.shape[0]
        j = torch.randint(0, bank["idx"].shape[0], (b,), device=self.device)
        idx = bank["idx"][j]
        photos, low = to_float(self.images[idx]), bank["low"][j].to(real.dtype)
        if cfg.flip:
            flip = (torch.rand(b, device=self.device) < 0.5)[:, None, None, None]
            photos, low = torch.where(flip, photos.flip(3), photos), torch.where(flip, low.flip(3), low)
        if self.use_amp:
            photos, low = (x.contiguous(memory_format=torch.channels_last) for x in (photos, low))
        return low, photos, self.labels[idx]

    def inverted_bank(self) -> dict[str, torch.Tensor]:
        """--stage2-paired-inverted's pairs: the stage-I pictures nearest N training photos (:mod:`invert`),
        computed on first use and kept in the run folder (``paired_inverted.pt``), so a resumed run reuses them."""
        if self._bank is not None:
            return self._bank
        from stackgan.train.invert import inverted_bank

        cfg, path = self.cfg, self.out / "paired_inverted.pt"
        bank = None
        if path.is_file():
            bank = torch.load(path, map_location="cpu", weights_only=True)
            if int(bank.get("n", -1)) != cfg.stage2_paired_inverted or int(bank.get("seed", -1)) != cfg.seed:
                bank = None
        if bank is None:
            n = min(cfg.stage2_paired_inverted, self.images.shape[0])
            self._printer(f"--stage2-paired-inverted: fitting stage I's pictures to {n} training photos "
                          "(once; kept in the run folder)")
            t0 = time.perf_counter()

            def report(done: int, total: int, l1: float) -> None:
                if self.cfg.progress:
                    self._printer(f"  inverted {done}/{total}: L1 {l1:.3f} ({time.perf_counter() - t0:.0f} s)")

            photos = F.avg_pool2d(to_float(self.images), cfg.stage2_scale)
            bank = inverted_bank(self.stage1.G, photos, self.emb[self.labels], n, cfg.seed, report=report)
            bank.update(n=torch.tensor(cfg.stage2_paired_inverted), seed=torch.tensor(cfg.seed))
            self.out.mkdir(parents=True, exist_ok=True)
            io.atomic_torch_save(bank, path)
            self.log.write(step=self.step, event="paired_inverted", photos=n, l1=round(float(bank["l1"].mean()), 4),
                           seconds=round(time.perf_counter() - t0, 1))
        self._bank = {"idx": bank["idx"].to(self.device), "low": bank["low"].to(self.device)}
        return self._bank

    def _vision_stats(self, d_parts: dict[str, Any], g_parts: dict[str, Any]) -> dict[str, float]:
        """--d-vision's two terms for the log: the step just taken's, or with --d-vision-every N the latest step's
        that computed them (none before the first)."""
        if self.loss.vision_due(self.step - 1):
            self._last_vision = {"d_vision": float(d_parts["d_vision"]), "g_vision": float(g_parts["g_vision"])}
        return self._last_vision

    # -- NaN recovery -------------------------------------------------------------------------------
    def _snapshot(self) -> None:
        self.nan_guard.snapshot(self.step)

    def _recover(self, where: str, loss: torch.Tensor) -> None:
        self.step = self.nan_guard.recover(
            where, loss, self.step, printer=self._printer, log=self.log,
            advice=f"Try a lower --lr-g/--lr-d, --loss hinge or another --seed; the checkpoints in {self.out} "
                   "are intact")
        self._bn_fresh_step = -1
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        return None

    # -- sampling ----------------------------------------------------------------------------------------
    def _ema_forward(self, n: int, gen: torch.Generator) -> None:
        # every draw from ``gen``: the global RNG (training's) must not move
        idx = torch.randint(0, self.emb.shape[0], (n,), generator=gen)
        z = torch.randn(n, self.cfg.z_dim, generator=gen).to(self.device)
        eps = torch.randn(n, self.cfg.c_dim, generator=gen).to(self.device)
        emb = self.emb[idx.to(self.device)]
        noise = self._maps(self.G_ema.random_noise(n, gen))
        with autocast(self.device, self.use_amp):
            if self.cfg.stage == 1:
                self.G_ema(z, emb, eps, noise=noise)
            else:
                eps1 = torch.randn(n, self.stage1.cfg.c_dim, generator=gen).to(self.device)
                noise1 = self._maps(self.stage1.G.random_noise(n, gen))
                low, _, _ = self.stage1.G(z, emb, eps1, noise=noise1)
                self.G_ema(low, emb, eps, noise=noise)

    def refresh_ema_bn(self) -> None:
        """Recompute G_ema's BatchNorm statistics (once per step: the grid and the checkpoint share them)."""
        if self._bn_fresh_step != self.step:
            recalibrate_bn(self.G_ema, self._ema_forward, batches=8,
                           batch_size=min(64, max(8, self.cfg.batch_size)))
            self._bn_fresh_step = self.step
        self.G_ema.eval()

    @torch.no_grad()
    def sample_grid(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(pictures [rows*cols, 3, S, S], stage-I pictures or None) of the fixed names and z with G_ema."""
        self.refresh_ema_bn()
        rows = self.grid_emb.shape[0]
        cols = self.grid_cols
        emb = self.grid_emb.repeat_interleave(cols, 0)
        z = self.fixed_z.repeat(rows, 1)
        e1 = self.fixed_eps1.repeat(rows, 1)
        e2 = self.fixed_eps2.repeat(rows, 1)
        seeds = list(range(cols)) * rows  # column i's noise maps, like its z, the same in every row and grid
        stage1_g = self.G_ema if self.cfg.stage == 1 else self.stage1.G
        noise1 = self._maps(stage1_g.draw_noise(seeds))
        noise2 = self._maps(self.G_ema.draw_noise(seeds)) if self.cfg.stage == 2 else None
        with autocast(self.device, self.use_amp):
            img, _, _, low = self._generate(self.G_ema, z, emb, e1, e2, noise1, noise2)
        return img.float().cpu(), (low.float().cpu() if low is not None else None)

    def write_samples(self) -> dict[str, float]:
        img, low = self.sample_grid()
        cols = self.grid_cols
        path = self.out / "samples" / f"{self.step:06d}.png"
        if low is None:
            viz.save_grid(img, path, nrow=cols)
        else:
            up = F.interpolate(low, size=img.shape[-2:], mode="nearest")
            pairs = torch.stack([up, img], dim=1).flatten(0, 1)  # s1, s2, s1, s2 ...
            viz.save_grid(pairs, path, nrow=2 * cols)
        # diversity of the same name over the fixed z, vs. real photos of that name
        known = set(self.data.names)
        rows = [i for i, n in enumerate(self.data.grid_names) if n in known] or range(len(self.data.grid_names))
        per = [mean_pairwise_l1(img[i * cols:(i + 1) * cols], DIVERSITY_SIZE) for i in rows]
        div_gen = sum(per) / len(per)
        ok = math.isfinite(self.div_real) and self.div_real > 0
        out = {"div_gen": div_gen, "div_real": self.div_real,
               "div_ratio": div_gen / self.div_real if ok else float("nan")}
        # how far apart different names are with the same z: a low value means the names are ignored
        by_col = img.view(len(self.data.grid_names), cols, *img.shape[1:]).transpose(0, 1)
        out["div_names"] = sum(mean_pairwise_l1(by_col[j], DIVERSITY_SIZE) for j in range(cols)) / cols
        return out

    # -- checkpoints -------------------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "kind": self.cfg.kind,
            "config": self.cfg.to_dict(),
            "step": self.step,
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(), "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": io.capture_rng(),
            "ada": self.ada.state_dict() if self.ada is not None else None,
            "aug_p": self.augment.p,
            "lr_scale": self.lr_scale, "nan_events": self.nan_events,
            "train_seconds": self.train_seconds, "precision": self.precision,
        }

    def save_checkpoint(self) -> Path:
        # RNG first: sampling / BN recalibration below use private generators, but capture before them anyway
        state = self.checkpoint_state()
        self.refresh_ema_bn()
        state["G_ema"] = {k: v.detach().clone() for k, v in self.G_ema.state_dict().items()}
        path = io.atomic_torch_save(state, self.out / f"ckpt-{self.step:06d}.pt")
        io.atomic_save_safetensors(dict(self.G_ema.state_dict()), self.out / "G_ema.safetensors",
                                   metadata={"kind": self.cfg.kind, "step": str(self.step)})
        io.prune_checkpoints(self.out, self.cfg.keep_ckpts)
        return path

    def load_checkpoint(self, path: str | os.PathLike, state: dict[str, Any] | None = None) -> None:
        """Continue from a checkpoint (``state``: its contents, when already loaded)."""
        ck = state if state is not None else io.load_checkpoint(path, map_location=self.device)
        if ck.get("kind") != self.cfg.kind:
            raise CheckpointError(f"{path} is a {ck.get('kind')} checkpoint, not {self.cfg.kind}")
        try:
            self.G.load_state_dict(ck["G"])
            self.G_ema.load_state_dict(ck["G_ema"])
            self.D.load_state_dict(ck["D"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path} does not fit this model: {exc}") from None
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.step = int(ck["step"])
        self.lr_scale = float(ck.get("lr_scale", 1.0))
        self.nan_events = int(ck.get("nan_events", 0))
        self.train_seconds = float(ck.get("train_seconds", 0.0))
        self.augment.p = float(ck.get("aug_p", 1.0))
        if self.ada is not None and ck.get("ada"):
            self.ada.load_state_dict(ck["ada"])
        io.restore_rng(_state_to(ck["rng"], "cpu"))
        self._snapshot()

    def init_from(self, path: str | os.PathLike, state: dict[str, Any]) -> list[str]:
        """Start from another run's weights (``--init-from``): G and its EMA must fit as they are; D's parts that
        the source lacks keep their fresh initialisation, and the source's D parts this model has not are left
        out. Optimisers, step and schedules stay new. Returns what was left fresh or out, for the log."""
        if state.get("kind") != self.cfg.kind:
            raise CheckpointError(f"--init-from {path} is a {state.get('kind')} checkpoint, not {self.cfg.kind}")
        try:
            self.G.load_state_dict(state["G"])
            self.G_ema.load_state_dict(state["G_ema"])
            res = self.D.load_state_dict(state["D"], strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"--init-from {path} does not fit this model (the same stage, widths, text "
                                  f"encoder and --parts are needed): {exc}") from None
        shared = set(state["D"]) - set(res.unexpected_keys)
        if not shared:
            raise CheckpointError(f"--init-from {path}: its discriminator has no part in common with this one")
        self._snapshot()

        def heads(keys: list[str]) -> str:
            return ", ".join(sorted({k.split(".")[0] for k in keys}))
        return ([f"D's new {heads(res.missing_keys)} start fresh"] if res.missing_keys else []) + \
            ([f"the source's D {heads(res.unexpected_keys)} left out"] if res.unexpected_keys else [])

    # -- the run folder -------------------------------------------------------------------------------
    def write_run_files(self) -> None:
        """config.json, names.json, embeddings.safetensors (and stage1/ for stage II)."""
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg.save_json(self.out / "config.json")
        counts = self.data.counts()
        names = {"names": self.data.names, "counts": [counts[n] for n in self.data.names],
                 "grid_names": self.data.grid_names, "n_images": int(self.images.shape[0]),
                 "data": self.data.source, "text_encoder": self.cfg.text_encoder, "emb_dim": self.cfg.emb_dim,
                 **({"encoder_id": self.data.encoder_id} if self.data.encoder_id else {}),
                 **({"parts": self.data.parts.to_json(), "part_dim": self.cfg.part_dim} if self.data.parts else {})}
        io.atomic_write_text(self.out / "names.json", json.dumps(names, ensure_ascii=False, indent=1) + "\n")
        io.atomic_save_safetensors({"names": self.data.emb.float().clone(), "grid": self.data.grid_emb.float().clone()},
                                   self.out / "embeddings.safetensors",
                                   metadata={"text_encoder": self.cfg.text_encoder})
        if self.stage1 is not None:
            dst = self.out / "stage1"
            dst.mkdir(exist_ok=True)
            self.stage1.cfg.save_json(dst / "config.json")
            io.atomic_save_safetensors(dict(self.stage1.G.state_dict()), dst / "G_ema.safetensors",
                                       metadata={"kind": "stackgan-stage1", "source": self.stage1.source.name})

    def finish_pictures(self) -> None:
        recs = [r for r in read_jsonl(self.out / "log.jsonl") if "d_loss" in r] if (self.out / "log.jsonl").exists() else []
        if recs:
            viz.plot_losses(recs, self.out / "losses.png", keys=["d_loss", "g_adv", "kl"],
                            title=f"StackGAN stage {self.cfg.stage}")
        frames = sorted((self.out / "samples").glob("*.png"))
        if frames:
            viz.make_gif(frames, self.out / "progress.gif")

    def fit(self, printer: Callable[[str], None] = print) -> dict[str, Any]:
        """Train until the budget (steps, epochs and/or --max-minutes); returns a summary (steps,
        img/s, last losses, diversity, why it stopped)."""
        from tqdm import tqdm

        cfg = self.cfg
        self._printer = (lambda m: tqdm.write(m)) if cfg.progress and printer is print else printer
        total = self.total_steps()
        self.write_run_files()
        if self.step == 0:
            self.log.path.unlink(missing_ok=True)  # a fresh run: no lines from an earlier attempt
        else:
            self.log.truncate_after(self.step)
        if total is not None and self.step >= total:
            printer(f"nothing to do: the run is at step {self.step} of {total}")
        elif self.out_of_time():
            printer(f"nothing to do: the run has trained {self.train_seconds / 60:.1f} of --max-minutes "
                    f"{cfg.max_minutes:g}")
        bar = tqdm(total=total, initial=self.step, disable=not cfg.progress, dynamic_ncols=True,
                   desc=f"stage {cfg.stage}")
        t_start = time.perf_counter()
        start_step = self.step
        window_t, window_imgs = time.perf_counter(), 0
        last: dict[str, float] = {}
        div: dict[str, float] = {}
        if self.step == 0:
            div = self.write_samples()
            self.log.write(step=0, **div)
        stopped_by = "max_steps"
        t_mark = time.perf_counter()  # training time counts the steps, grids and checkpoints of the loop
        with graceful_interrupt(self._printer) as interrupt:  # Ctrl-C: stop after this step
            try:
                while (total is None or self.step < total) and not interrupt.requested and not self.out_of_time():
                    t0 = time.perf_counter()
                    stats = self.train_step()
                    if stats is None:
                        bar.n = self.step
                        bar.refresh()
                        continue
                    dt = time.perf_counter() - t0
                    self.train_seconds += time.perf_counter() - t_mark
                    t_mark = time.perf_counter()
                    window_imgs += cfg.batch_size
                    last = stats
                    bar.update(1)
                    final = self.step == total or self.out_of_time()
                    if self.step % cfg.log_every == 0 or final:
                        now = time.perf_counter()
                        ips = window_imgs / max(now - window_t, 1e-9)
                        window_t, window_imgs = now, 0
                        stats["img_s"] = ips
                        self.log.write(step=self.step, epoch=round(self.epoch, 3), sec_step=dt,
                                       train_seconds=round(self.train_seconds, 2), **stats)
                        bar.set_postfix(d=f"{stats['d_loss']:.3f}", g=f"{stats['g_adv']:.3f}", kl=f"{stats['kl']:.3f}",
                                        ips=f"{ips:.1f}")
                    if self.step % cfg.sample_every == 0 or final:
                        div = self.write_samples()
                        self.log.write(step=self.step, **div)
                    if self.step % cfg.ckpt_every == 0 or final:
                        self.train_seconds += time.perf_counter() - t_mark  # the checkpoint records its own time
                        t_mark = time.perf_counter()
                        self.save_checkpoint()
                    self.train_seconds += time.perf_counter() - t_mark
                    t_mark = time.perf_counter()
                if interrupt.requested:
                    stopped_by = "interrupt"
                    self._printer(f"stopped at step {self.step}: writing a checkpoint")
                    if last and self.step % cfg.log_every:
                        self.log.write(step=self.step, epoch=round(self.epoch, 3), **last)
                    div = self.write_samples()
                    self.log.write(step=self.step, **div)
                    self.save_checkpoint()
                elif self.out_of_time() and (total is None or self.step < total):
                    stopped_by = "max_minutes"
                    self._printer(f"--max-minutes {cfg.max_minutes:g}: stopped at step {self.step} after "
                                  f"{self.train_seconds / 60:.2f} min of training")
            finally:
                bar.close()
        elapsed = time.perf_counter() - t_start
        self.finish_pictures()
        steps = self.step - start_step
        summary = {"run": str(self.out), "step": self.step, "steps_this_run": steps, "seconds": elapsed,
                   "img_s": steps * cfg.batch_size / elapsed if elapsed > 0 else float("nan"),
                   "train_seconds": self.train_seconds, "stopped_by": stopped_by, "precision": self.precision,
                   "last": last, "diversity": div, "nan_events": self.nan_events}
        self.write_timing(summary)
        return summary

    def write_timing(self, summary: dict[str, Any]) -> None:
        """``timing.json``: where the run stopped, why, and the time it took (summed over resumptions)."""
        rec = {"step": self.step, "train_seconds": round(self.train_seconds, 2),
               "train_minutes": round(self.train_seconds / 60, 3), "stopped_by": summary["stopped_by"],
               "max_steps": self.cfg.max_steps, "epochs": self.cfg.epochs, "max_minutes": self.cfg.max_minutes,
               "precision": self.precision, "device": str(self.device), "threads": torch.get_num_threads(),
               "batch_size": self.cfg.batch_size, "steps_this_session": summary["steps_this_run"],
               "wall_seconds_this_session": round(summary["seconds"], 2)}
        io.atomic_write_text(self.out / "timing.json", json.dumps(rec, indent=1) + "\n")
        self.log.write(step=self.step, event="stop", stopped_by=summary["stopped_by"],
                       train_seconds=rec["train_seconds"])


# -- entry point ---------------------------------------------------------------------------------------
def budget_text(cfg: StackGANConfig, total: int | None) -> str:
    parts = [f"step {total}"] if total is not None else []
    if cfg.max_minutes:
        parts.append(f"{cfg.max_minutes:g} min of training")
    return " or ".join(parts)


def default_out(cfg: StackGANConfig) -> Path:
    return Path("runs") / f"stage{cfg.stage}-{Path(cfg.data).name or 'data'}"


BUDGET_FIELDS = ("max_steps", "epochs", "max_minutes")
RUN_FOLDER_FIELDS = ("ckpt_every", "keep_ckpts", "sample_every", "log_every")


def resumed_config(cfg: StackGANConfig, out: Path, printer: Callable[[str], None] | None = None) -> StackGANConfig:
    """The run's own config, with only the fields in RESUMABLE_CHANGES taken from ``cfg`` ; the budget
    (--max-steps, --epochs, --max-minutes) is the run's own unless one of them is given, and so are
    --ckpt-every, --keep-ckpts, --sample-every and --log-every unless given (a value other than the default). Options of
    ``cfg`` that differ from the run's and from their defaults (so were most likely asked for) are
    named to ``printer``: a resumed run keeps the settings it was trained with."""
    saved = RunFolder(out).require(STACKGAN)
    changes = {f: getattr(cfg, f) for f in RESUMABLE_CHANGES}
    defaults = {f.name: f.default for f in dataclasses.fields(StackGANConfig)}
    if all(getattr(cfg, f) == defaults[f] for f in BUDGET_FIELDS):
        # no budget asked for: the run keeps its own (a 60-minute run stays a 60-minute run)
        changes.update({f: getattr(saved, f) for f in BUDGET_FIELDS})
    for f in RUN_FOLDER_FIELDS:  # the same for how often it checkpoints, samples and logs
        if getattr(cfg, f) == defaults[f]:
            changes[f] = getattr(saved, f)
    if printer is not None:
        ignored = ignored_on_resume(cfg, saved)
        if ignored:
            printer(f"--resume keeps the run's own settings; ignored: {'; '.join(ignored)}")
    return dataclasses.replace(saved, **changes).validate()


def ignored_on_resume(cfg: StackGANConfig, saved: StackGANConfig) -> list[str]:
    """``--option asked (run's value)`` for every setting a resume does not take from the command line
    although it differs from the run's own and from its default."""
    out = []
    for f in dataclasses.fields(StackGANConfig):
        if f.name in RESUMABLE_CHANGES or f.name in ("emb_dim", "part_dim") or not f.metadata.get("cli", True):
            continue
        asked, own = getattr(cfg, f.name), getattr(saved, f.name)
        if asked != own and asked != f.default and asked != cfg.stage_default(f.name):
            out.append(f"--{f.name.replace('_', '-')} {asked!r} (the run's: {own!r})")
    return out


def prepare_run(cfg: StackGANConfig, printer: Callable[[str], None] | None = None
                ) -> tuple[StackGANConfig, Path, Path | None]:
    """Resolve the run folder and, with --resume, the config and checkpoint to continue from.
    Refuses to write into a folder that already holds another run unless --resume."""
    out = Path(cfg.out) if cfg.out else default_out(cfg)
    ckpt = checkpoint_to_resume(out, cfg.resume)  # refuses a folder with checkpoints unless --resume
    if cfg.resume:
        if RunFolder(out).config_file is None:
            raise CheckpointError(f"--resume: no config.json in {out}; start it without --resume")
        cfg = resumed_config(cfg, out, printer)
    return dataclasses.replace(cfg, out=str(out)), out, ckpt


def train(cfg: StackGANConfig, data: TrainData | None = None, printer: Callable[[str], None] = print
          ) -> dict[str, Any]:
    """Run ``stackgan train`` for a config: data, stage-I reference, resume, fit."""
    cfg, out, ckpt = prepare_run(cfg, printer)
    device = resolve_device(cfg.device)
    stage1 = None
    if cfg.stage == 2:
        stage1 = load_stage1(cfg.stage1, device)
        if stage1.cfg.parts != cfg.parts:  # stage II reads the names as its stage I does
            cfg = dataclasses.replace(cfg, parts=stage1.cfg.parts, part_dim=0)
            printer(f"stage II takes --{'' if cfg.parts else 'no-'}parts from its stage I")
        check_stage1_matches(cfg, stage1)
    if data is None:
        grid = None
        if ckpt is not None:  # a resumed run keeps its grid rows
            grid = read_json(out / "names.json", default={}).get("grid_names")
        data = load_training_data(cfg, progress=cfg.progress, grid_names=grid)
    if stage1 is not None and stage1.cfg.emb_dim != data.emb.shape[1]:
        raise CheckpointError(f"the stage-I run {stage1.source} used {stage1.cfg.emb_dim}-d sentence vectors, "
                              f"the text encoder {cfg.text_encoder!r} gives {data.emb.shape[1]}")
    if stage1 is not None and data.parts is not None and stage1.config_file is not None:
        own = read_json(Path(stage1.config_file).parent / "names.json", default={}).get("parts")
        if own is not None and own != data.parts.to_json():
            raise CheckpointError(f"the stage-I run {stage1.source} coded other name parts than {cfg.data}'s "
                                  "attributes.tsv gives now; train stage II on the stage I's data and split")
    trainer = StackGANTrainer(cfg, data, out, stage1=stage1, device=device)
    if ckpt is not None:
        found = RunFolder(out).latest_checkpoint(map_location=device, warn=printer)
        if found is None:
            raise CheckpointError(f"--resume: no checkpoint in {out}; start it without --resume")
        ckpt, state = found
        trainer.load_checkpoint(ckpt, state)
        printer(f"resumed {out} at step {trainer.step}")
    elif cfg.init_from:
        source = RunFolder.open(cfg.init_from)
        found = None if source.given_weights else source.latest_checkpoint(map_location=device, warn=printer)
        if found is None:
            raise CheckpointError(f"--init-from {cfg.init_from}: no ckpt-*.pt there (exported weights carry no "
                                  "discriminator); give a training run's folder or checkpoint")
        src, state = found
        notes = trainer.init_from(src, state)
        printer(f"started from {src} (step {int(state['step'])})" + (f"; {'; '.join(notes)}" if notes else ""))
    printer(f"stage {cfg.stage}: {data.images.shape[0]} photos of {len(data.names)} names at {data.size} px, "
            f"{sum(p.numel() for p in trainer.G.parameters()) / 1e6:.2f}M G / "
            f"{sum(p.numel() for p in trainer.D.parameters()) / 1e6:.2f}M D parameters, {device}, "
            f"{trainer.precision}, until {budget_text(cfg, trainer.total_steps())} -> {out}")
    return trainer.fit(printer)

