"""R-precision: does a picture's embedding rank its own name first among 1 true + up to 99 other names?

Needs a joint image-text space (a contrastive image encoder paired with the text encoder). With
one true name per picture, R = 1, so R-precision is the top-1 hit rate among the candidates.
When fewer than 100 names exist, the candidates are all names, and the result says how many.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def r_precision(image_emb: torch.Tensor, true_idx: torch.Tensor, text_emb: torch.Tensor, others: int = 99,
                seed: int = 0) -> dict:
    """``image_emb`` [N, D], ``true_idx`` [N] into ``text_emb`` [K, D]. Cosine similarity ranking."""
    if image_emb.dim() != 2 or text_emb.dim() != 2 or image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"embedding shapes do not match: {tuple(image_emb.shape)} vs {tuple(text_emb.shape)}")
    k = len(text_emb)
    if k < 2:
        raise ValueError("R-precision needs at least two names")
    n_others = min(others, k - 1)
    img = F.normalize(image_emb.float(), dim=1)
    txt = F.normalize(text_emb.float(), dim=1)
    sims = img @ txt.T  # [N, K]
    g = torch.Generator().manual_seed(seed)
    hits = torch.zeros(len(img), dtype=torch.bool)
    for i in range(len(img)):
        t = int(true_idx[i])
        pool = torch.cat([torch.arange(t), torch.arange(t + 1, k)])
        cand = pool[torch.randperm(len(pool), generator=g)[:n_others]]
        hits[i] = bool(sims[i, t] > sims[i, cand].max())
    return {"r_precision": float(hits.float().mean()), "candidates": n_others + 1, "images": int(len(img)),
            "chance": 1.0 / (n_others + 1)}


def fit_projection(feats: torch.Tensor, labels: torch.Tensor, text_emb: torch.Tensor, steps: int = 400,
                   lr: float = 1e-2, temperature: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """A linear image encoder (features -> text space) trained contrastively on real photos.

    For text encoders without an image side: each photo's projected feature is pulled towards its
    name's (frozen) sentence vector and pushed from the other names' (InfoNCE over all names),
    like AttnGAN's DAMSM but linear on the in-domain classifier's features.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        proj = torch.nn.Linear(feats.shape[1], text_emb.shape[1])
        opt = torch.optim.Adam(proj.parameters(), lr=lr)
        x = feats.float()
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        mean, std = feats.float().mean(0), feats.float().std(0) + 1e-6
        txt = F.normalize(text_emb.float(), dim=1)
        for _ in range(steps):
            logits = F.normalize(proj(x), dim=1) @ txt.T / temperature
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return _Standardised(proj.eval().requires_grad_(False), mean, std)


class _Standardised(torch.nn.Module):
    def __init__(self, proj: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.proj = proj
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.proj((feats.float() - self.mean) / self.std)
