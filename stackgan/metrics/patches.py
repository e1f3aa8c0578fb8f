"""Patch precision and recall: do the pictures' small patches look like the photos' patches?

Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) on raw pixel patches instead of whole-picture
features. Each set is cut into ``patch`` x ``patch`` squares (stride half a patch) and a random ``n`` of them are
kept; a set's manifold is the union of balls around its patches, each as wide as the distance to that patch's
``k``-th nearest neighbour in the same set. Precision is the share of the pictures' patches that fall inside the
photos' manifold; recall the share of the photos' patches inside the pictures'.

What it sees (README, stop 54), on the menu at 128 px: patches that the photos never have, the brush strokes
and wobbly rims of the painterly look, lower precision (the shipped model reads under the floor of training
photos; stage II's crisp redraws of the renders read above it). Blur raises precision (smooth patches are
common in photos) and lowers recall (the fine ones are missing), so precision is read with recall and with the
spectrum's fine half, which tells blur apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PATCH = 8
PATCHES = 10_000
K = 3


def patch_vectors(images: torch.Tensor, patch: int = PATCH, n: int = PATCHES, seed: int = 0) -> torch.Tensor:
    """[N, C, H, W] -> up to ``n`` of its ``patch`` x ``patch`` squares (stride ``patch // 2``), drawn at random
    with ``seed``, flattened: float32 [min(n, all), C * patch * patch]."""
    if images.dim() != 4:
        raise ValueError(f"expected pictures [N, C, H, W], got {tuple(images.shape)}")
    if patch < 2 or patch > min(images.shape[-2:]):
        raise ValueError(f"patch must be between 2 and the pictures' size {min(images.shape[-2:])}, got {patch}")
    x = F.unfold(images.float(), patch, stride=patch // 2)  # [N, C*p*p, L]
    x = x.transpose(1, 2).reshape(-1, x.shape[1])
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[keep]


def _sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cdist(a, b).square()  # as memorisation's nearest(): torch's pairwise distances


def knn_radii(x: torch.Tensor, k: int = K, chunk: int = 2048) -> torch.Tensor:
    """Each row's squared distance to its ``k``-th nearest other row of ``x``."""
    if not 1 <= k < len(x):
        raise ValueError(f"k must be between 1 and {len(x) - 1} for {len(x)} patches, got {k}")
    return torch.cat([_sq_dist(x[i:i + chunk], x).topk(k + 1, largest=False).values[:, -1]
                      for i in range(0, len(x), chunk)])


def coverage(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """The share of ``query``'s rows that lie within the ball of some row of ``ref`` (squared ``radii``)."""
    inside = [(_sq_dist(query[i:i + chunk], ref) <= radii[None]).any(1) for i in range(0, len(query), chunk)]
    return float(torch.cat(inside).float().mean())


def patch_precision_recall(pictures: torch.Tensor, photos: torch.Tensor, patch: int = PATCH, n: int = PATCHES,
                           k: int = K, seed: int = 0, photo_patches: tuple[torch.Tensor, torch.Tensor] | None = None
                           ) -> dict:
    """``pictures`` against ``photos`` (the same size, both in [-1, 1]): ``precision`` (the pictures' patches
    inside the photos' manifold), ``recall`` (the photos' patches inside the pictures'), with what was measured.
    ``photo_patches``: the photos' (patches, radii) from :func:`photo_manifold`, to reuse them across sets."""
    if pictures.shape[1:] != photos.shape[1:]:
        raise ValueError(f"pictures of {tuple(pictures.shape[1:])} against photos of {tuple(photos.shape[1:])}")
    ref, ref_r = photo_manifold(photos, patch, n, k, seed) if photo_patches is None else photo_patches
    if ref.shape[1] != photos.shape[1] * patch * patch:
        raise ValueError(f"the photos' patches have {ref.shape[1]} values, not those of {patch} px patches")
    mine = patch_vectors(pictures, patch, n, seed + 1)
    mine_r = knn_radii(mine, k)
    return {"precision": coverage(mine, ref, ref_r), "recall": coverage(ref, mine, mine_r), "patch": int(patch),
            "size": int(pictures.shape[-1]), "k": int(k), "n_a": int(len(mine)), "n_b": int(len(ref))}


def photo_manifold(photos: torch.Tensor, patch: int = PATCH, n: int = PATCHES, k: int = K, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The photos' patches and their squared k-NN radii (what :func:`patch_precision_recall` measures against)."""
    ref = patch_vectors(photos, patch, n, seed)
    return ref, knn_radii(ref, k)
