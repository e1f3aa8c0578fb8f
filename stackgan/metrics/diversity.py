"""Diversity within a name: mean pairwise feature distance, generated vs real (ratio ~0 = collapse)."""

from __future__ import annotations

from typing import Sequence

import torch


def mean_pairwise_distance(feats: torch.Tensor) -> float:
    """Mean Euclidean distance over all unordered pairs of rows of ``feats`` [N, D] (N >= 2)."""
    if feats.dim() != 2 or len(feats) < 2:
        raise ValueError(f"need a [N>=2, D] feature matrix, got shape {tuple(feats.shape)}")
    d = torch.cdist(feats.double()[None], feats.double()[None])[0]
    n = len(feats)
    return float(d.sum() / (n * (n - 1)))


def per_group(feats: torch.Tensor, idx: torch.Tensor, groups: int) -> list[float | None]:
    """Mean pairwise distance for each group id in ``range(groups)``; None where a group has < 2 rows."""
    out: list[float | None] = []
    for g in range(groups):
        f = feats[idx == g]
        out.append(mean_pairwise_distance(f) if len(f) >= 2 else None)
    return out


def diversity(gen_feats: torch.Tensor, gen_idx: torch.Tensor, real_feats: torch.Tensor, real_idx: torch.Tensor,
              names: Sequence[str]) -> dict:
    """Within-name diversity of generated vs real pictures.

    ``gen_idx`` / ``real_idx`` index into ``names``. The ratio is taken over the names that have
    at least two pictures on both sides: mean generated distance / mean real distance. About 1
    means as varied as the photos; about 0 means every picture of a name is the same (collapse).
    """
    gen = per_group(gen_feats, gen_idx, len(names))
    real = per_group(real_feats, real_idx, len(names))
    rows = []
    both = []
    for name, g, r in zip(names, gen, real):
        ratio = (g / r) if (g is not None and r is not None and r > 0) else None
        rows.append({"name": name, "generated": g, "real": r, "ratio": ratio})
        if g is not None and r is not None:
            both.append((g, r))
    out: dict = {"per_name": rows, "names_compared": len(both),
                 "generated_per_name": int(torch.bincount(gen_idx, minlength=len(names)).max()) if len(gen_idx) else 0}
    if both:
        mg = sum(g for g, _ in both) / len(both)
        mr = sum(r for _, r in both) / len(both)
        out.update(generated=mg, real=mr, ratio=(mg / mr) if mr > 0 else None)
    else:
        out.update(generated=None, real=None, ratio=None)
    return out
