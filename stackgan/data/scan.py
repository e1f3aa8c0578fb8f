"""Scanning a data set folder: which photos carry which name, and which files cannot be used.

Two layouts are accepted:

* ``names.tsv`` (UTF-8, header ``file<TAB>name``, more columns ignored) beside the photos; a
  listed path is relative to the folder, or to its ``images/`` sub-folder. Several photos may
  share a name.
* without ``names.tsv``: one sub-folder per name, ``DIR/<name>/*.jpg``.

Photos are ``.jpg``, ``.jpeg``, ``.png`` or ``.webp`` files of any size. Hidden files and
folders (``.cache``...) are ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from stackgan.data.decode import (MISSING, NOT_LISTED, TOO_SMALL, ImageProblem, open_image, read_bytes,
                                  read_header)
from stackgan.data.names import normalize_name, read_names_tsv
from stackgan.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
NAMES_FILE = "names.tsv"
UNLABELED = "(unlabeled)"  # the one "name" of every picture of an unlabeled folder (the DCGAN needs none)
UNLABELED_NOTE = ("an unlabeled set: usable by the unconditional DCGAN (`stackgan baseline-dcgan --data DIR`), "
                  "not by StackGAN, which needs a name per picture (a names.tsv or one sub-folder per name)")
ATTRIBUTES_FILE = "attributes.tsv"


@dataclass
class DatasetIndex:
    """The result of scanning a folder.

    ``entries``: usable ``(relative file, normalised name)`` pairs, in names.tsv order (or
    sorted by path for per-name folders); ``problems``: ``(relative file, reason)`` for every
    file that cannot be used, the reason one of ``stackgan.data.REASONS``; ``details``: a
    longer explanation per problem file; ``sizes`` / ``modes``: original ``(width, height)``
    (after EXIF rotation) and PIL mode of each decoded file (usable or too small).
    """

    root: Path
    layout: str  # "names.tsv", "folders" or "unlabeled" (pictures without names: the DCGAN's)
    entries: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted({n for _, n in self.entries})

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, n in self.entries:
            out[n] = out.get(n, 0) + 1
        return dict(sorted(out.items()))

    def add_problem(self, file: str, reason: str, detail: str = "") -> None:
        self.problems.append((file, reason))
        if detail:
            self.details[file] = detail


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTS) and not name.startswith(".")


def _walk_images(folder: Path, root: Path) -> list[str]:
    """Image files under ``folder`` (recursively, hidden entries skipped) as sorted POSIX paths
    relative to ``root``."""
    out = []
    root_s = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, root_s)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        out.extend(prefix + fn for fn in filenames if _is_image_name(fn))
    return sorted(out)


def resolve_listed(root: Path, file: str) -> str | None:
    """A path as written in names.tsv -> the relative POSIX path of the existing file, or None.

    Paths are relative to ``root``; a bare file name is also looked up in ``root/images/``.
    Absolute paths and paths that leave the folder are never resolved.
    """
    rel = file.replace("\\", "/")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if rel.startswith("/") or ".." in parts or not parts:
        return None
    rel = "/".join(parts)
    root_s = os.fspath(root)
    for cand in (rel, "images/" + rel):
        if os.path.exists(os.path.join(root_s, cand)):
            return cand
    return None


def list_dataset(root: str | os.PathLike, unlabeled: bool = False, pattern: str | None = None) -> DatasetIndex:
    """Find the photos and their names without opening them.

    ``entries`` are the candidates; ``problems`` holds the files not listed in names.tsv and
    the listed files that are missing. A missing folder, a bad names.tsv, or a folder with
    neither names.tsv nor per-name sub-folders is a :class:`DataError`, unless ``unlabeled``:
    then a plain folder of pictures (recursively) is an ``unlabeled`` set whose pictures all
    carry the name :data:`UNLABELED`. ``pattern``: only files whose name (or, with a ``/`` in
    it, whose path in the folder) matches this glob, e.g. ``*.png``.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"data set folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"not a folder: {root} (a data set is a folder of photos with a names.tsv)")
    names_tsv = root / NAMES_FILE
    if names_tsv.is_file():
        idx = _list_with_names_tsv(root, names_tsv)
    else:
        idx = _list_folders(root, unlabeled)
    if pattern:
        idx.entries = [(rel, n) for rel, n in idx.entries if matches(rel, pattern)]
        idx.problems = [(rel, r) for rel, r in idx.problems if matches(rel, pattern)]
        if not idx.entries:
            raise DataError(f"{root}: no picture matches --pattern {pattern!r}")
    return idx


