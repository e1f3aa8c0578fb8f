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
