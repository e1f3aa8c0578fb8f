"""Memorisation: the nearest training photo of every generated picture, in feature and pixel space."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from stackgan.metrics.features import pixel_vectors, to_float


def nearest(query: torch.Tensor, bank: torch.Tensor, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean nearest row of ``bank`` for every row of ``query``: (distances [N], indices [N])."""
    if query.dim() != 2 or bank.dim() != 2 or query.shape[1] != bank.shape[1] or len(bank) == 0:
        raise ValueError(f"bad shapes for nearest(): {tuple(query.shape)} vs {tuple(bank.shape)}")
    dists, idxs = [], []
    b = bank.float()
    for i in range(0, len(query), chunk):
        d = torch.cdist(query[i:i + chunk].float(), b)
        v, j = d.min(1)
        dists.append(v)
        idxs.append(j)
    return torch.cat(dists), torch.cat(idxs)


def _summary(d: torch.Tensor) -> dict:
    q = torch.quantile(d.double(), torch.tensor([0.0, 0.1, 0.5, 0.9], dtype=torch.float64))
    return {"min": float(q[0]), "p10": float(q[1]), "median": float(q[2]), "p90": float(q[3]),
            "mean": float(d.double().mean()), "n": int(len(d))}


def memorisation(gen_images: torch.Tensor, gen_feats: torch.Tensor, train_images: torch.Tensor,
                 train_feats: torch.Tensor, ref_images: torch.Tensor | None = None,
                 ref_feats: torch.Tensor | None = None, pixel_size: int = 32) -> dict:
    """Nearest-training-photo distances of generated pictures, with held-out real photos as the reference.

    A held-out photo was never trained on, so its distance to the nearest training photo is what
    "new but similar" looks like; generated pictures much closer than that (ratio << 1) were
    probably copied. Returns summaries plus the raw per-picture nearest indices (for the pairs image).
    """
    gen_pix = pixel_vectors(gen_images, pixel_size)
    train_pix = pixel_vectors(train_images, pixel_size)
    fd, fi = nearest(gen_feats, train_feats)
    pd, pi = nearest(gen_pix, train_pix)
    out = {
        "feature": _summary(fd), "pixel": _summary(pd), "pixel_size": pixel_size,
        "train_photos": int(len(train_feats)),
        "_feature_dist": fd, "_feature_idx": fi, "_pixel_dist": pd, "_pixel_idx": pi,
    }
    if ref_images is not None and ref_feats is not None and len(ref_feats):
        rfd, _ = nearest(ref_feats, train_feats)
        rpd, _ = nearest(pixel_vectors(ref_images, pixel_size), train_pix)
        out["heldout_feature"] = _summary(rfd)
        out["heldout_pixel"] = _summary(rpd)
        out["feature_ratio"] = float(fd.median() / rfd.median()) if float(rfd.median()) > 0 else None
        out["pixel_ratio"] = float(pd.median() / rpd.median()) if float(rpd.median()) > 0 else None
    return out


def public(result: dict) -> dict:
    """The JSON-safe part of a :func:`memorisation` result (drops the raw tensors)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def save_closest_pairs(gen_images: torch.Tensor, train_images: torch.Tensor, dist: torch.Tensor, idx: torch.Tensor,
                       path: str | os.PathLike, k: int = 8, size: int = 64) -> Path:
    """The ``k`` generated pictures closest to a training photo, each beside that photo (one pair a row)."""
    from stackgan.metrics.features import prepare
    from stackgan.utils.viz import save_grid

    order = torch.argsort(dist)[:k]
    g = prepare(to_float(gen_images[order]), size)
    t = prepare(to_float(train_images[idx[order]]), size)
    pairs = torch.stack([g, t], 1).flatten(0, 1)
    return save_grid(pairs, path, nrow=2)