def matches(rel: str, pattern: str) -> bool:
    """Whether the file ``rel`` (a POSIX path in the data folder) matches the glob ``pattern``: its
    name, or its whole path when the pattern has a ``/``."""
    from fnmatch import fnmatchcase

    return fnmatchcase(rel if "/" in pattern else PurePosixPath(rel).name, pattern)


def _list_with_names_tsv(root: Path, names_tsv: Path) -> DatasetIndex:
    idx = DatasetIndex(root=root, layout=NAMES_FILE)
    listed: set[str] = set()
    for file, name, line in read_names_tsv(names_tsv):
        rel = resolve_listed(root, file)
        if rel is None:
            p = PurePosixPath(file.replace("\\", "/"))
            why = ("the path leaves the data set folder" if p.is_absolute() or ".." in p.parts
                   else f"no such file (names.tsv line {line}, name {name})")
            idx.add_problem(file, MISSING, why)
            continue
        if rel in listed:  # the same file written two ways ("a.jpg" and "images/a.jpg")
            continue
        listed.add(rel)
        idx.entries.append((rel, name))
    for rel in _walk_images(root, root):
        if rel not in listed:
            idx.add_problem(rel, NOT_LISTED, "add a row for it to names.tsv to use it")
    return idx


def _list_folders(root: Path, unlabeled: bool = False) -> DatasetIndex:
    idx = DatasetIndex(root=root, layout="folders")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = sorted(p for p in root.iterdir() if p.is_file() and _is_image_name(p.name))
    per_dir = [(d, _walk_images(d, root)) for d in subdirs]
    if unlabeled and loose:  # a plain folder of pictures: every one of them, no names
        idx.layout = "unlabeled"
        idx.entries = [(rel, UNLABELED) for rel in _walk_images(root, root)]
        return idx
    if not any(files for _, files in per_dir):
        what = f"{len(loose)} photo(s) but no names.tsv" if loose else "no photos"
        hint = (" (a folder of pictures without names trains the unconditional DCGAN: "
                "`stackgan baseline-dcgan --data DIR`)" if loose else "")
        raise DataError(
            f"{root}: {what}. A data set is a folder of photos (jpg/png/webp) with a names.tsv "
            f"(header file<TAB>name, one row per photo), or one sub-folder per name (DIR/<name>/*.jpg){hint}")
    for d, files in per_dir:
        try:
            name = normalize_name(d.name)
        except Exception:  # a folder whose name is blank after NFKC
            for rel in files:
                idx.add_problem(rel, NOT_LISTED, f"the folder name {d.name!r} is not a usable dish name")
            continue
        for rel in files:
            idx.entries.append((rel, name))
    for path in loose:
        idx.add_problem(path.name, NOT_LISTED,
                        "a photo in the top folder has no name: there is no names.tsv, so move it "
                        "into a per-name sub-folder")
    return idx


def scan_dataset(root: str | os.PathLike, min_size: int = 16, decode: bool = True,
                 progress: bool = False, unlabeled: bool = False, pattern: str | None = None) -> DatasetIndex:
    """List the data set and open every photo (fully decoding it when ``decode``).

    Photos that cannot be read, are truncated, are not images, or whose short side is below
    ``min_size`` move from ``entries`` to ``problems``. With ``decode=False`` only the headers
    are read (fast, but truncated files go unnoticed).
    """
    from tqdm import tqdm

    idx = list_dataset(root, unlabeled=unlabeled, pattern=pattern)
    candidates, idx.entries = idx.entries, []
    for rel, name in tqdm(candidates, desc="checking photos", unit="img", disable=not progress):
        try:
            if decode:
                im, size = open_image(read_bytes(idx.root / rel))
                mode = im.mode
            else:
                size, mode = read_header(idx.root / rel)
        except ImageProblem as exc:
            idx.add_problem(rel, exc.reason, exc.detail)
            continue
        idx.sizes[rel] = size
        idx.modes[rel] = mode
        if min(size) < min_size:
            idx.add_problem(rel, TOO_SMALL, f"{size[0]}x{size[1]} px, short side below {min_size}")
            continue
        idx.entries.append((rel, name))
    return idx

