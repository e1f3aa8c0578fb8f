"""``stackgan data check``: what a data set folder holds and which files cannot be used, as text."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from typing import Any

from stackgan.data.decode import REASONS
from stackgan.data.scan import UNLABELED_NOTE, DatasetIndex, scan_dataset

# short-side buckets for the size histogram (px): [lo, hi)
SIZE_BUCKETS = ((0, 32), (32, 64), (64, 128), (128, 256), (256, 512), (512, 1024), (1024, None))


def check_dataset(root: str | os.PathLike, min_size: int = 16, progress: bool = False,
                  pattern: str | None = None) -> DatasetIndex:
    """Scan the folder, fully decoding every photo (so truncated files are found). A plain folder
    of pictures without names is reported as an unlabeled set (the DCGAN's)."""
    return scan_dataset(root, min_size=min_size, decode=True, progress=progress, unlabeled=True, pattern=pattern)


def report_dict(idx: DatasetIndex, min_size: int) -> dict[str, Any]:
    usable = [f for f, _ in idx.entries]
    shorts = [min(idx.sizes[f]) for f in usable]
    sizes = Counter(f"{w}x{h}" for w, h in (idx.sizes[f] for f in usable))
    buckets = []
    for lo, hi in SIZE_BUCKETS:
        n = sum(1 for s in shorts if s >= lo and (hi is None or s < hi))
        buckets.append({"label": f"{lo}-{hi - 1}" if hi else f">={lo}", "count": n})
    return {
        "root": str(idx.root),
        "layout": idx.layout,
        **({"note": UNLABELED_NOTE} if idx.layout == "unlabeled" else {}),
        "min_size": min_size,
        "n_usable": len(usable),
        "n_names": len(idx.names),
        "counts": idx.counts(),
        "short_side": ({"min": min(shorts), "median": statistics.median(shorts), "max": max(shorts)}
                       if shorts else None),
        "short_side_buckets": buckets,
        "common_sizes": sizes.most_common(5),
        "modes": dict(Counter(idx.modes[f] for f in usable).most_common()),
        "problems": [{"file": f, "reason": r, "detail": idx.details.get(f, "")} for f, r in idx.problems],
        "problem_counts": {r: n for r in REASONS if (n := sum(1 for _, x in idx.problems if x == r))},
    }


def format_report(rep: dict[str, Any]) -> str:
    out = [f"data set: {rep['root']} (layout: {rep['layout']})"]
    if rep.get("note"):
        out.append(rep["note"])
    counts = rep["counts"]
    out.append(f"\nphotos per name ({rep['n_names']} names, {rep['n_usable']} usable photos):")
    if counts:
        vals = list(counts.values())
        width = len(str(max(vals)))
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {n:>{width}}  {name}")
        out.append(f"  per name: min {min(vals)}, median {statistics.median(vals):g}, max {max(vals)}")
    else:
        out.append("  (none)")
    ss = rep["short_side"]
    if ss:
        out.append(f"\nphoto sizes (short side, px): min {ss['min']}, median {ss['median']:g}, max {ss['max']}")
        total = rep["n_usable"]
        for b in rep["short_side_buckets"]:
            if b["count"]:
                bar = "#" * max(1, round(30 * b["count"] / total))
                out.append(f"  {b['label']:>9}  {b['count']:>6}  {bar}")
        common = ", ".join(f"{s} ({n})" for s, n in rep["common_sizes"])
        out.append(f"  most common: {common}")
        out.append("  colour modes: " + ", ".join(f"{m} ({n})" for m, n in rep["modes"].items()))
    probs = rep["problems"]
    if probs:
        summary = ", ".join(f"{n} {r}" for r, n in rep["problem_counts"].items())
        out.append(f"\n{len(probs)} file(s) cannot be used ({summary}):")
        for p in probs:
            out.append(f"  {p['file']}: {p['reason']}" + (f" ({p['detail']})" if p["detail"] else ""))
    else:
        out.append("\nevery file can be used")
    verdict = ("OK" if rep["n_usable"] else "UNUSABLE")
    out.append(f"\n{verdict}: {rep['n_usable']} usable photo(s) of {rep['n_names']} name(s), "
               f"{len(probs)} file(s) skipped (min size {rep['min_size']} px)")
    return "\n".join(out)
