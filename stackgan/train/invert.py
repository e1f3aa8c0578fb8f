"""GAN inversion through a frozen stage-I generator: the stage-I picture nearest a photo.

Stage II's paired term (``--stage2-paired``) teaches it to redraw a photo from a stage-I-size copy. A pooled copy
is crisp; at inference stage II gets stage I's own picture, painterly strokes and all, and copies them (README,
stops 41-42). ``--stage2-paired-inverted N`` gives it pairs of the kind it meets: for N training photos, the
picture the frozen stage I draws nearest the photo's pooled copy (its z and noise-input maps optimised with Adam
against the L1 distance, the photo's own name fixed), so stage II learns to turn stage I's strokes into the
photo's detail (the learned degradation of Real-ESRGAN's argument, with stage I as the degradation).

- :func:`invert` -- the stage-I pictures nearest a batch of targets.
- :func:`inverted_bank` -- the pictures of a draw of training photos, in batches, with their indices.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

INVERT_STEPS = 200  # Adam steps per batch (the menu: L1 0.27 at 50, 0.22 at 100, 0.20 at 200, 0.19 at 300)
INVERT_LR = 0.05
INVERT_BATCH = 32
NOISE_REG = 0.1  # keeps the z and the noise maps near N(0, 1), where G was trained


def _gaussian_penalty(x: torch.Tensor) -> torch.Tensor:
    """Zero for a draw of N(0, 1) (mean 0, mean square 1), growing as ``x`` leaves it."""
    return (x.pow(2).mean() - 1).pow(2) + x.mean().pow(2)


def invert(G: nn.Module, target: torch.Tensor, emb: torch.Tensor, steps: int = INVERT_STEPS, lr: float = INVERT_LR,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """The pictures the frozen stage-I generator ``G`` draws nearest ``target`` ([n, 3, S, S] in [-1, 1], at its
    size) for the sentence vectors ``emb``: z and G's noise maps start from ``generator``'s draw and take ``steps``
    Adam steps on the L1 distance (at full size and pooled by 4, so the layout leads) plus :data:`NOISE_REG` times
    their distance from N(0, 1). With conditioning augmentation its eps stays 0 (c = mu). G's own weights and
    mode are left as they were. Returns (pictures, final L1 at full size)."""
    if target.dim() != 4 or target.shape[2] != G.image_size or target.shape[3] != G.image_size:
        raise ValueError(f"targets must be [n, 3, {G.image_size}, {G.image_size}] (stage I's size), "
                         f"got {tuple(target.shape)}")
    if emb.shape[0] != target.shape[0]:
        raise ValueError(f"{emb.shape[0]} sentence vectors for {target.shape[0]} targets")
    n, device = target.shape[0], target.device
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    z = torch.randn(n, G.z_dim, generator=gen).to(device).requires_grad_(True)
    maps = G.random_noise(n, gen)
    noise = [m.to(device).requires_grad_(True) for m in maps] if maps is not None else None
    eps = torch.zeros(n, G.c_dim, device=device)
    was_training = G.training
    flags = [p.requires_grad for p in G.parameters()]
    G.eval().requires_grad_(False)
    opt = torch.optim.Adam([z] + (noise or []), lr=lr)
    small = F.avg_pool2d(target, 4)
    try:
        with torch.enable_grad():
            for _ in range(steps):
                img, _, _ = G(z, emb, eps, noise=noise)
                img = img.float()
                loss = (img - target).abs().mean() + (F.avg_pool2d(img, 4) - small).abs().mean()
                reg = _gaussian_penalty(z) + sum((_gaussian_penalty(m) for m in noise or []), torch.zeros(()))
                opt.zero_grad(set_to_none=True)
                (loss + NOISE_REG * reg).backward()
                opt.step()
        with torch.no_grad():
            img = G(z, emb, eps, noise=noise)[0].float()
    finally:
        G.train(was_training)
        for p, f in zip(G.parameters(), flags):
            p.requires_grad_(f)
    return img, float((img - target).abs().mean())


def inverted_bank(G: nn.Module, photos: torch.Tensor, emb: torch.Tensor, n: int, seed: int,
                  steps: int = INVERT_STEPS, batch: int = INVERT_BATCH,
                  report: Callable[[int, int, float], None] | None = None) -> dict[str, torch.Tensor]:
    """Stage-I pictures for ``n`` photos drawn with ``seed`` (all when there are fewer): ``photos`` float
    [N, 3, S, S] in [-1, 1] at stage I's size, ``emb`` one sentence vector per photo. Returns {"idx": the photos'
    indices (long [n]), "low": their stage-I pictures (float16 [n, 3, S, S]), "l1": each batch's final L1 (float
    [batches])}. ``report(done, n, l1)`` after every batch."""
    if n < 1:
        raise ValueError(f"the number of photos to invert must be at least 1, got {n}")
    if photos.shape[0] != emb.shape[0]:
        raise ValueError(f"{emb.shape[0]} sentence vectors for {photos.shape[0]} photos")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(photos.shape[0], generator=gen)[:n].sort().values
    lows, l1s = [], []
    for at in range(0, len(idx), batch):
        part = idx[at:at + batch]
        low, l1 = invert(G, photos[part], emb[part], steps=steps, generator=gen)
        lows.append(low.half().cpu())
        l1s.append(l1)
        if report is not None:
            report(at + len(part), len(idx), l1)
    return {"idx": idx, "low": torch.cat(lows), "l1": torch.tensor(l1s)}
