"""A name's parts as a code beside its sentence vector, so that unseen combinations compose.

A data set whose ``attributes.tsv`` gives each photo's parts (the menu's ``base``, ``topping`` and
``modifier`` columns, or any other columns after ``file`` and ``name``) lets a model condition on
them: :class:`PartVocab` holds the values each part (slot) takes in the training names, and
:meth:`PartVocab.codes` turns names into one block per slot: a one-hot over the slot's values
plus "none" (the name has no such part, ``-`` in the table), or all zeros where the part is
unknown. Training names take their parts from the table; any other name is read with
:meth:`PartVocab.parse`: the longest known values found in it, each slot at most once. When
nothing of the name is left over, a slot that found nothing is "none"; when text is left over
(a word the vocabulary does not know), such a slot is unknown and the sentence vector alone
speaks for it. 「サーモンうどん」 never seen in training then gets the code of サーモン from the
salmon dishes and of うどん from the udon dishes.

The code is appended to the sentence vector (``[e5 | parts]``); the conditioning augmentation
standardises the first block only (:class:`stackgan.models.stackgan.CondAugment`).
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from stackgan.errors import DataError

#: How a name without a part is written in ``attributes.tsv`` (the menu's convention).
NONE_CELLS = ("", "-")
#: Columns of ``attributes.tsv`` that are not parts.
NOT_PARTS = ("file", "name")


def _norm(s: str) -> str:
    return unicodedata.normalize("NFKC", str(s)).strip()


@dataclass(frozen=True)
class PartVocab:
    """Slots (e.g. base, topping, modifier) and the values each takes, sorted."""

    slots: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        if not self.slots:
            raise DataError("a part vocabulary needs at least one part column")
        if len(self.values) != len(self.slots):
            raise DataError("one list of values per part column is needed")
        for slot, vals in zip(self.slots, self.values):
            if not vals:
                raise DataError(f"the part column {slot!r} has no values (every cell is empty or '-')")

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def from_table(cls, parts: Mapping[str, Mapping[str, str]]) -> "PartVocab":
        """From ``{name: {slot: value}}`` (``-`` or empty: none); the slots of the first name."""
        if not parts:
            raise DataError("no names with parts")
        slots = tuple(next(iter(parts.values())).keys())
        values = tuple(tuple(sorted({_norm(p[s]) for p in parts.values() if _norm(p.get(s, "")) not in NONE_CELLS}))
                       for s in slots)
        return cls(slots, values)

    def to_json(self) -> dict:
        return {"slots": list(self.slots), "values": [list(v) for v in self.values]}

    @classmethod
    def from_json(cls, d: Mapping) -> "PartVocab":
        try:
            return cls(tuple(d["slots"]), tuple(tuple(v) for v in d["values"]))
        except (KeyError, TypeError) as exc:
            raise DataError(f"a part vocabulary needs 'slots' and 'values', got {d!r}") from exc

    # -- the code -----------------------------------------------------------------------------
    @property
    def sizes(self) -> tuple[int, ...]:
        """Width of each slot's block: its values plus "none"."""
        return tuple(len(v) + 1 for v in self.values)

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    @functools.cached_property
    def _longest_first(self) -> list[tuple[str, str]]:
        """(value, slot) pairs, longest value first: the order :meth:`parse` tries them."""
        return sorted(((_norm(v), slot) for slot, vals in zip(self.slots, self.values) for v in vals),
                      key=lambda vs: -len(vs[0]))

    def parse(self, name: str) -> dict[str, str | None]:
        """``{slot: value}`` read from the name: a value, ``None`` (no such part) or ``"?"`` (unknown)."""
        s = _norm(name).replace(" ", "").replace("\u3000", "")
        found: dict[str, str] = {}
        for value, slot in self._longest_first:
            if slot in found or not value or value not in s:
                continue
            found[slot] = value
            s = s.replace(value, "\x00", 1)
        left_over = s.replace("\x00", "")
        return {slot: found.get(slot, "?" if left_over else None) for slot in self.slots}

    def code(self, parts: Mapping[str, str | None]) -> torch.Tensor:
        """[dim]: per slot a one-hot over (values..., none), zeros where the part is unknown."""
        out = torch.zeros(self.dim)
        at = 0
        for slot, vals, size in zip(self.slots, self.values, self.sizes):
            v = parts.get(slot, "?")
            v = None if v is not None and _norm(v) in NONE_CELLS else v
            if v is None:
                out[at + size - 1] = 1.0
            elif _norm(v) in vals:
                out[at + vals.index(_norm(v))] = 1.0
            at += size
        return out

    def codes(self, names: Sequence[str], known: Mapping[str, Mapping[str, str]] | None = None) -> torch.Tensor:
        """[N, dim] codes: the table's parts for the names in ``known``, :meth:`parse` for the others."""
        known = known or {}
        return torch.stack([self.code(known[n]) if n in known else self.code(self.parse(n)) for n in names]) \
            if names else torch.zeros(0, self.dim)

    def describe(self, name: str) -> str:
        """``base=丼 topping=サーモン modifier=-`` (``?`` for unknown), for messages and the page."""
        parts = self.parse(name)
        return " ".join(f"{s}={'-' if v is None else v}" for s, v in parts.items())


