"""Nearest names by cosine similarity of sentence vectors (shown beside generated pictures)."""

from __future__ import annotations

from typing import Sequence

import torch

from stackgan.errors import UserError
from stackgan.text.base import TextEncoder, load_text_encoder, normalize_names


def neighbours(name: str, candidates: Sequence[str], encoder: TextEncoder | str = "e5", k: int = 5,
               candidate_vectors: torch.Tensor | None = None,
               exclude_self: bool = False) -> list[tuple[str, float]]:
    """The ``k`` candidates nearest to ``name``: ``[(candidate, cosine)]``, most similar first.

    ``candidate_vectors`` [len(candidates), D] (e.g. from the embedding cache) skips encoding
    the candidates. ``exclude_self`` leaves out a candidate equal to the (normalised) name.
    Duplicate candidates are listed once.
    """
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if isinstance(encoder, str):
        encoder = load_text_encoder(encoder)
    query = normalize_names([name])[0]
    cands = normalize_names(candidates) if len(candidates) else []
    if not cands:
        raise UserError("no candidate names to compare with")
    if candidate_vectors is None:
        vecs = encoder.encode(list(dict.fromkeys(cands)))
        cands = list(dict.fromkeys(cands))
    else:
        if len(candidate_vectors) != len(cands) or candidate_vectors.shape[-1] != encoder.dim:
            raise UserError(f"candidate_vectors has shape {tuple(candidate_vectors.shape)}, expected "
                            f"[{len(cands)}, {encoder.dim}] for this text encoder")
        keep = {}
        for i, c in enumerate(cands):
            keep.setdefault(c, i)
        cands = list(keep)
        vecs = torch.nn.functional.normalize(candidate_vectors[list(keep.values())].float(), dim=1)
    q = encoder.encode([query])[0]
    sims = vecs @ q
    order = torch.argsort(sims, descending=True).tolist()
    out = [(cands[i], float(sims[i])) for i in order if not (exclude_self and cands[i] == query)]
    return out[:k]
