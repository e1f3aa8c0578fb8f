#!/usr/bin/env python
"""One line per evaluated run of the quality table: faithfulness / ceiling, FID / floor, diversity,
memorisation (median distance to the nearest training photo, generated vs held-out photos).

    python scripts/quality_summary.py runs/quality/*/eval/eval.json
    python scripts/quality_summary.py runs/quality/m*/eval/eval.json    # menu rows: parts read by the reader
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


PARTS = ("base", "topping", "modifier", "all")


def _parts(scores: dict) -> str:
    return " / ".join(f"{scores[k]:.3f}" for k in PARTS)


def row(path: Path) -> str:
    """Photos: faithfulness over the name classifier's ceiling. The menu (read by the attribute reader):
    base / topping / modifier / all three, for training names and, when scored, invented ones."""
    d = json.loads(path.read_text(encoding="utf-8"))
    (label, m), = [(k, v) for k, v in d["models"].items()]
    overall = m["faithfulness_train"]["overall"]
    if isinstance(overall, dict):  # the menu: parts read by the attribute reader
        faith = "train " + _parts(overall)
        if m.get("faithfulness_invented"):
            faith += " | invented " + _parts(m["faithfulness_invented"]["overall"])
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
            f"mem {mem['feature']['median']:.2f} vs held-out {mem['heldout_feature']['median']:.2f} | n {m['faithfulness_train']['images']}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(row(Path(p)))
