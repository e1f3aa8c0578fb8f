"""Image preprocessing and batched feature extraction shared by the metrics."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Sampler = Callable[[str, int, int], torch.Tensor]
"""``sampler(name, n, seed) -> images [n, C, H, W]`` in [-1, 1]."""


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] images -> float32 [-1, 1]."""
    if images.dtype == torch.uint8:
        return images.float().div(127.5).sub(1.0)
    return images.float()


def prepare(images: torch.Tensor, size: int, channels: int = 3) -> torch.Tensor:
    """Any images -> float [-1, 1], ``channels`` channels, ``size`` x ``size`` (antialiased resize)."""
    x = to_float(images)
    if x.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif channels == 1:
            x = x[:, :3].mean(1, keepdim=True)
        elif x.shape[1] == 4 and channels == 3:
            x = x[:, :3]
        else:
            raise ValueError(f"cannot turn {x.shape[1]}-channel images into {channels} channels")
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > size)
    return x.contiguous()


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 256,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Apply ``fn`` to ``images`` in batches on ``device``; results are concatenated on the CPU."""
    outs = []
    for i in range(0, len(images), batch_size):
        outs.append(fn(images[i:i + batch_size].to(device)).float().cpu())
    if not outs:
        raise ValueError("no images to process")
    return torch.cat(outs)


def pixel_vectors(images: torch.Tensor, size: int = 32) -> torch.Tensor:
    """Images as flat pixel vectors at ``size`` px (for pixel-space nearest neighbours)."""
    return prepare(images, size, channels=images.shape[1] if images.shape[1] in (1, 3) else 3).flatten(1)


def sample_names(sampler: Sampler, names: Sequence[str], n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` images for every name; returns (images [len(names)*n, ...], name index [len*n]).

    Name ``i`` uses seed ``seed + 1000 * i`` so that each name's pictures are reproducible on their own.
    """
    imgs, idx = [], []
    for i, name in enumerate(names):
        x = sampler(name, n, seed + 1000 * i)
        if x.shape[0] != n:
            raise ValueError(f"sampler returned {x.shape[0]} images for {name!r}, expected {n}")
        imgs.append(to_float(x).cpu())
        idx.append(torch.full((n,), i, dtype=torch.long))
    return torch.cat(imgs), torch.cat(idx)
