"""`stackgan compare`: StackGAN, the unconditional DCGAN baseline and ablations, trained (or loaded)
on the same data with the same budget (steps x batch) and seed, scored on one protocol, one report."""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from stackgan.errors import ConfigError
from stackgan.metrics.config import CompareConfig
from stackgan.metrics.runs import DCGAN, STACKGAN, make_sampler, read_run
from stackgan.utils import io

# StackGANConfig fields that would switch conditioning augmentation off, if the trainer has one
_NO_CA_FIELDS = (("ca", False), ("cond_aug", False), ("use_ca", False), ("no_ca", True))


def _no_ca_override() -> dict | None:
    from stackgan.train.stackgan_config import StackGANConfig

    names = {f.name for f in dataclasses.fields(StackGANConfig)}
    for field, value in _NO_CA_FIELDS:
        if field in names:
            return {field: value}
    return None


def stackgan_config(cfg: CompareConfig, out: Path, **changes):
    from stackgan.train.stackgan_config import StackGANConfig

    base = dict(stage=1, data=cfg.data, out=str(out), image_size=cfg.train_size, ngf=cfg.ngf, ndf=cfg.ndf,
                batch_size=cfg.batch_size, max_steps=cfg.steps, seed=cfg.seed, text_encoder=cfg.text_encoder,
                held_out=cfg.held_out, split_seed=cfg.split_seed,
                device=cfg.device, progress=cfg.progress, ckpt_every=max(1, cfg.steps // 4),
                sample_every=max(1, cfg.steps // 8))
    base.update(changes)
    return StackGANConfig(**base).validate()


def dcgan_config(cfg: CompareConfig, out: Path):
    from stackgan.train.dcgan_config import DCGANConfig

    return DCGANConfig(data=cfg.data, checkpoint_dir=str(out), image_size=str(cfg.train_size), ngf=cfg.ngf,
                       ndf=cfg.ndf, batch_size=cfg.batch_size, max_steps=cfg.steps, epochs=10**6, seed=cfg.seed,
                       held_out=cfg.held_out, split_seed=cfg.split_seed,
                       device=cfg.device, checkpoint_every=max(1, cfg.steps // 4), resume=True).validate()


def _finished(folder: Path, want: dict) -> bool | None:
    """True: a finished run with these settings; False: none there; None: a different or unfinished run."""
    if not (folder / "config.json").is_file() and io.latest_checkpoint(folder) is None:
        return False
    try:
        info = read_run(folder)
    except Exception:  # noqa: BLE001 - a broken folder counts as "different"
        return None
    same = all(info.config.get(k) == v for k, v in want.items())
    return True if same and (info.steps or 0) >= want["max_steps"] else None


def train_or_load(model: str, cfg: CompareConfig, root: Path, printer: Callable[[str], None]) -> tuple[Path, dict]:
    """The run folder of ``model`` and how it was obtained (trained now: wall time; loaded: from its log)."""
    given = {"stackgan": cfg.stackgan, "dcgan": cfg.dcgan}.get(model)
    if given:
        info = read_run(given)
        return Path(given), {"source": "loaded", **info.training()}
    folder = root / model
    if model == "dcgan":
        run_cfg = dcgan_config(cfg, folder)
    elif model == "no-ca":
        override = _no_ca_override()
        if override is None:
            raise _Skip("the StackGAN trainer has no switch to turn conditioning augmentation off")
        run_cfg = stackgan_config(cfg, folder, **override)
    else:
        run_cfg = stackgan_config(cfg, folder, **({"diffaugment": "none"} if model == "no-diffaugment" else {}))
    want = {"max_steps": cfg.steps, "batch_size": cfg.batch_size, "seed": cfg.seed, "data": cfg.data,
            "held_out": cfg.held_out, "split_seed": cfg.split_seed}
    state = _finished(folder, want)
    if state is True and not cfg.retrain:
        printer(f"{model}: using the finished run in {folder}")
        return folder, {"source": "loaded", **read_run(folder).training()}
    if state is None or (state is True and cfg.retrain):
        if not cfg.retrain:
            raise ConfigError(f"{folder} holds a different or unfinished {model} run; use --retrain to replace it "
                              f"or another --out")
        shutil.rmtree(folder)
    printer(f"{model}: training {cfg.steps} steps x {cfg.batch_size} -> {folder}")
    t0 = time.perf_counter()
    if model == "dcgan":
        from stackgan.train.dcgan import train_dcgan

        train_dcgan(run_cfg, progress=cfg.progress)
    else:
        from stackgan.train.stackgan import train

        train(run_cfg, printer=printer)
    seconds = time.perf_counter() - t0
    info = read_run(folder)
    return folder, {"source": "trained", **info.training(), "seconds": seconds}


def side_by_side(samplers: dict, names: list[str], path: Path, n: int = 4, seed: int = 0) -> Path:
    """One row per name: ``n`` pictures of every model, in the order of ``samplers``, same seeds."""
    import torch

    from stackgan.metrics.features import prepare
    from stackgan.utils.viz import save_grid

    size = 64
    rows = []
    for i, name in enumerate(names):
        for s in samplers.values():
            rows.append(prepare(s(name, n, seed + 1000 * i), size))
    return save_grid(torch.cat(rows), path, nrow=n * len(samplers))


class _Skip(Exception):
    pass


def compare(cfg: CompareConfig, printer: Callable[[str], None] = print) -> dict:
    from stackgan.metrics.evaluate import evaluate_sampler, fit_classifier
    from stackgan.metrics.report import write_report
    from stackgan.metrics.runeval import classifier_config, classifier_summary, data_summary, prepare_real, protocol_of
    from stackgan.metrics.runs import loss_plot
    from stackgan.utils.device import resolve_device

    device = resolve_device(cfg.device)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    runs: dict[str, tuple[Path, dict]] = {}
    notes = []
    for model in cfg.models:
        try:
            runs[model] = train_or_load(model, cfg, root, printer)
        except _Skip as exc:
            notes.append(f"{model} skipped: {exc}.")
            printer(f"{model}: skipped ({exc})")
    if not runs:
        raise ConfigError("no model to compare")
    trained = {m: read_run(p).config for m, (p, _) in runs.items()}
    data, data_notes = prepare_real(cfg, {"data": cfg.data, "held_out": cfg.held_out, "split_seed": cfg.split_seed},
                                    printer)
    saw = [m for m, c in trained.items() if (c.get("held_out"), c.get("split_seed")) != (cfg.held_out, cfg.split_seed)]
    if saw:
        data_notes.append(f"{', '.join(saw)} did not hold out the same photos (loaded runs with another split): "
                          "their generators have seen some held-out photos.")
    clf = fit_classifier(data, classifier_config(cfg), device=device, progress=cfg.progress)
    proto = protocol_of(cfg)
    models = {}
    samplers = {}
    for model, (path, training) in runs.items():
        info = read_run(path)
        sampler, desc = make_sampler(path, info.kind, device, "1")
        samplers[model] = sampler
        printer(f"scoring {model}")
        res = evaluate_sampler(sampler, data, clf, proto, root / "report", model, progress=printer)
        res["training"] = training
        res["model"] = {k: v for k, v in desc.items() if k != "pipeline"}
        res["run"] = str(path)
        lp = loss_plot(info, root / "report", model)
        if lp:
            res.setdefault("files", {})["losses"] = lp
        models[model] = res
    budget = {m: (r["training"].get("steps"), r["training"].get("batch_size")) for m, r in models.items()}
    if len({b for b in budget.values()}) > 1:
        notes.append("budgets differ between the models (steps, batch): "
                     + ", ".join(f"{m} {s}×{b}" for m, (s, b) in budget.items()))
    if DCGAN in models or any(read_run(p).kind == DCGAN for p, _ in runs.values()):
        notes.append("the DCGAN is unconditional: its pictures ignore the name, so its faithfulness is what "
                     "chance and the data's name balance give; that is the point of the comparison.")
    side = side_by_side(samplers, models[next(iter(models))]["grid_names"]["train"], root / "report" / "side-by-side.png",
                        n=4, seed=cfg.seed)
    results = {"side_by_side": side.name, "command": "stackgan compare " + " ".join(shlex.quote(a) for a in sys.argv[2:])
               if sys.argv[1:2] == ["compare"] else None,
               "data": data_summary(data, data_notes), "classifier": classifier_summary(clf),
               "protocol": vars(proto), "config": cfg.to_dict(), "notes": notes, "models": models}
    js, md = write_report(results, root / "report", f"StackGAN vs baselines on {cfg.data}", stem="compare")
    results["_files"] = {"json": str(js), "report": str(md)}
    return results


__all__ = ["compare", "train_or_load", "STACKGAN", "DCGAN"]
