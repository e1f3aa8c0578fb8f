"""Trained runs as samplers: StackGAN (through :mod:`stackgan.inference`) and the DCGAN baseline,
plus what a run folder tells about its training (steps, batch, time, losses) and D probes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch

from stackgan.errors import CheckpointError, ConfigError, UserError
from stackgan.metrics.features import Sampler
from stackgan.runs import DCGAN, STACKGAN, RunFolder, read_json
from stackgan.utils import io


@dataclasses.dataclass
class RunInfo:
    path: Path  # what the user gave: run folder or checkpoint
    folder: Path  # the run folder
    kind: str  # "stackgan" or "dcgan"
    config: dict[str, Any]
    steps: int | None
    batch_size: int | None
    seconds: float | None  # training time from the log (None when it cannot be told)

    @property
    def data(self) -> str | None:
        return self.config.get("data")

    @property
    def stage(self) -> int | None:
        return self.config.get("stage") if self.kind == STACKGAN else None

    def training(self) -> dict:
        return {"steps": self.steps, "batch_size": self.batch_size, "seconds": self.seconds,
                "images_seen": (self.steps * self.batch_size) if self.steps and self.batch_size else None}


def read_run(path: str | Path) -> RunInfo:
    """Kind, config and training budget of a StackGAN or DCGAN run folder / checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no run at {path}")
    run = RunFolder.open(path)
    cfg, folder, kind = run.raw_config, run.folder, run.model
    if kind is None:
        raise CheckpointError(f"{path}: a {run.config_kind or 'unknown'} run; evaluate takes StackGAN or DCGAN runs")
    given = run.given_checkpoint
    if given is not None:  # one checkpoint of a run that may have trained on: its own step, its time up to it
        step = io.checkpoint_step(given)
        steps, seconds = _log_budget(folder, kind, cfg, upto=step)
        return RunInfo(path, folder, kind, cfg, step if step is not None else steps, cfg.get("batch_size"), seconds)
    steps, seconds = _log_budget(folder, kind, cfg)
    timing = read_timing(folder)
    if timing.get("train_seconds") is not None:  # written since --max-minutes: the loop's own clock
        seconds = float(timing["train_seconds"])
    if run.checkpoint_files:
        step = io.checkpoint_step(run.checkpoint_files[0])
        if step is not None:
            steps = max(steps or 0, step)
    return RunInfo(path, folder, kind, cfg, steps, cfg.get("batch_size"), seconds)


def read_timing(folder: Path) -> dict:
    """A run folder's ``timing.json`` (steps, training seconds, why it stopped), or {} without one."""
    rec = read_json(Path(folder) / "timing.json", default={})
    return rec if isinstance(rec, dict) else {}


def _log_budget(folder: Path, kind: str, cfg: dict, upto: int | None = None) -> tuple[int | None, float | None]:
    """Steps and training seconds from the run's log; with ``upto``, only the records up to that step."""
    log = folder / "log.jsonl"
    if not log.is_file():
        return None, None
    from stackgan.utils.runlog import read_jsonl

    recs = [r for r in read_jsonl(log) if isinstance(r.get("step"), int) and (upto is None or r["step"] <= upto)]
    if not recs:
        return None, None
    steps = max(r["step"] for r in recs)
    seconds = None
    if kind == DCGAN and not any(r.get("sec_step") for r in recs):
        # a DCGAN log written before it had sec_step: a record every step, img_s of that step alone
        per = cfg.get("batch_size", 0) * cfg.get("n_critic", 1)
        ts = [per / r["img_s"] for r in recs if r.get("img_s")]
        seconds = sum(ts) if ts else None
    else:
        every = cfg.get("log_every", 1)
        ts = [r["sec_step"] * every for r in recs if r.get("sec_step")]
        seconds = sum(ts) if ts else None
    return steps, seconds


def checkpoints(folder: Path) -> list[tuple[int, Path]]:
    out = []
    for p in Path(folder).glob("ckpt-*.pt"):
        step = io.checkpoint_step(p)
        if step is not None:
            out.append((step, p))
    return sorted(out)


