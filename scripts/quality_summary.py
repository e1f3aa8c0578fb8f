#!/usr/bin/env python
"""One line per evaluated run of the quality table: faithfulness / ceiling, FID / floor, diversity,
memorisation (median distance to the nearest training photo, generated vs held-out photos).

    python scripts/quality_summary.py runs/quality/*/eval/eval.json
    python scripts/quality_summary.py runs/quality/m*/eval/eval.json    # menu rows: parts read by the reader
    python scripts/quality_summary.py --per-name runs/quality/m18k-*-s*/eval/eval.json   # invented names by run
    python scripts/quality_summary.py --by-recipe runs/quality/m18k-*-s*/eval/eval.json  # seeds of each recipe

A menu row scored on invented names ends with the invented-names issue's target: each part of the invented
names >= 0.8 of the reader's ceiling on true renders of them, all three parts >= 0.5, and training names
>= 0.9 / 0.85 (base / topping); `target met`, or the parts that miss it. `--by-recipe` groups menu runs by
their training settings (each run's config.json, all but the seed and the run's housekeeping) and gives each
group's mean and spread over its seeds and how many of them meet that target.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


PARTS = ("base", "topping", "modifier", "all")
TARGET_SHARE = 0.8  # of the reader's ceiling, for each part of the invented names
TARGET_ALL = 0.5  # all three parts of an invented name right
TARGET_TRAIN = {"base": 0.9, "topping": 0.85}


def target_misses(d: dict, m: dict) -> list[str]:
    """The parts of the invented-names target a menu row misses ([] = met), as 'part got < needed'."""
    ceiling = d["reader"]["invented_accuracy"]
    inv, train = m["faithfulness_invented"]["overall"], m["faithfulness_train"]["overall"]
    need = {k: TARGET_SHARE * ceiling[k] for k in ("base", "topping", "modifier")} | {"all": TARGET_ALL}
    misses = [f"invented {k} {inv[k]:.3f} < {v:.3f}" for k, v in need.items() if inv[k] < v - 1e-9]
    return misses + [f"training {k} {train[k]:.3f} < {v:.2f}" for k, v in TARGET_TRAIN.items() if train[k] < v - 1e-9]


def _parts(scores: dict) -> str:
    return " / ".join(f"{scores[k]:.3f}" for k in PARTS)


def row(path: Path) -> str:
    """Photos: faithfulness over the name classifier's ceiling. The menu (read by the attribute reader):
    base / topping / modifier / all three, for training names and, when scored, invented ones."""
    d = json.loads(path.read_text(encoding="utf-8"))
    (label, m), = [(k, v) for k, v in d["models"].items()]
    overall = m["faithfulness_train"]["overall"]
    target = ""
    if isinstance(overall, dict):  # the menu: parts read by the attribute reader
        faith = "train " + _parts(overall)
        if m.get("faithfulness_invented"):
            faith += " | invented " + _parts(m["faithfulness_invented"]["overall"])
            if "invented_accuracy" in d.get("reader", {}):  # the ceilings the target is 0.8 of
                misses = target_misses(d, m)
                target = " | target " + ("missed: " + ", ".join(misses) if misses else "met")
    else:
        ceiling = d["classifier"]["heldout_accuracy"]
        ceil = ceiling.get("name", ceiling.get("all"))
        faith = f"faith {overall:.3f} / {ceil:.3f} = {overall / ceil:.2f}"
    fid, floor = m["fid"]["fid"], m["fid_floor"]["fid"]
    detail = ""
    if m.get("fid_detail"):  # stage II: FID on crops at the pictures' own size
        dfid, dfloor = m["fid_detail"]["fid"], m["fid_detail_floor"]["fid"]
        detail = f" | detail FID {dfid:5.2f} / {dfloor:.2f} = {dfid / dfloor:4.1f}x"
    mem = m["memorisation"]
    t = m.get("training") or {}
    return (f"{Path(d['run']).name:24s} steps {t.get('steps') or '?':>6} | {faith} | "
            f"FID {fid:6.2f} / {floor:.2f} = {fid / floor:4.1f}x{detail} | div {m['diversity']['ratio']:.2f} | "
            f"mem {mem['feature']['median']:.2f} vs held-out {mem['heldout_feature']['median']:.2f} | n {m['faithfulness_train']['images']}"
            f"{target}")


def _menu_run(path: Path) -> tuple[dict, dict]:
    """An eval.json and its one model's scores, for the views that need invented names scored."""
    d = json.loads(path.read_text(encoding="utf-8"))
    (m,) = d["models"].values()
    if not m.get("faithfulness_invented"):
        raise SystemExit(f"{path}: no invented names scored (a menu run's eval.json is needed)")
    return d, m


