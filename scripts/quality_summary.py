#!/usr/bin/env python
"""One line per evaluated run of the quality table: faithfulness / ceiling, FID / floor, diversity,
memorisation (median distance to the nearest training photo, generated vs held-out photos).

    python scripts/quality_summary.py runs/quality/*/eval/eval.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def row(path: Path) -> str:
    d = json.loads(path.read_text(encoding="utf-8"))
    (label, m), = [(k, v) for k, v in d["models"].items()]
    ceiling = d["classifier"]["heldout_accuracy"]
    ceil = ceiling.get("name", ceiling.get("all"))
    faith = m["faithfulness_train"]["overall"]
    fid, floor = m["fid"]["fid"], m["fid_floor"]["fid"]
    mem = m["memorisation"]
    t = m.get("training") or {}
    return (f"{Path(d['run']).name:24s} steps {t.get('steps', '?'):>6} | faith {faith:.3f} / {ceil:.3f} = {faith / ceil:.2f} | "
            f"FID {fid:6.2f} / {floor:.2f} = {fid / floor:4.1f}x | div {m['diversity']['ratio']:.2f} | "
            f"mem {mem['feature']['median']:.2f} vs held-out {mem['heldout_feature']['median']:.2f} | n {m['faithfulness_train']['images']}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(row(Path(p)))
