"""The real side of an evaluation: a data set split into train / held-out photos, with its names,
their parts (menu attributes) and the invented names of ``invented.tsv``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from stackgan.errors import DataError

PART_KEYS = ("base", "topping", "modifier")
NONE = "-"  # how "no topping / no modifier" is written in the menu's TSV files


def norm_part(value: object) -> str:
    """``None``, ``""`` and ``"-"`` all mean "none" and become ``"-"``."""
    v = "" if value is None else str(value).strip()
    return NONE if v in ("", NONE) else v


@dataclasses.dataclass
class RealData:
    """Real photos for an evaluation. ``*_labels`` index ``names``; images are uint8 ``[N, C, H, W]``."""

    names: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    parts: dict[str, dict[str, str]] | None = None  # name -> {base, topping, modifier}
    invented: list[tuple[str, dict[str, str]]] = dataclasses.field(default_factory=list)
    root: str = ""
    split_note: str = ""
    held_out: float = 0.0  # the split, so that the same photos can be loaded again at another size
    split_seed: int = 0

    @property
    def has_attributes(self) -> bool:
        return self.parts is not None and all(n in self.parts for n in self.names)

    def name_parts(self, names: list[str]) -> list[dict[str, str]]:
        assert self.parts is not None
        extra = dict(self.invented)
        return [self.parts.get(n) or extra.get(n) or _parse(n) for n in names]


def _parse(name: str) -> dict[str, str]:
    try:
        from stackgan.menu import parse_name

        base, topping, modifier = parse_name(name)
    except Exception:  # noqa: BLE001 - not a menu name: no parts known
        return {k: "?" for k in PART_KEYS}
    return {"base": norm_part(base), "topping": norm_part(topping), "modifier": norm_part(modifier)}


def read_invented(path: str | os.PathLike) -> list[tuple[str, dict[str, str]]]:
    """``invented.tsv`` (name, base, topping, modifier) -> [(name, parts)]."""
    from stackgan.data.names import normalize_name, read_tsv

    out = []
    for row in read_tsv(path, ("name",)):
        name = normalize_name(row.cells["name"])
        parts = {k: norm_part(row.cells.get(k)) for k in PART_KEYS}
        if "base" not in row.cells or not row.cells.get("base"):
            parts = _parse(name)
        out.append((name, parts))
    return out


def _attr_by_name(ds) -> dict[str, dict[str, str]] | None:
    attrs = getattr(ds, "attributes", None)
    if not attrs:
        return None
    out: dict[str, dict[str, str]] = {}
    if isinstance(attrs, dict):
        items = attrs.items()
    else:
        items = []
        for i, a in enumerate(attrs):
            name = a.get("name") if isinstance(a, dict) else None
            if name is None and len(attrs) == len(ds.labels):
                name = ds.names[int(ds.labels[i])]
            elif name is None and len(attrs) == len(ds.names):
                name = ds.names[i]
            items.append((name, a))
    for name, a in items:
        if name is None or not isinstance(a, dict):
            continue
        out[name] = {k: norm_part(a.get(k)) for k in PART_KEYS}
    return out or None


def load_real_data(root: str | os.PathLike, image_size: int = 64, channels: int = 3, held_out: float = 0.2,
                   seed: int = 0, progress: bool = True) -> RealData:
    """Load ``root`` with :func:`stackgan.data.load_dataset` and split it with ``ImageDataset.split``
    (by photo, stratified by name: the same split a training run with these values holds out)."""
    from stackgan.data import load_dataset

    root = Path(root)
    ds = load_dataset(root, image_size=image_size, channels=channels, progress=progress)
    if len(ds.images) < 4:
        raise DataError(f"{root}: need at least 4 usable photos to evaluate, found {len(ds.images)}")
    if held_out <= 0:
        raise DataError("evaluation needs held-out photos: --held-out must be > 0")
    tr, te = ds.split(held_out, seed)
    if len(te) == 0:
        raise DataError(f"{root}: --held-out {held_out} leaves no held-out photos (every name has one photo?)")
    invented = read_invented(root / "invented.tsv") if (root / "invented.tsv").is_file() else []
    known = set(ds.names)
    invented = [(n, p) for n, p in invented if n not in known]
    return RealData(
        names=list(ds.names), train_images=tr.images, train_labels=tr.labels.long(),
        test_images=te.images, test_labels=te.labels.long(), parts=_attr_by_name(ds), invented=invented,
        root=str(root),
        split_note=f"{len(te)} of {len(ds)} photos held out (about {held_out:.0%} of each name, split seed {seed})",
        held_out=held_out, split_seed=seed,
    )


def invented_renders(data: RealData, per_name: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor] | None:
    """True pictures of the invented names, drawn by the menu's own renderer (uint8 ``[N, 3, S, S]``
    at the data's size, and the index of each picture's name in ``data.invented``): what the
    classifier reads from a real picture of a combination it never saw in training, which is the
    ceiling for the invented names. None when there are no invented names or the renderer does not
    know one of their parts (a data set that is not the embedded menu)."""
    import numpy as np
    from PIL import Image

    from stackgan.menu.make import image_rng
    from stackgan.menu.render import render_dish

    if not data.invented:
        return None
    size = int(data.test_images.shape[-1])
    pics, idx = [], []
    for k, (name, parts) in enumerate(data.invented):
        opt = {h: (None if parts.get(h, NONE) == NONE else parts[h]) for h in ("topping", "modifier")}
        for i in range(per_name):
            try:
                img = render_dish(parts["base"], opt["topping"], opt["modifier"], image_rng(seed, name, i), 256)
            except (KeyError, ValueError):
                return None
            img = img.convert("RGB").resize((size, size), Image.LANCZOS, reducing_gap=3.0)
            pics.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
            idx.append(k)
    return torch.stack(pics), torch.tensor(idx)


def _why_not_a_menu_name(name: str) -> str:
    """Why :func:`stackgan.menu.parse_name` refuses ``name``, in a few words."""
    import unicodedata

    from stackgan.menu.parts import BASE_PARTS, BASES

    s = unicodedata.normalize("NFKC", name).strip().replace(" ", "").replace("\u3000", "")
    spellings = sorted({unicodedata.normalize("NFKC", sp): p.text for p in BASE_PARTS for sp in (p.text, *p.aliases)}
                       .items(), key=lambda kv: -len(kv[0]))
    for sp, base in spellings:
        if s.endswith(sp) and s != sp:
            return (f"{s[: len(s) - len(sp)]!r} before the base {base} is not a modifier and/or topping of the "
                    "menu vocabulary")
    return f"it does not end with a base of the menu vocabulary ({' '.join(BASES)})"


def read_name_list(path: str | os.PathLike, training_names: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[list[tuple[str, dict[str, str]]], list[dict]]:
    """A list of menu names to score as invented names: ``(scorable, not_scorable)``.

    The file is a TSV with the header ``name, base, topping, modifier`` (as ``invented.tsv``) or
    just ``name`` (then the parts are read from the name with :func:`stackgan.menu.parse_name`).
    ``scorable`` is ``[(name, parts)]``; ``not_scorable`` is ``[{line, name, reason}]`` for names
    outside the menu vocabulary, names whose parts contradict the columns, repeats and
    ``training_names``. An unreadable file or one without a ``name`` column is a DataError.
    """
    from stackgan.data.names import normalize_name, read_tsv
    from stackgan.metrics.reader import unknown_parts

    scorable: list[tuple[str, dict[str, str]]] = []
    bad: list[dict] = []
    seen: dict[str, int] = {}
    for row in read_tsv(path, ("name",)):
        raw = row.cells["name"]
        try:
            name = normalize_name(raw)
        except DataError:
            bad.append({"line": row.line, "name": raw, "reason": "empty name"})
            continue
        if name in seen:
            bad.append({"line": row.line, "name": name, "reason": f"listed before (line {seen[name]})"})
            continue
        seen[name] = row.line
        if name in training_names:
            bad.append({"line": row.line, "name": name,
                        "reason": "a training name of the data set, not an invented one (scored with the training "
                                  "names)"})
            continue
        parsed = _parse(name)
        if row.cells.get("base"):
            parts = {k: norm_part(row.cells.get(k)) for k in PART_KEYS}
            unknown = unknown_parts(parts)
            if unknown:
                bad.append({"line": row.line, "name": name,
                            "reason": f"not in the menu vocabulary: {', '.join(unknown)}"})
                continue
            if parsed["base"] != "?" and parsed != parts:
                said = " + ".join(parsed[k] for k in ("modifier", "topping", "base"))
                cols = " + ".join(parts[k] for k in ("modifier", "topping", "base"))
                bad.append({"line": row.line, "name": name,
                            "reason": f"the name reads as {said} (modifier + topping + base), the columns say {cols}"})
                continue
        elif parsed["base"] == "?":
            bad.append({"line": row.line, "name": name, "reason": f"not a menu name: {_why_not_a_menu_name(name)}"})
            continue
        else:
            parts = parsed
        scorable.append((name, parts))
    return scorable, bad
