"""`stackgan compare`: StackGAN, the unconditional DCGAN baseline and ablations, trained (or loaded)
on the same data with the same budget (steps x batch, or minutes of training with --max-minutes) and
seed, scored on one protocol, one report."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Callable

from stackgan.errors import ConfigError
from stackgan.metrics.config import CompareConfig
from stackgan.metrics.runs import DCGAN, STACKGAN, make_sampler, read_run
from stackgan.runs import CONFIG_KINDS, RunFolder, typed_config

# what each StackGAN ablation changes
ABLATIONS = {"stackgan": {}, "no-diffaugment": {"diffaugment": "none"}, "no-ca": {"ca": False}}


def base_stackgan(cfg: CompareConfig) -> dict:
    """The stage-I settings every StackGAN of the comparison shares. With ``--stackgan RUN`` they are
    that run's own (its stage I for a stage-II run), so each ablation differs from it in one switch
    and every model gets its budget; otherwise they come from the compare options."""
    from stackgan.stackgan_config import StackGANConfig

    if cfg.stackgan:
        info = read_run(cfg.stackgan)
        raw = dict(info.config)
        if raw.get("stage") == 2:
            raw = dict(read_run(info.folder / "stage1").config)
        base = StackGANConfig.from_dict(raw).to_dict()
        base.pop("_kind")
        if cfg.data and Path(cfg.data).resolve() != Path(base["data"]).resolve():
            raise ConfigError(f"--data {cfg.data} is not the data set the --stackgan run trained on ({base['data']})")
        base.update(resume=False, device=cfg.device, progress=cfg.progress)
        if cfg.max_minutes:
            base.update(max_steps=0, epochs=0, max_minutes=cfg.max_minutes)
        return base
    base = StackGANConfig(stage=1, data=cfg.data or "data/menu", image_size=cfg.train_size, ngf=cfg.ngf, ndf=cfg.ndf,
                          batch_size=cfg.batch_size, max_steps=cfg.steps, seed=cfg.seed,
                          text_encoder=cfg.text_encoder, held_out=cfg.held_out, split_seed=cfg.split_seed,
                          device=cfg.device, progress=cfg.progress, ckpt_every=max(1, cfg.steps // 4),
                          sample_every=max(1, cfg.steps // 8)).to_dict()
    if cfg.max_minutes:
        base.update(max_steps=0, epochs=0, max_minutes=cfg.max_minutes)
    base.pop("_kind")
    return base


def stackgan_config(base: dict, out: Path, model: str = "stackgan"):
    from stackgan.stackgan_config import StackGANConfig

    return StackGANConfig.from_dict({**base, **ABLATIONS[model], "out": str(out), "emb_dim": 0, "part_dim": 0})


def dcgan_config(base: dict, out: Path):
    """The DCGAN with the StackGAN's data, split, picture size, widths, seed and budget (steps x batch)."""
    from stackgan.dcgan_config import DCGANConfig

    steps = base["max_steps"]
    minutes = base.get("max_minutes", 0.0) or 0.0
    return DCGANConfig(data=base["data"], out=str(out), image_size=str(base["image_size"]),
                       ngf=base["ngf"], ndf=base["ndf"], batch_size=base["batch_size"], max_steps=steps,
                       max_minutes=minutes, epochs=10**6, seed=base["seed"], held_out=base["held_out"],
                       split_seed=base["split_seed"], device=base["device"],
                       ckpt_every=max(1, steps // 4) if steps else base.get("ckpt_every", 500),
                       precision=base.get("precision", "auto")).validate()


# where a run is, on what, how it shows progress and how fast it computes: not what it trains
# (bf16 and fp32 train to the same quality at equal steps; README, "Speed")
_VOLATILE = frozenset({"out", "checkpoint_dir", "sample_dir", "device", "progress", "resume", "emb_dim", "part_dim", "precision"})


def _settings(config: dict) -> dict:
    """The training settings of a run's config, with fields added since it was written filled in
    as that run meant them (so a run from an older version still counts as the same)."""
    if config.get("_kind") in CONFIG_KINDS:
        try:
            config = typed_config(config, "the run").to_dict()
        except Exception:  # noqa: BLE001 - an unreadable config compares as it is (and differs)
            pass
    return {k: v for k, v in config.items() if k not in _VOLATILE}


def _finished(folder: Path, want: dict) -> bool | str | None:
    """True: a finished run with exactly these settings; "partial": an unfinished one with these
    settings (it is resumed); False: none there; None: a run with other settings."""
    if not RunFolder(folder).looks_like_run:
        return False
    try:
        info = read_run(folder)
    except Exception:  # noqa: BLE001 - a broken folder counts as "different"
        return None
    same = _settings(info.config) == _settings(want)
    if not same:
        return None
    if want.get("max_minutes"):
        from stackgan.metrics.runs import read_timing

        done = float(read_timing(info.folder).get("train_seconds") or 0.0) >= want["max_minutes"] * 60.0
        if want.get("max_steps"):
            done = done or (info.steps or 0) >= want["max_steps"]
        return True if done else "partial"
    return True if (info.steps or 0) >= want["max_steps"] else "partial"


def train_or_load(model: str, cfg: CompareConfig, root: Path, printer: Callable[[str], None],
                  base: dict | None = None) -> tuple[Path, dict]:
    """The run folder of ``model`` and how it was obtained (trained now: wall time; loaded: from its log)."""
    given = {"stackgan": cfg.stackgan, "dcgan": cfg.dcgan}.get(model)
    if given:
        info = read_run(given)
        return Path(given), {"source": "loaded", **info.training()}
    base = base if base is not None else base_stackgan(cfg)
    folder = root / model
    run_cfg = dcgan_config(base, folder) if model == "dcgan" else stackgan_config(base, folder, model)
    want = run_cfg.to_dict()
    state = _finished(folder, want)
    if state is True and not cfg.retrain:
        printer(f"{model}: using the finished run in {folder}")
        return folder, {"source": "loaded", **read_run(folder).training()}
    if state is None or (state is True and cfg.retrain):
        if not cfg.retrain:
            raise ConfigError(f"{folder} holds a {model} run with other settings; use --retrain to replace it "
                              f"or another --out")
        shutil.rmtree(folder)
    if state == "partial" and not cfg.retrain:
        printer(f"{model}: resuming the unfinished run in {folder}")
        # continued from its checkpoint (one stopped before its first checkpoint starts again)
        run_cfg = dataclasses.replace(run_cfg, resume=bool(RunFolder(folder).checkpoint_files))
    elif state == "partial":
        shutil.rmtree(folder)
    budget = (f"{want['max_minutes']:g} min" if want.get("max_minutes") and not want.get("max_steps")
              else f"{want['max_steps']} steps")
    printer(f"{model}: training {budget} x {want['batch_size']} -> {folder}")
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


def compare(cfg: CompareConfig, printer: Callable[[str], None] = print, command: str | None = None) -> dict:
    """``command``: the command line that asked for it, recorded in the report (the CLI passes it)."""
    from stackgan.metrics.evaluate import evaluate_sampler, fit_classifier
    from stackgan.metrics.registry import parse_metrics
    from stackgan.metrics.report import write_report
    from stackgan.metrics.runeval import (apply_invented, check_invented_file, classifier_config, data_summary,
                                          fit_reader, prepare_real, protocol_of, say_not_scorable, summaries)
    from stackgan.metrics.runs import loss_plot
    from stackgan.utils.device import resolve_device

    metrics = parse_metrics(cfg.metrics)  # a bad name fails before any training
    device = resolve_device(cfg.device)
    check_invented_file(cfg)
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    base = base_stackgan(cfg)
    runs = {model: train_or_load(model, cfg, root, printer, base) for model in cfg.models}
    notes = []
    trained = {m: read_run(p).config for m, (p, _) in runs.items()}
    split = {k: base[k] for k in ("data", "held_out", "split_seed")}
    data, data_notes = prepare_real(dataclasses.replace(cfg, data=split["data"]), split, printer)
    data, invented = apply_invented(cfg, data)
    say_not_scorable(invented, printer)
    saw = [m for m, c in trained.items() if (c.get("held_out"), c.get("split_seed")) != (split["held_out"], split["split_seed"])]
    if saw:
        data_notes.append(f"{', '.join(saw)} did not hold out the same photos (loaded runs with another split): "
                          "their generators have seen some held-out photos.")
    clf = fit_classifier(data, classifier_config(cfg), device=device, progress=cfg.progress)
    reader = fit_reader(cfg, data, device, printer)
    proto = protocol_of(cfg)
    models = {}
    samplers = {}
    for model, (path, training) in runs.items():
        info = read_run(path)
        sampler, desc = make_sampler(path, info.kind, device, "1")
        samplers[model] = sampler
        printer(f"scoring {model}")
        res = evaluate_sampler(sampler, data, clf, proto, root / "report", model, progress=printer, reader=reader,
                               metrics=metrics, jsonl=root / "report" / "metrics.jsonl")
        res["training"] = training
        res["model"] = {k: v for k, v in desc.items() if k != "pipeline"}
        res["run"] = str(path)
        lp = loss_plot(info, root / "report", model)
        if lp:
            res.setdefault("files", {})["losses"] = lp
        models[model] = res
    budget = {m: (r["training"].get("steps"), r["training"].get("batch_size")) for m, r in models.items()}
    if base.get("max_minutes") and not base.get("max_steps"):
        notes.append(f"every model trained for {base['max_minutes']:g} minutes (--max-minutes): equal time, so "
                     "the steps differ: " + ", ".join(f"{m} {s}×{b}" for m, (s, b) in budget.items()))
    elif len({b for b in budget.values()}) > 1:
        notes.append("budgets differ between the models (steps, batch): "
                     + ", ".join(f"{m} {s}×{b}" for m, (s, b) in budget.items()))
    if DCGAN in models or any(read_run(p).kind == DCGAN for p, _ in runs.values()):
        notes.append("the DCGAN is unconditional: its pictures ignore the name, so its faithfulness is what "
                     "chance and the data's name balance give; that is the point of the comparison.")
    grid_names = models[next(iter(models))].get("grid_names", {}).get("train") or list(data.names[:8])
    side = side_by_side(samplers, grid_names, root / "report" / "side-by-side.png", n=4, seed=cfg.seed)
    results = {"side_by_side": side.name, "command": command, "metrics": metrics,
               "data": data_summary(data, data_notes), **summaries(clf, reader, data, invented),
               "protocol": vars(proto), "config": cfg.to_dict(), "notes": notes, "models": models}
    js, md = write_report(results, root / "report", f"StackGAN vs baselines on {base['data']}", stem="compare")
    results["_files"] = {"json": str(js), "report": str(md)}
    return results


__all__ = ["compare", "train_or_load", "STACKGAN", "DCGAN"]
