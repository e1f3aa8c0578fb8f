"""Loading a data set into memory as uint8 tensors, with an on-disk cache of the decoded photos.

Each photo is decoded once (EXIF orientation, colour conversion, centre crop, one antialiased
resize); the result for the whole set is cached in one safetensors file per (content of all
photos, image size, channels, crop), so later loads only read and hash the files (to notice a
changed photo) and skip the JPEG decoding. A bad photo is skipped with a :class:`DataWarning`
naming it; only an empty or fully unusable set is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from stackgan.data.decode import (CHANNELS, CROPS, TOO_LARGE, TOO_SMALL, ImageProblem, decode_to_tensor, pixel_limit,
                                  read_bytes)
from stackgan.data.names import read_attributes_tsv
from stackgan.data.scan import ATTRIBUTES_FILE, list_dataset, resolve_listed
from stackgan.errors import ConfigError, DataError, ProjectWarning, UserError

CACHE_VERSION = 1
_MAX_WARNINGS = 20


class DataWarning(ProjectWarning):
    """A photo was skipped (named in the message), or a side file could not be used."""


def default_cache_dir() -> Path:
    """``$STACKGAN_CACHE/images``, else ``~/.cache/stackgan/images``."""
    base = os.environ.get("STACKGAN_CACHE") or Path.home() / ".cache" / "stackgan"
    return Path(base) / "images"


def _size_hw(image_size: int | Sequence[int]) -> tuple[int, int]:
    try:
        if isinstance(image_size, (str, bytes)):
            raise TypeError
        if hasattr(image_size, "__index__"):
            hw = (image_size.__index__(),) * 2
        else:
            hw = tuple(v.__index__() for v in image_size)
    except (TypeError, AttributeError):
        raise ConfigError(f"image size must be N or (height, width), got {image_size!r}") from None
    if len(hw) != 2:
        raise ConfigError(f"image size must be N or (height, width), got {image_size!r}")
    if min(hw) < 1:
        raise ConfigError(f"image size must be positive, got {image_size!r}")
    return hw  # type: ignore[return-value]


class ImageDataset(Dataset):
    """Photos as uint8 ``images [N, C, H, W]`` with ``labels [N]`` indexing the sorted ``names``.

    ``ds[i]`` is ``(float image [C, H, W] in [-1, 1], int label)``. ``files`` are relative to
    ``root``; ``skipped`` lists ``(file, reason)`` for every file that could not be used;
    ``attributes`` is a list of dicts (file, name, base, topping, modifier...) aligned with the
    images when the folder has an ``attributes.tsv``, else None.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, names: Sequence[str],
                 files: Sequence[str], *, root: str | os.PathLike, image_size: int | tuple[int, int],
                 crop: str = "center", skipped: Sequence[tuple[str, str]] = (),
                 attributes: list[dict[str, str]] | None = None,
                 cache_path: Path | None = None, from_cache: bool = False):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        n = images.shape[0]
        if labels.shape != (n,) or len(files) != n or (attributes is not None and len(attributes) != n):
            raise ValueError("images, labels, files and attributes must have the same length")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= len(names)):
            raise ValueError("labels must index names")
        self.images = images
        self.labels = labels.long()
        self.names = list(names)
        self.files = list(files)
        self.root = Path(root)
        self.image_size = image_size
        self.crop = crop
        self.skipped = list(skipped)
        self.attributes = attributes
        self.cache_path = cache_path
        self.from_cache = from_cache

    # -- Dataset ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float().div_(127.5).sub_(1.0), int(self.labels[i])

    def __repr__(self) -> str:
        return (f"ImageDataset({len(self)} images, {len(self.names)} names, {self.channels}x"
                f"{self.height}x{self.width}, root={str(self.root)!r})")

    # -- shape -------------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def height(self) -> int:
        return self.images.shape[2]

    @property
    def width(self) -> int:
        return self.images.shape[3]

    # -- views -------------------------------------------------------------------------------
    def subset(self, indices: Sequence[int] | torch.Tensor) -> "ImageDataset":
        """The photos at ``indices`` (same ``names``, so labels keep their meaning)."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"subset index out of range for {len(self)} images")
        pos = [int(i) % len(self) for i in idx.tolist()] if len(self) else []
        return ImageDataset(
            self.images[idx], self.labels[idx], self.names, [self.files[i] for i in pos],
            root=self.root, image_size=self.image_size, crop=self.crop, skipped=self.skipped,
            attributes=None if self.attributes is None else [self.attributes[i] for i in pos],
            cache_path=self.cache_path, from_cache=self.from_cache)

    def split(self, held_out: float = 0.2, seed: int = 0) -> tuple["ImageDataset", "ImageDataset"]:
        """Stratified (train, test) split by photo: about ``held_out`` of each name's photos,
        at least one, go to test; a name with a single photo stays in train. Deterministic
        for the seed, and a name's split does not depend on the other names."""
        import random

        if not 0.0 <= held_out < 1.0:
            raise ConfigError(f"held-out fraction must be in [0, 1), got {held_out}")
        by_label: dict[int, list[int]] = {}
        for i, lab in enumerate(self.labels.tolist()):
            by_label.setdefault(lab, []).append(i)
        train, test = [], []
        for lab, idxs in sorted(by_label.items()):
            idxs = sorted(idxs, key=lambda i: self.files[i])
            k = len(idxs)
            n_test = 0 if held_out == 0 or k < 2 else min(k - 1, max(1, round(k * held_out)))
            random.Random(f"{seed}/{self.names[lab]}").shuffle(idxs)
            test += idxs[:n_test]
            train += idxs[n_test:]
        return self.subset(sorted(train)), self.subset(sorted(test))

    # -- reports -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Photos per name, for every name in ``names`` (0 for a name absent from a subset)."""
        c = torch.bincount(self.labels, minlength=len(self.names)).tolist() if len(self) else [0] * len(self.names)
        return dict(zip(self.names, c))

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description: sizes, counts per name, skipped files."""
        counts = self.counts()
        return {
            "root": str(self.root),
            "n_images": len(self),
            "n_names": len(self.names),
            "n_names_present": sum(1 for v in counts.values() if v),
            "image_size": list(self.image_size) if isinstance(self.image_size, tuple) else self.image_size,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "crop": self.crop,
            "counts": counts,
            "n_skipped": len(self.skipped),
            "skipped": [list(s) for s in self.skipped],
            "has_attributes": self.attributes is not None,
        }


def _hash_bytes(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _cache_names(root: Path, hw: tuple[int, int], channels: int, crop: str,
                 hashes: Sequence[str]) -> tuple[str, str]:
    """(prefix shared by every cache of this folder and settings, full file name)."""
    params = f"v{CACHE_VERSION}-{hw[0]}x{hw[1]}-c{channels}-{crop}"
    prefix = hashlib.blake2b(f"{root.resolve()}|{params}".encode(), digest_size=6).hexdigest()
    key = hashlib.blake2b(("|".join([params, *sorted(set(hashes))])).encode(), digest_size=12).hexdigest()
    return prefix, f"{prefix}-{key}.safetensors"


def _read_cache(path: Path) -> tuple[torch.Tensor, dict[str, Any]] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads(fh.metadata()["stackgan"])
            images = fh.get_tensor("images") if "images" in fh.keys() else None
        if meta.get("version") != CACHE_VERSION:
            return None
        if (meta.get("max_pixels") != pixel_limit()
                and any(f[0] == TOO_LARGE for f in meta.get("failed", {}).values())):
            return None  # the pixel limit changed since photos were refused as too large: try them again
        if images is None:
            images = torch.empty((0, 0, 0, 0), dtype=torch.uint8)
        if images.shape[0] != len(meta["hashes"]):
            return None
        return images, meta
    except FileNotFoundError:
        return None
    except Exception as exc:  # a damaged cache file is rebuilt, never fatal
        warnings.warn(f"ignoring unreadable image cache {path}: {exc}", DataWarning, stacklevel=3)
        return None


def _write_cache(cache_dir: Path, prefix: str, name: str, images: torch.Tensor, meta: dict[str, Any]) -> Path | None:
    from stackgan.utils.io import atomic_save_safetensors

    path = cache_dir / name
    try:
        tensors = {"images": images} if images.shape[0] else {}
        atomic_save_safetensors(tensors, path, metadata={"stackgan": json.dumps(meta)})
    except OSError as exc:
        warnings.warn(f"could not write the image cache in {cache_dir}: {exc}", DataWarning, stacklevel=3)
        return None
    for old in cache_dir.glob(f"{prefix}-*.safetensors"):  # older versions of this folder's cache
        if old.name != name:
            old.unlink(missing_ok=True)
    return path


def _decode_all(root: Path, todo: list[tuple[str, str]], hw: tuple[int, int], channels: int,
                crop: str, progress: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """Decode one file per content hash -> (images [M, C, H, W], cache metadata)."""
    from tqdm import tqdm

    def work(item: tuple[str, str]):
        h, rel = item
        try:
            return h, decode_to_tensor(read_bytes(root / rel), hw, channels, crop), None
        except ImageProblem as exc:
            return h, None, (exc.reason, exc.detail)

    out = torch.empty((len(todo), channels, *hw), dtype=torch.uint8)
    meta: dict[str, Any] = {"version": CACHE_VERSION, "size": list(hw), "channels": channels, "crop": crop,
                            "max_pixels": pixel_limit(), "hashes": [], "sizes": [], "modes": [], "failed": {}}
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool, \
            tqdm(total=len(todo), desc="decoding photos", unit="img", disable=not progress) as bar:
        for h, res, fail in pool.map(work, todo):
            bar.update(1)
            if fail is not None:
                meta["failed"][h] = list(fail)
                continue
            tensor, orig, mode = res
            out[len(meta["hashes"])] = tensor
            meta["hashes"].append(h)
            meta["sizes"].append(list(orig))
            meta["modes"].append(mode)
    return out[: len(meta["hashes"])].clone(), meta


def load_dataset(root: str | os.PathLike, image_size: int | tuple[int, int] = 64, channels: int = 3,
                 crop: str = "center", min_size: int = 16, cache_dir: str | os.PathLike | None = None,
                 progress: bool = True, use_cache: bool = True, unlabeled: bool = False,
                 pattern: str | None = None) -> ImageDataset:
    """Load a data set folder (see :mod:`stackgan.data.scan` for the layouts).

    ``image_size``: N for N×N, or ``(height, width)``. ``channels``: 3 (RGB), 1 (grayscale) or
    4 (RGBA, opaque alpha for photos without one). ``crop``: ``center`` (centre crop to the
    output shape) or ``none`` (whole picture, padded). Photos whose short side is below
    ``min_size`` are skipped. ``cache_dir`` defaults to :func:`default_cache_dir`;
    ``use_cache=False`` neither reads nor writes it. ``unlabeled``: a plain folder of pictures
    without names is accepted (one name, :data:`stackgan.data.scan.UNLABELED`: for the DCGAN);
    ``pattern``: only files matching this glob (``*.png``).
    """
    hw = _size_hw(image_size)
    if channels not in CHANNELS:
        raise ConfigError(f"channels must be one of {', '.join(map(str, CHANNELS))}, got {channels}")
    if crop not in CROPS:
        raise ConfigError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    idx = list_dataset(root, unlabeled=unlabeled, pattern=pattern)
    root = idx.root
    skipped = list(idx.problems)
    details = dict(idx.details)

    # read and hash every candidate (cheap: no decoding)
    root_s = os.fspath(root)
    hashed: list[tuple[str, str, str]] = []  # (rel, name, hash)
    for rel, name in idx.entries:
        try:
            hashed.append((rel, name, _hash_bytes(read_bytes(os.path.join(root_s, rel)))))
        except ImageProblem as exc:
            skipped.append((rel, exc.reason))
            details[rel] = exc.detail

    first_file: dict[str, str] = {}
    for rel, _, h in hashed:
        first_file.setdefault(h, rel)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    prefix, cache_name = _cache_names(root, hw, channels, crop, list(first_file))
    cached = _read_cache(cache_dir / cache_name) if use_cache and first_file else None
    from_cache = cached is not None
    cache_path: Path | None = cache_dir / cache_name if from_cache else None
    if cached is None:
        images_all, meta = _decode_all(root, list(first_file.items()), hw, channels, crop, progress)
        if use_cache and first_file:
            cache_path = _write_cache(cache_dir, prefix, cache_name, images_all, meta)
    else:
        images_all, meta = cached
    row_of = {h: i for i, h in enumerate(meta["hashes"])}

    rows, labels_names, files = [], [], []
    for rel, name, h in hashed:
        if h in row_of:
            r = row_of[h]
            w, ht = meta["sizes"][r]
            if min(w, ht) < min_size:
                skipped.append((rel, TOO_SMALL))
                details[rel] = f"{w}x{ht} px, short side below {min_size}"
                continue
            rows.append(r)
            labels_names.append(name)
            files.append(rel)
        else:
            reason, detail = meta["failed"].get(h, ("unreadable", "missing from the image cache"))
            skipped.append((rel, reason))
            details[rel] = detail

    _warn_skipped(skipped, details, root)
    if not rows:
        if not skipped:
            raise DataError(f"{root}: the data set is empty (no photos)")
        kinds = sorted({r for _, r in skipped})
        raise DataError(f"{root}: none of the {len(skipped)} file(s) can be used ({', '.join(kinds)}); "
                        f"run `stackgan data check {root}` for the list")

    names = sorted(set(labels_names))
    label_of = {n: i for i, n in enumerate(names)}
    images = images_all[torch.tensor(rows, dtype=torch.long)]
    labels = torch.tensor([label_of[n] for n in labels_names], dtype=torch.long)
    return ImageDataset(images, labels, names, files, root=root,
                        image_size=hw[0] if hw[0] == hw[1] else hw, crop=crop, skipped=skipped,
                        attributes=_load_attributes(root, files), cache_path=cache_path, from_cache=from_cache)


def _warn_skipped(skipped: list[tuple[str, str]], details: dict[str, str], root: Path) -> None:
    for rel, reason in skipped[:_MAX_WARNINGS]:
        detail = details.get(rel)
        warnings.warn(f"skipping {rel}: {reason}" + (f" ({detail})" if detail else ""), DataWarning, stacklevel=3)
    if len(skipped) > _MAX_WARNINGS:
        warnings.warn(f"... and {len(skipped) - _MAX_WARNINGS} more skipped files; "
                      f"`stackgan data check {root}` lists them all", DataWarning, stacklevel=3)


def _load_attributes(root: Path, files: list[str]) -> list[dict[str, str]] | None:
    path = root / ATTRIBUTES_FILE
    if not path.is_file():
        return None
    try:
        rows = read_attributes_tsv(path)
    except UserError as exc:
        warnings.warn(f"ignoring {ATTRIBUTES_FILE}: {exc}", DataWarning, stacklevel=3)
        return None
    by_file = {}
    for row in rows:
        rel = resolve_listed(root, row["file"])
        by_file.setdefault(rel or row["file"], row)
    keys = tuple(rows[0].keys())
    missing = [f for f in files if f not in by_file]
    if missing:
        warnings.warn(f"{ATTRIBUTES_FILE} has no row for {len(missing)} photo(s), e.g. {missing[0]}; "
                      f"their attributes are empty", DataWarning, stacklevel=3)
    return [dict(by_file[f]) if f in by_file else {k: "" for k in keys} | {"file": f} for f in files]
