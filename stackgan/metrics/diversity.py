"""Diversity within a name: mean pairwise feature distance, generated vs real (ratio ~0 = collapse).

Also the pixel-space version that training logs at every fixed grid (``div_gen`` / ``div_real``):
:func:`mean_pairwise_l1` and :func:`real_pixel_diversity`. This module needs only torch, so the
trainers use it without loading the rest of the evaluation.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


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


def mean_pairwise_l1(images: torch.Tensor, size: int = 32) -> float:
    """Mean L1 distance over all pairs of [-1, 1] pictures, compared at ``size`` px (NaN for < 2)."""
    x = images.float()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    x = x.flatten(1)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    d = torch.cdist(x[None], x[None], p=1)[0] / x.shape[1]
    return float(d.sum() / (n * (n - 1)))


def real_pixel_diversity(images: torch.Tensor, labels: torch.Tensor, label_ids: Sequence[int], per_name: int = 16,
                         size: int = 32) -> float:
    """Mean over ``label_ids`` (those with >= 2 pictures) of :func:`mean_pairwise_l1` of their first
    ``per_name`` pictures (``images`` uint8, or float in [-1, 1])."""
    vals = []
    for c in label_ids:
        idx = (labels == c).nonzero().flatten()[:per_name]
        if idx.numel() >= 2:
            x = images[idx]
            vals.append(mean_pairwise_l1(x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x, size))
    return sum(vals) / len(vals) if vals else float("nan")
