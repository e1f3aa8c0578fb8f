"""Dish names and the TSV files that attach them to photos (``names.tsv``, ``attributes.tsv``).

Names are normalised with Unicode NFKC and trimmed, so the half-width 「ﾋﾟﾘ辛ｻｰﾓﾝ丼」 and the
full-width 「ピリ辛サーモン丼」 are one name, and so are 「ＡＢＣ定食」 and 「ABC定食」.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from stackgan.errors import DataError


def normalize_name(s: str) -> str:
    """NFKC-normalise and trim a dish name; an empty or whitespace-only name is a :class:`DataError`."""
    if not isinstance(s, str):
        raise DataError(f"a dish name must be a string, got {type(s).__name__}")
    name = unicodedata.normalize("NFKC", s).strip()
    if not name:
        raise DataError(f"empty dish name: {s!r}")
    return name


@dataclass(frozen=True)
class TsvRow:
    """One data row of a TSV file: its line number (1-based, header is line 1) and cells by column."""

    line: int
    cells: dict[str, str]


def read_tsv(path: str | os.PathLike, required: tuple[str, ...]) -> list[TsvRow]:
    """Read a UTF-8 TSV file whose header starts with the ``required`` columns (more are allowed).

    Blank lines and lines starting with ``#`` are skipped. A missing/undecodable file, a bad
    header, a row with too few cells or a header without rows is a :class:`DataError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path} not found") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    header_at = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")), None)
    want = "<TAB>".join(required)
    if header_at is None:
        raise DataError(f"{path} is empty: it needs a header line {want!r} and one row per image")
    header = [h.strip().lower() for h in lines[header_at].split("\t")]
    if tuple(header[: len(required)]) != required:
        raise DataError(
            f"{path}: the header must start with {want!r} (tab-separated), got {lines[header_at]!r}")
    rows = []
    for i in range(header_at + 1, len(lines)):
        ln = lines[i]
        if not ln.strip() or ln.startswith("#"):
            continue
        cells = [c.strip() for c in ln.split("\t")]
        if len(cells) < len(required):
            raise DataError(
                f"{path}, line {i + 1}: expected {len(required)} tab-separated cells "
                f"({', '.join(required)}), got {ln!r}")
        cells += [""] * (len(header) - len(cells))
        rows.append(TsvRow(line=i + 1, cells={h: c for h, c in zip(header, cells) if h}))
    if not rows:
        raise DataError(f"{path} has a header but no rows: add one line per image ({want})")
    return rows


def read_names_tsv(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """``names.tsv`` -> ``[(file as written, normalised name, line number)]``.

    A file listed twice with different names is a :class:`DataError`; an exact repeat is dropped.
    """
    seen: dict[str, tuple[str, int]] = {}
    out = []
    for row in read_tsv(path, ("file", "name")):
        file = row.cells["file"]
        if not file:
            raise DataError(f"{path}, line {row.line}: the file cell is empty")
        try:
            name = normalize_name(row.cells["name"])
        except DataError as exc:
            raise DataError(f"{path}, line {row.line}: {exc}") from None
        if file in seen:
            prev_name, prev_line = seen[file]
            if prev_name != name:
                raise DataError(f"{path}: {file} is listed twice with different names "
                                f"(line {prev_line}: {prev_name}, line {row.line}: {name})")
            continue
        seen[file] = (name, row.line)
        out.append((file, name, row.line))
    return out


ATTRIBUTE_COLUMNS = ("file", "name", "base", "topping", "modifier")


def read_attributes_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """``attributes.tsv`` (file, name, base, topping, modifier, ...) -> one dict per row.

    Names are normalised; empty cells stay empty strings (a dish without a modifier).
    """
    out = []
    for row in read_tsv(path, ("file", "name")):
        d = {k: row.cells.get(k, "") for k in ATTRIBUTE_COLUMNS}
        d.update({k: v for k, v in row.cells.items() if k not in d})
        try:
            d["name"] = normalize_name(d["name"])
        except DataError as exc:
            raise DataError(f"{path}, line {row.line}: {exc}") from None
        out.append(d)
    return out