def make_sampler(path: str | Path, kind: str, device: str | torch.device = "cpu", stage: str = "auto",
                 truncation: float = 1.0, parts_sentence: str | None = None) -> tuple[Sampler, dict]:
    """A sampler ``(name, n, seed) -> images`` for a run or checkpoint, and a description of it: the
    ``sample`` of :func:`stackgan.inference.load_sampler` on seeds ``seed .. seed + n - 1``.

    The DCGAN ignores the name (it is unconditional): it is scored the same way, which is the point.
    ``truncation`` (StackGAN only) scales z and the conditioning noise; ``parts_sentence`` (a ``--parts``
    StackGAN only) overrides how names outside training get their sentence vector.
    """
    if kind == DCGAN and truncation != 1.0:
        raise ConfigError("--truncation applies to StackGAN runs; the DCGAN samples z as it was trained")
    if kind == DCGAN and parts_sentence is not None:
        raise ConfigError("--parts-sentence applies to StackGAN runs trained with --parts")
    from stackgan.inference import load_sampler

    sampler = load_sampler(path, device)
    family = DCGAN if sampler.kind == DCGAN else STACKGAN
    if family != kind:
        raise CheckpointError(f"{path} is a {sampler.kind} run, not a {kind} run")
    if kind == DCGAN:
        def dcgan(name: str, n: int, seed: int) -> torch.Tensor:
            return sampler.sample(range(seed, seed + n))

        return dcgan, {"kind": DCGAN, "conditional": False, "size": list(sampler.image_size)}
    pipe = sampler
    if parts_sentence is not None:
        try:
            pipe.parts_sentence = parts_sentence
        except UserError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    use2 = pipe.g2 is not None and stage != "1"
    if stage == "2" and pipe.g2 is None:
        raise CheckpointError(f"{path} is a stage-I run; --stage 2 needs a stage-II run")

    def stackgan(name: str, n: int, seed: int) -> torch.Tensor:
        return pipe.sample(range(seed, seed + n), name, truncation, stage=2 if use2 else 1)

    return stackgan, {"kind": STACKGAN, "conditional": True, "stage": 2 if use2 else 1, "truncation": truncation,
                      "parts_sentence": pipe.parts_sentence if pipe.parts is not None else None, "pipeline": pipe}


def loss_plot(info: RunInfo, out: Path, label: str) -> str | None:
    """Loss curves of a run (from its log.jsonl) as ``<label>-losses.png``."""
    log = info.folder / "log.jsonl"
    if not log.is_file():
        return None
    from stackgan.utils.runlog import read_jsonl
    from stackgan.utils.viz import plot_losses

    recs = [r for r in read_jsonl(log) if "d_loss" in r]
    if not recs:
        return None
    keys = [k for k in ("d_loss", "g_loss", "g_adv", "kl") if any(k in r for r in recs)]
    return plot_losses(recs, out / f"{label}-losses.png", keys=keys, title=f"{label} losses").name


# -- what D has learned -------------------------------------------------------------------------
def d_probe(info: RunInfo, names: Sequence[str], out: Path, label: str, steps: int = 150, seed: int = 0,
            device: str | torch.device = "cpu") -> dict | None:
    """Activation maximisation of D's match logit for each name (latest checkpoint of a StackGAN run)."""
    if info.kind != STACKGAN:
        return None
    from stackgan.metrics.dprobe import maximise_score
    from stackgan.models.stackgan import discriminator
    from stackgan.stackgan_config import StackGANConfig
    from stackgan.utils.viz import save_grid

    found = RunFolder.open(info.path).latest_checkpoint()
    if found is None:
        return None
    ck_path, ck = found
    if "D" not in ck or "G_ema" not in ck:
        return None
    cfg = StackGANConfig.from_dict(ck["config"])
    D = discriminator(cfg)
    D.load_state_dict(ck["D"])
    D.to(device).eval().requires_grad_(False)
    _, desc = make_sampler(ck_path, STACKGAN, device)
    pipe = desc["pipeline"]
    ca = pipe.g2.ca if cfg.stage == 2 else pipe.g1.ca
    imgs, starts, ends = [], [], []
    for i, name in enumerate(names):
        with torch.no_grad():
            mu, _ = ca.encode(pipe.embed(name)[None].to(device))

        def score(x: torch.Tensor, mu=mu) -> torch.Tensor:
            return D.cond(D.features(x), mu.expand(x.shape[0], -1))

        img, hist = maximise_score(score, (1, 3, cfg.out_size, cfg.out_size), steps=steps, seed=seed + i,
                                   device=device)
        imgs.append(img)
        starts.append(hist[0])
        ends.append(hist[-1])
    path = save_grid(torch.cat(imgs), out / f"{label}-dprobe.png", nrow=min(len(imgs), 4))
    return {"file": path.name, "names": list(names), "steps": steps, "start": sum(starts) / len(starts),
            "end": sum(ends) / len(ends), "per_name": [{"name": n, "start": s, "end": e}
                                                       for n, s, e in zip(names, starts, ends)],
            "checkpoint": ck_path.name}