def per_name(paths: list[Path]) -> str:
    """Each invented name's topping / modifier share per run (one column per run) and their mean over the
    runs, worst first by the lower of the two means: which names a recipe fails on every seed."""
    runs = []
    for path in paths:
        d, m = _menu_run(path)
        runs.append((Path(d["run"]).name, {r["name"]: r for r in m["faithfulness_invented"]["per_name"]}))
    names = list(runs[0][1])
    mean = {n: {k: sum(r[n][k] for _, r in runs if n in r) / sum(n in r for _, r in runs) for k in PARTS}
            for n in names}
    lines = ["topping / modifier per run: " + ", ".join(f"[{i}] {label}" for i, (label, _) in enumerate(runs))]
    for n in sorted(names, key=lambda n: min(mean[n]["topping"], mean[n]["modifier"])):
        cells = " ".join(f"{r[n]['topping']:.2f}/{r[n]['modifier']:.2f}" if n in r else "   -     " for _, r in runs)
        lines.append(f"{n}\t{cells} | mean {mean[n]['topping']:.2f}/{mean[n]['modifier']:.2f} "
                     f"base {mean[n]['base']:.2f} all {mean[n]['all']:.2f}")
    return "\n".join(lines)


# config.json keys that do not make a recipe: the seed, and where and how a run was kept
NOT_RECIPE = {"seed", "out", "resume", "device", "progress", "ckpt_every", "keep_ckpts", "sample_every", "log_every",
              "max_minutes", "grid_rows", "grid_cols"}


def _run_config(path: Path, d: dict) -> dict:
    """The training config of the run an eval.json scored: in the run folder it names, else in the folder
    above the eval folder (where `stackgan evaluate` writes by default)."""
    for folder in (Path(d["run"]), path.parent.parent):
        if (folder / "config.json").is_file():
            return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    raise SystemExit(f"{path}: no config.json in {d['run']} or {path.parent.parent}: --by-recipe needs the run folder")


def _mean_sd(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0


def by_recipe(paths: list[Path]) -> str:
    """One line per recipe (runs whose configs differ only in the seed and housekeeping): the options that set
    it apart from the other groups, its seeds, the invented names' base / topping / modifier / all three as
    mean (standard deviation over the seeds), training names' all three, FID / floor, and the seeds that meet
    the invented-names target."""
    from stackgan.stackgan_config import LEGACY_DEFAULTS, StackGANConfig

    # an option added after a run was trained is missing from its config.json: the run trained without it,
    # which is what the config loader reads its absence as (LEGACY_DEFAULTS, else the field's default; a
    # stage-dependent default such as --stage2-paired's is in LEGACY_DEFAULTS as off)
    defaults = {**StackGANConfig().to_dict(), **LEGACY_DEFAULTS}
    groups: dict[str, list] = {}
    configs = {}
    for path in paths:
        d, m = _menu_run(path)
        cfg = _run_config(path, d)
        recipe = {k: v for k, v in {**defaults, **cfg}.items() if k not in NOT_RECIPE}
        key = json.dumps(recipe, sort_keys=True)
        configs[key] = recipe
        groups.setdefault(key, []).append((cfg.get("seed"), d, m))
    differ = sorted({k for r in configs.values() for k in r if len({json.dumps(c.get(k)) for c in configs.values()}) > 1})
    lines = ["recipe | seeds | invented base / topping / modifier / all: mean (sd) | training all | FID / floor | target met"]
    for key, runs in groups.items():
        label = ", ".join(f"{k}={configs[key].get(k)}" for k in differ) or "(one recipe)"
        inv = [_mean_sd([m["faithfulness_invented"]["overall"][p] for _, _, m in runs]) for p in PARTS]
        train_all = statistics.fmean(m["faithfulness_train"]["overall"]["all"] for _, _, m in runs)
        fid = statistics.fmean(m["fid"]["fid"] / m["fid_floor"]["fid"] for _, _, m in runs)
        met = [seed for seed, d, m in runs if "invented_accuracy" in d.get("reader", {}) and not target_misses(d, m)]
        lines.append(f"{label} | {', '.join(str(s) for s, _, _ in runs)} | "
                     + " / ".join(f"{mu:.3f}" for mu, _ in inv) + " (" + " / ".join(f"{sd:.3f}" for _, sd in inv) + ")"
                     + f" | {train_all:.3f} | {fid:.1f}x | {len(met)} of {len(runs)}"
                     + (f" (seeds {', '.join(str(s) for s in met)})" if met else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """The report the command line asks for (argparse: ``--help``, a clear error for a missing file)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--per-name", action="store_true", help="each invented name's topping / modifier share per run")
    how.add_argument("--by-recipe", action="store_true", help="mean and spread of each recipe over its seeds")
    ap.add_argument("evals", nargs="+", type=Path, help="eval.json files written by stackgan evaluate")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.evals if not p.is_file()]
    if missing:
        ap.error("no such eval.json: " + ", ".join(missing))
    if args.per_name:
        return per_name(args.evals)
    if args.by_recipe:
        return by_recipe(args.evals)
    return "\n".join(row(p) for p in args.evals)


if __name__ == "__main__":
    print(main())
