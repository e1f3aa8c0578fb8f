"""Training the DCGAN baseline: the loop, its run folder, resuming, and loading a trained G.

A run folder (``--out``, default ``runs/dcgan/<data>-<H>x<W>``) holds ``config.json``,
``ckpt-STEP.pt`` (written atomically, with the keys of `stackgan train`'s checkpoints: kind, config,
step, G, D, opt_g, opt_d, rng, train_seconds, precision, lr_scale, nan_events; plus the DCGAN's
epoch, fixed noise and data fingerprint), ``log.jsonl`` (losses every ``--log-every`` steps, with the
log keys of `stackgan train`), ``samples/STEP.png`` (the fixed-noise 8x8 grid after every epoch, or
every ``--sample-every`` steps), ``losses.png``, ``progress.gif`` and, for inference,
``G.safetensors``.

The two trainers share their run-folder rules: a folder that holds checkpoints is continued only
with ``--resume`` (:mod:`stackgan.train.resume`), Ctrl-C stops after the step with a checkpoint
(:mod:`stackgan.train.interrupt`) and a non-finite loss brings back the last good state at half the
learning rate (:mod:`stackgan.train.recovery`). Every source of randomness is either restored from
the checkpoint (the global RNGs) or derived from the seed and the position (the data order of each
epoch), so on the CPU a resumed run reproduces the steps of an uninterrupted one bit for bit.

Python API (used by ``compare`` in the metrics): :func:`train_dcgan` and
:func:`load_dcgan_generator`, plus :func:`generate_images` to sample a loaded G by seeds.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import torch

from stackgan.errors import CheckpointError, ConfigError, DataError
from stackgan.models.dcgan import Discriminator, Generator, make_z, sample_z
from stackgan.models.init import init_weights
from stackgan.runs import DCGAN, WEIGHTS_FILES, RunFolder
from stackgan.dcgan_config import RESUMABLE_CHANGES, DCGANConfig, parse_size  # noqa: F401 (re-exported)
from stackgan.inference_dcgan import generate_images, load_dcgan_generator, sample_dcgan  # noqa: F401 (re-exported)
from stackgan.train import losses
from stackgan.train.interrupt import StopRequest, graceful_interrupt
from stackgan.train.recovery import MAX_NAN_EVENTS, NanGuard, TrainingDiverged  # noqa: F401 (re-exported)
from stackgan.train.resume import checkpoint_to_resume
from stackgan.utils import io, viz
from stackgan.utils.device import autocast, resolve_precision, to_channels_last
from stackgan.utils.runlog import JsonlLog, read_jsonl

GRID_SIDE = 8  # the fixed-noise grid is 8 x 8
MAX_GIF_FRAMES = 100
WEIGHTS_FILE = WEIGHTS_FILES[DCGAN]

# -- models -------------------------------------------------------------------------------------

def build_generator(cfg: DCGANConfig) -> Generator:
    h, w = cfg.size
    return Generator(z_dim=cfg.z_dim, channels=cfg.channels, height=h, width=w, ngf=cfg.ngf, kernel=cfg.kernel_size)


def build_discriminator(cfg: DCGANConfig) -> Discriminator:
    h, w = cfg.size
    return Discriminator(channels=cfg.channels, height=h, width=w, ndf=cfg.ndf, norm=cfg.resolved_d_norm,
                         kernel=cfg.kernel_size)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# -- data ---------------------------------------------------------------------------------------

def load_images(cfg: DCGANConfig, progress: bool = True) -> tuple[torch.Tensor, dict[str, Any]]:
    """The data set as one uint8 tensor [N, C, H, W] at the output size (centre-cropped to its
    aspect ratio by the loader), plus a fingerprint of the files."""
    from stackgan.data import load_dataset

    h, w = cfg.size
    ds = load_dataset(cfg.data, image_size=(h, w), channels=cfg.channels, progress=progress, unlabeled=True,
                      pattern=cfg.pattern or None)
    if cfg.held_out > 0:  # train on the train split only; evaluation scores against the rest
        ds, _ = ds.split(cfg.held_out, cfg.split_seed)
    images = ds.images
    if tuple(images.shape[1:]) != (cfg.channels, h, w) or images.dtype != torch.uint8:
        raise DataError(f"the loader gave images {tuple(images.shape)} {images.dtype}, "
                        f"not uint8 [N, {cfg.channels}, {h}, {w}]")
    files = [str(f) for f in getattr(ds, "files", [])]
    digest = hashlib.sha1("\n".join(files).encode("utf-8")).hexdigest()
    return images.contiguous(), {"n_images": int(images.shape[0]), "files_sha1": digest}


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The data order of one epoch: a function of (seed, epoch) only, so a resume needs no state."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(127.5).sub_(1.0)


# -- run folder ---------------------------------------------------------------------------------

def run_dir_for(cfg: DCGANConfig) -> Path:
    if cfg.out:
        return Path(cfg.out)
    h, w = cfg.size
    name = Path(str(cfg.data).rstrip("/\\")).name or "data"
    suffix = "" if cfg.channels == 3 else f"-c{cfg.channels}"
    return Path("runs") / "dcgan" / f"{name}-{h}x{w}{suffix}"


def ckpt_name(step: int) -> str:
    return f"ckpt-{step:06d}.pt"


def _config_mismatch(saved: dict[str, Any], cfg: DCGANConfig) -> list[str]:
    try:  # a config written under older field names, or before a field existed, reads as it meant
        saved = DCGANConfig.from_dict(saved).to_dict()
    except (ConfigError, TypeError):
        saved = DCGANConfig.renamed_dict(saved)
    now = cfg.to_dict()
    diffs = []
    size_keys = ("image_size", "image_height", "image_width")
    try:
        old_size = DCGANConfig(**{k: saved[k] for k in size_keys if k in saved}).size
    except (ConfigError, TypeError):
        old_size = None
    if old_size != cfg.size:
        diffs.append(f"image size {old_size} (checkpoint) vs {cfg.size} (now)")
    for key in sorted(set(saved) | set(now)):
        if key in RESUMABLE_CHANGES or key in size_keys or key == "_kind":
            continue
        if saved.get(key) != now.get(key):
            diffs.append(f"--{key.replace('_', '-')} {saved.get(key)!r} (checkpoint) vs {now.get(key)!r} (now)")
    return diffs


def _sample_frames(sample_dir: Path, limit: int | None = MAX_GIF_FRAMES) -> list[Path]:
    """The fixed-noise grids ``STEP.png`` in step order, at most ``limit`` of them spread evenly."""
    frames = sorted(p for p in sample_dir.glob("*.png") if re.fullmatch(r"\d{6,}", p.stem))
    frames.sort(key=lambda p: int(p.stem))
    if limit is None or len(frames) <= limit:
        return frames
    idx = sorted({round(i * (len(frames) - 1) / (limit - 1)) for i in range(limit)})
    return [frames[i] for i in idx]


def _due(step: int, every: int, epoch_end: bool) -> bool:
    """Whether a grid or checkpoint is due: every ``every`` steps, or at the end of an epoch for 0."""
    return step % every == 0 if every else epoch_end


# -- training -----------------------------------------------------------------------------------

class DCGANTrainer:
    """The DCGAN's models, optimisers, step, checkpoints and run folder. :meth:`run` does it all;
    :meth:`prepare` then :meth:`train_step` train step by step (as tests do)."""

    def __init__(self, cfg: DCGANConfig, progress: bool = True):
        from stackgan.utils.device import resolve_device

        self.cfg = cfg
        self.progress = progress
        self.device = resolve_device(cfg.device)
        self.run_dir = run_dir_for(cfg)
        self.sample_dir = Path(cfg.sample_dir) if cfg.sample_dir else self.run_dir / "samples"
        self.log = JsonlLog(self.run_dir / "log.jsonl")
        self.aug = self._make_augment()
        self._order_epoch, self._order = -1, None

    def _make_augment(self):
        policy = self.cfg.diffaugment.strip()
        if policy.lower() == "none":
            return None
        try:
            from stackgan.augment import DiffAugment
        except ImportError as exc:
            raise ConfigError(f"--diffaugment needs stackgan.augment, which cannot be imported: {exc}") from None
        try:
            aug = DiffAugment(policy)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"--diffaugment {policy!r}: {exc}") from None
        if "color" in getattr(aug, "policy", ()) and self.cfg.channels != 3:
            raise ConfigError(f"--diffaugment color works on RGB images, not --channels {self.cfg.channels}; "
                              "use translation,cutout")
        return aug.to(self.device)

    def _print(self, msg: str) -> None:
        if self.progress:
            from tqdm import tqdm

            tqdm.write(msg)
        else:
            print(msg, flush=True)

    # ---------------------------------------------------------------------------------------
    def run(self) -> Path:
        cfg = self.cfg
        self.prepare()
        if self.step >= self.total:
            print(f"already trained to step {self.step} (of {self.total}); nothing to train", flush=True)
        elif self.out_of_time():
            print(f"already trained {self.train_seconds / 60:.1f} of --max-minutes {cfg.max_minutes:g}; "
                  "nothing to train", flush=True)
        else:
            with graceful_interrupt(self._print) as stop:  # Ctrl-C: checkpoint and stop after this step
                self._loop(stop)
        self._finish()
        return self.run_dir

    def prepare(self) -> None:
        """Check the run folder (a run there is continued only with --resume, and only with its own
        settings), load the data, build the models and restore the checkpoint when resuming."""
        cfg = self.cfg
        ckpt_path = ckpt = None
        if checkpoint_to_resume(self.run_dir, cfg.resume) is not None:
            # the newest checkpoint that loads (a damaged newer one is passed over)
            found = RunFolder(self.run_dir).latest_checkpoint(warn=lambda m: print(m, flush=True))
            if found is None:
                raise CheckpointError(f"--resume: no checkpoint in {self.run_dir} can be read; start it without "
                                      "--resume in another --out")
            ckpt_path, ckpt = found
            saved = ckpt.get("config", {})
            if saved.get("_kind") != type(cfg).__name__:
                raise CheckpointError(f"{ckpt_path} is not a DCGAN checkpoint (kind {saved.get('_kind')!r})")
            diffs = _config_mismatch(saved, cfg)
            if diffs:
                raise CheckpointError(
                    f"{self.run_dir} holds a run with other settings, so it cannot be resumed with these:\n  "
                    + "\n  ".join(diffs) + "\nuse another --out, or the run's own settings")

        images, fingerprint = load_images(cfg, progress=self.progress)
        n = images.shape[0]
        per_step = cfg.batch_size * cfg.n_critic
        if n < per_step:
            raise DataError(f"{cfg.data} has {n} usable images, fewer than one step needs "
                            f"(--batch-size {cfg.batch_size} x --n-critic {cfg.n_critic}); lower --batch-size")
        self.steps_per_epoch = spe = n // per_step
        total = cfg.epochs * spe
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        self.total = total
        self.images = images.to(self.device)
        self.build_models()
        self.fixed_z = make_z(range(cfg.seed * 1000, cfg.seed * 1000 + GRID_SIDE ** 2), cfg.z_dim, cfg.z_dist)
        self.fingerprint = fingerprint
        self.step = 0
        self.last_ckpt_step = -1
        self.train_seconds = 0.0  # summed over resumptions, for --max-minutes
        self.stopped_by = "epochs"

        h, w = cfg.size
        plan = self.G.plan
        print(f"DCGAN {h}x{w}x{cfg.channels} on {self.device}: {n} images, {spe} steps/epoch, "
              f"training up to step {total}; G {n_params(self.G) / 1e6:.2f}M params from a "
              f"{plan.start[0]}x{plan.start[1]} map through {plan.stages} up-convolutions, "
              f"D {n_params(self.D) / 1e6:.2f}M params; loss {cfg.loss}; {self.precision}"
              + (f"; at most {cfg.max_minutes:g} min of training" if cfg.max_minutes else "")
              + f"; run folder {self.run_dir}", flush=True)

        if ckpt is not None:
            self._restore(ckpt, ckpt_path)
        else:
            self.log.truncate_after(0)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save_json(self.run_dir / "config.json")
        if self.step == 0:
            self._save_grid()  # the untrained G: first frame of the GIF

    def build_models(self) -> None:
        """G, D (DCGAN init from the seed), their Adam optimisers and the precision settings."""
        cfg = self.cfg
        io.seed_everything(cfg.seed)
        self.G = build_generator(cfg)
        self.D = build_discriminator(cfg)
        init_weights(self.G)
        init_weights(self.D)
        self.G.to(self.device)
        self.D.to(self.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.use_amp = self.precision == "bf16"
        if self.use_amp:
            to_channels_last(self.G, self.D)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas, weight_decay=cfg.weight_decay)
        # the last good state, and the learning-rate scale lowered after a NaN (recovery.py)
        self.nan_guard = NanGuard({"G": self.G, "D": self.D, "opt_g": self.opt_g, "opt_d": self.opt_d})

    @property
    def lr_scale(self) -> float:
        """The factor on the learning rates: 1, halved at every recovery from a NaN."""
        return self.nan_guard.lr_scale

    @property
    def nan_events(self) -> int:
        return self.nan_guard.events

    def _restore(self, ckpt: dict[str, Any], path: Path) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        # checkpoints written before the keys were shared with StackGAN's say opt_G / opt_D
        self.opt_g.load_state_dict(ckpt["opt_g"] if "opt_g" in ckpt else ckpt["opt_G"])
        self.opt_d.load_state_dict(ckpt["opt_d"] if "opt_d" in ckpt else ckpt["opt_D"])
        self.fixed_z = ckpt["fixed_z"]
        self.step = self.last_ckpt_step = int(ckpt["step"])
        self.train_seconds = float(ckpt.get("train_seconds", 0.0))
        self.nan_guard.lr_scale = float(ckpt.get("lr_scale", 1.0))
        self.nan_guard.events = int(ckpt.get("nan_events", 0))
        io.restore_rng(ckpt["rng"])
        self.nan_guard.snapshot(self.step)
        self.log.truncate_after(self.step)
        for frame in _sample_frames(self.sample_dir, limit=None):  # grids drawn after the checkpoint
            if int(frame.stem) > self.step:
                frame.unlink(missing_ok=True)
        spe = self.steps_per_epoch
        epoch, batch = divmod(self.step, spe)
        where = f"at epoch {epoch}, step {self.step}"
        if batch:
            where += f" (batch {batch}/{spe} of epoch {epoch + 1})"
        print(f"resuming from {path.name} {where}", flush=True)
        old = ckpt.get("data", {})
        if old and old != self.fingerprint:
            print(f"warning: the data set changed since {path.name} (was {old.get('n_images')} images, now "
                  f"{self.fingerprint['n_images']}); the run continues on the new data", flush=True)

    def out_of_time(self) -> bool:
        return bool(self.cfg.max_minutes) and self.train_seconds >= self.cfg.max_minutes * 60.0

    # ---------------------------------------------------------------------------------------
    def _loop(self, stop: StopRequest) -> None:
        """Train until the budget, a Ctrl-C (``stop``) or --max-minutes. The log gets a record every
        --log-every steps (and at the last one), the grid comes every --sample-every steps and a
        checkpoint every --ckpt-every steps (0: after every epoch)."""
        from tqdm import tqdm

        cfg = self.cfg
        spe, total = self.steps_per_epoch, self.total
        n_img = cfg.batch_size * cfg.n_critic  # the real images one step takes
        bar, bar_epoch = None, -1
        last: dict[str, float] = {}
        window_t, window_imgs = time.perf_counter(), 0
        t_mark = time.perf_counter()  # training time counts the steps, grids and checkpoints of the loop
        try:
            while self.step < total and not stop.requested and not self.out_of_time():
                epoch, first = divmod(self.step, spe)
                if epoch != bar_epoch:  # a new epoch (or the epoch of the state a NaN went back to)
                    if bar is not None:
                        bar.close()
                    bar_epoch = epoch
                    bar = tqdm(total=min(spe, total - epoch * spe), initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                               unit="step", leave=False, disable=not self.progress, dynamic_ncols=True)
                    t_epoch, imgs_epoch, done = time.perf_counter(), 0, 0
                    sums = {"d_loss": 0.0, "g_loss": 0.0}
                t0 = time.perf_counter()
                rec = self.train_step()
                if rec is None:  # a non-finite loss: the last good state is back, go on from its step
                    bar_epoch = -1
                    continue
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                dt = time.perf_counter() - t0
                self.train_seconds += time.perf_counter() - t_mark
                t_mark = time.perf_counter()
                imgs_epoch += n_img
                window_imgs += n_img
                done += 1
                last = rec
                for k in sums:
                    sums[k] += rec[k]
                bar.set_postfix(d_loss=f"{rec['d_loss']:.3f}", g_loss=f"{rec['g_loss']:.3f}", refresh=False)
                bar.update(1)
                epoch_end = self.step == (epoch + 1) * spe
                final = self.step >= total or self.out_of_time()
                if self.step % cfg.log_every == 0 or final:
                    now = time.perf_counter()
                    rec["img_s"] = window_imgs / max(now - window_t, 1e-9)
                    window_t, window_imgs = now, 0
                    self._log(rec, dt)
                if epoch_end or final or stop.requested:
                    took = time.perf_counter() - t_epoch
                    self._print(f"epoch {epoch + 1}/{cfg.epochs}  step {self.step}/{total}  "
                                f"d_loss {sums['d_loss'] / max(done, 1):.4f}  g_loss {sums['g_loss'] / max(done, 1):.4f}  "
                                f"{imgs_epoch / max(took, 1e-9):.0f} img/s")
                if _due(self.step, cfg.sample_every, epoch_end):
                    self._save_grid()
                if _due(self.step, cfg.ckpt_every, epoch_end):
                    self.train_seconds += time.perf_counter() - t_mark  # the checkpoint records its own time
                    t_mark = time.perf_counter()
                    self._checkpoint()
                self.train_seconds += time.perf_counter() - t_mark
                t_mark = time.perf_counter()
        finally:
            if bar is not None:
                bar.close()
        if stop.requested:
            self.stopped_by = "interrupt"
            self._print(f"stopped at step {self.step}: writing a checkpoint")
            if last and self.step % cfg.log_every:
                self._log(last)
        elif self.step >= total:
            self.stopped_by = "max_steps" if cfg.max_steps and total == cfg.max_steps else "epochs"
        elif self.out_of_time():
            self.stopped_by = "max_minutes"
            self._print(f"--max-minutes {cfg.max_minutes:g}: stopping at step {self.step} after "
                        f"{self.train_seconds / 60:.2f} min of training")

    def _log(self, rec: dict[str, float], sec_step: float | None = None) -> None:
        """One log.jsonl record: the keys and meanings of `stackgan train`'s (plus the wall-clock time)."""
        extra = {"sec_step": sec_step} if sec_step is not None else {}
        self.log.write(step=self.step, epoch=round(self.step / self.steps_per_epoch, 3), **extra,
                       train_seconds=round(self.train_seconds, 2), **rec, time=round(time.time(), 3))

    def _timed(self, fn) -> Any:
        """Run ``fn``, counting its time as training time (grids and checkpoints are part of a run's cost)."""
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.train_seconds += time.perf_counter() - t0

    def _real_batch(self, order: torch.Tensor, i: int) -> torch.Tensor:
        bs = self.cfg.batch_size
        x = to_float(self.images[order[i * bs:(i + 1) * bs]])
        if self.cfg.flip:
            mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
            x = torch.where(mask, x.flip(3), x)
        if self.use_amp:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return self.aug(x) if self.aug is not None else x

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if epoch != self._order_epoch:
            self._order = epoch_order(self.cfg.seed, epoch, self.images.shape[0]).to(self.device)
            self._order_epoch = epoch
        return self._order

    def _set_lr(self) -> tuple[float, float]:
        lr_g, lr_d = self.cfg.lr_g * self.lr_scale, self.cfg.lr_d * self.lr_scale
        for g in self.opt_g.param_groups:
            g["lr"] = lr_g
        for g in self.opt_d.param_groups:
            g["lr"] = lr_d
        return lr_g, lr_d

    def train_step(self) -> dict[str, float] | None:
        """The next step (``--n-critic`` D updates, one G update) of the data order. Returns its numbers,
        or None when it was skipped: a non-finite loss, after which the last good state is restored and
        the learning rates halved (as in `stackgan train`)."""
        epoch, b = divmod(self.step, self.steps_per_epoch)
        rec = self._step(self._epoch_order(epoch), b)
        if rec is None:
            return None
        self.step += 1
        self.nan_guard.after_step(self.step)
        return rec

    def _recover(self, where: str, loss: torch.Tensor) -> None:
        self.step = self.nan_guard.recover(
            where, loss, self.step, printer=self._print, log=self.log,
            advice=f"Try a lower --lr-g/--lr-d, another --loss or another --seed; the checkpoints in "
                   f"{self.run_dir} are intact")
        self.opt_g.zero_grad(set_to_none=True)
        self.opt_d.zero_grad(set_to_none=True)
        return None

    def _step(self, order: torch.Tensor, b: int) -> dict[str, float] | None:
        cfg, G, D = self.cfg, self.G, self.D
        bs = cfg.batch_size
        lr_g, lr_d = self._set_lr()
        fake = None
        for c in range(cfg.n_critic):
            real = self._real_batch(order, b * cfg.n_critic + c)
            z = sample_z(bs, cfg.z_dim, cfg.z_dist, self.device)
            with autocast(self.device, self.use_amp):
                if c == cfg.n_critic - 1:
                    fake = G(z)  # kept with its graph for G's step, as in the paper's loop
                else:
                    with torch.no_grad():
                        fake_c = G(z)
                f_in = (fake if c == cfg.n_critic - 1 else fake_c).detach()
                real_a, fake_a = self._augment(real), self._augment(f_in)
                D.zero_grad(set_to_none=True)
                real_logits, fake_logits = D(real_a).float(), D(fake_a).float()
            real_t = fake_t = None
            if cfg.loss == "bce":
                real_t = torch.full((bs,), 1.0 - cfg.label_noise, device=self.device)
                fake_t = torch.zeros(bs, device=self.device)
                if cfg.label_flip:
                    swap = torch.rand(bs, device=self.device) < cfg.label_flip
                    real_t, fake_t = torch.where(swap, fake_t, real_t), torch.where(swap, real_t, fake_t)
            d_loss = losses.d_adv(cfg.loss, real_logits, fake_logits, real_t, fake_t)
            gp = None
            if cfg.loss == "wgan-gp":  # the penalty's double backward stays in fp32
                gp = losses.wgan_gradient_penalty(D, real_a.float(), fake_a.float())
                d_loss = d_loss + cfg.gp_weight * gp
            if not torch.isfinite(d_loss):
                return self._recover("D", d_loss)
            d_loss.backward()
            self.opt_d.step()

        G.zero_grad(set_to_none=True)
        D.requires_grad_(False)  # gradients flow through D to G; D's own are not needed (D zeroes them anyway)
        try:
            with autocast(self.device, self.use_amp):
                g_logits = D(self._augment(fake)).float()
            g_loss = losses.g_adv(cfg.loss, g_logits)
            if not torch.isfinite(g_loss):
                return self._recover("G", g_loss)
            g_loss.backward()
        finally:
            D.requires_grad_(True)
        self.opt_g.step()

        with torch.no_grad():  # the keys and meanings of `stackgan train`'s log (d_real / d_fake: D's mean
            real_l, fake_l = real_logits.detach(), fake_logits.detach()  # probability of "real")
            rec = {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                   "d_real": float(torch.sigmoid(real_l).mean()), "d_fake": float(torch.sigmoid(fake_l).mean()),
                   "d_real_logit": float(real_l.mean()), "d_fake_logit": float(fake_l.mean()),
                   "lr_g": lr_g, "lr_d": lr_d}
        if gp is not None:
            rec["gp"] = gp.item()
        return rec

    # ---------------------------------------------------------------------------------------
    def _save_grid(self) -> Path:
        images = generate_images(self.G, self.fixed_z)
        return viz.save_grid(images, self.sample_dir / f"{self.step:06d}.png", nrow=GRID_SIDE)

    def _checkpoint(self) -> None:
        if self.step == self.last_ckpt_step:
            return
        cfg = self.cfg
        state = {  # the keys of `stackgan train`'s checkpoints, then the DCGAN's own
            "kind": "dcgan",
            "config": cfg.to_dict(),
            "step": self.step,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": io.capture_rng(),
            "train_seconds": self.train_seconds,
            "precision": self.precision,
            "lr_scale": self.lr_scale,
            "nan_events": self.nan_events,
            "epoch": self.step // self.steps_per_epoch,
            "fixed_z": self.fixed_z,
            "data": self.fingerprint,
        }
        io.atomic_torch_save(state, self.run_dir / ckpt_name(self.step))
        io.atomic_save_safetensors(self.G.state_dict(), self.run_dir / WEIGHTS_FILE,
                                   metadata={"kind": type(cfg).__name__, "step": str(self.step)})
        io.prune_checkpoints(self.run_dir, cfg.keep_ckpts)
        self.last_ckpt_step = self.step

    def _finish(self) -> None:
        self._timed(self._checkpoint)
        if not (self.sample_dir / f"{self.step:06d}.png").is_file():
            self._timed(self._save_grid)
        timing = {"step": self.step, "train_seconds": round(self.train_seconds, 2),
                  "train_minutes": round(self.train_seconds / 60, 3), "stopped_by": self.stopped_by,
                  "max_steps": self.cfg.max_steps, "epochs": self.cfg.epochs, "max_minutes": self.cfg.max_minutes,
                  "precision": self.precision, "device": str(self.device), "threads": torch.get_num_threads(),
                  "batch_size": self.cfg.batch_size}
        io.atomic_write_text(self.run_dir / "timing.json", json.dumps(timing, indent=1) + "\n")
        records = [r for r in read_jsonl(self.log.path) if "d_loss" in r] if self.log.path.exists() else []
        if records:
            viz.plot_losses(records, self.run_dir / "losses.png", keys=["d_loss", "g_loss"],
                            title=f"DCGAN ({self.cfg.loss})")
        gif = viz.make_gif(_sample_frames(self.sample_dir), self.run_dir / "progress.gif")
        print(f"done: step {self.step}; checkpoint {ckpt_name(self.step)}, samples in {self.sample_dir}, "
              f"losses.png{', progress.gif' if gif else ''} and {WEIGHTS_FILE} in {self.run_dir}", flush=True)


def train_dcgan(cfg: DCGANConfig, progress: bool = True) -> Path:
    """Train (or resume) a DCGAN as ``cfg`` says; returns the run folder."""
    cfg = cfg.validate()
    return DCGANTrainer(cfg, progress=progress).run()