class SentenceFit:
    """A sentence vector predicted from a parts code: a linear map (ridge least squares, with a bias)
    fitted on the training names' ``[sentence | parts]`` vectors, the prediction scaled to their mean
    length. A name made of known parts then gets a sentence vector composed from the training names it
    shares parts with (「サーモンうどん」: the salmon dishes' and the udon dishes' share), instead of its own
    encoding, which a model conditioned on the training names' vectors may read as the nearest one
    (「激辛カツカレー」 as 激辛カレー). Deterministic: the same training vectors give the same map."""

    def __init__(self, emb: torch.Tensor, text_dim: int, ridge: float = 1e-3):
        emb = emb.detach().float().cpu()
        if emb.ndim != 2 or not 0 < text_dim < emb.shape[1]:
            raise DataError(f"a sentence fit needs [names, sentence + parts] vectors with a parts code after "
                            f"{text_dim} sentence dimensions, got {tuple(emb.shape)}")
        if emb.shape[0] < 2:
            raise DataError("a sentence fit needs at least two training names")
        x = torch.cat([emb[:, text_dim:], torch.ones(emb.shape[0], 1)], dim=1)
        y = emb[:, :text_dim]
        self.weight = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ y)  # [parts + 1, T]
        self.length = float(y.norm(dim=1).mean())

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        """[N, T] sentence vectors for [N, parts] codes (on the codes' device and dtype)."""
        w = self.weight.to(codes.device)
        x = torch.cat([codes.float(), torch.ones(codes.shape[0], 1, device=codes.device)], dim=1)
        out = x @ w
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-8) * self.length
        return out.to(codes.dtype)


def names_parts(rows: Sequence[Mapping[str, str]], names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``attributes.tsv`` rows -> ``{name: {slot: value}}`` for ``names``; the part columns are every
    column after ``file`` and ``name``. A name with two different part lists, or one of ``names``
    without a row, is a :class:`DataError`."""
    if not rows:
        raise DataError("attributes.tsv has no rows")
    slots = [k for k in rows[0] if k not in NOT_PARTS]
    if not slots:
        raise DataError("attributes.tsv has no part columns after file and name (e.g. base, topping, modifier)")
    table: dict[str, dict[str, str]] = {}
    for r in rows:
        parts = {s: _norm(r.get(s, "")) for s in slots}
        prev = table.setdefault(r["name"], parts)
        if prev != parts:
            raise DataError(f"attributes.tsv gives {r['name']} two different part lists: {prev} and {parts}")
    missing = [n for n in names if n not in table]
    if missing:
        raise DataError(f"attributes.tsv has no row for {len(missing)} training name(s), e.g. {missing[0]}")
    # a column no training name fills (absent from the file, or always '-') says nothing
    used = [s for s in slots if any(table[n][s] not in NONE_CELLS for n in names)]
    if not used:
        raise DataError("attributes.tsv fills no part column for the training names")
    return {n: {s: table[n][s] for s in used} for n in names}
