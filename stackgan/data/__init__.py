"""Data sets: dish names, folder layouts, loading and caching photos, ``data check``.

Public API::

    normalize_name(s) -> str
    scan_dataset(root, min_size=16) -> DatasetIndex        # .entries, .problems
    load_dataset(root, image_size=64, channels=3, crop="center", min_size=16,
                 cache_dir=None, progress=True) -> ImageDataset
    shared_dataset(name) -> Path | None                     # ../shared/<name> beside the repo
"""

from __future__ import annotations

from pathlib import Path

from stackgan.data.decode import (MISSING, NOT_AN_IMAGE, NOT_LISTED, REASONS, TOO_LARGE, TOO_SMALL, TRUNCATED,
                                  UNREADABLE)
from stackgan.data.names import normalize_name, read_attributes_tsv, read_names_tsv
from stackgan.data.scan import IMAGE_EXTS, DatasetIndex, list_dataset, scan_dataset

__all__ = [
    "normalize_name", "read_names_tsv", "read_attributes_tsv", "scan_dataset", "list_dataset",
    "DatasetIndex", "load_dataset", "ImageDataset", "DataWarning", "default_cache_dir",
    "shared_dataset", "IMAGE_EXTS", "REASONS", "UNREADABLE", "TRUNCATED", "NOT_AN_IMAGE",
    "NOT_LISTED", "MISSING", "TOO_SMALL", "TOO_LARGE",
]

_LAZY = {"load_dataset", "ImageDataset", "DataWarning", "default_cache_dir"}


def __getattr__(name: str):
    # stackgan.data.load imports torch: only when asked for, so the CLI stays fast.
    if name in _LAZY:
        from stackgan.data import load

        return getattr(load, name)
    raise AttributeError(f"module 'stackgan.data' has no attribute {name!r}")


def shared_dataset(name: str = "realfood") -> Path | None:
    """``../shared/<name>`` next to the repository (research-only sets never copied into it), or None."""
    path = Path(__file__).resolve().parents[2] / ".." / "shared" / name
    return path if path.is_dir() else None
