"""Composing the menu set: which names are trained on, which are held back as invented, and
writing ``images/``, ``names.tsv``, ``attributes.tsv``, ``invented.tsv`` and ``README.md``.

Every image gets its own generator seeded from ``(seed, crc32(name), index)``, so an image
depends only on the seed, its name and its number: the set is reproducible, and adding a name
does not change the pictures of the others.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from stackgan.errors import DataError
from stackgan.menu.parts import (BASE_PARTS, MODIFIER_PARTS, NONE, TOPPING_PARTS, compose_name, parse_name,
                                 slug)
from stackgan.menu.render import render_dish

Combo = tuple[str, "str | None", "str | None"]  # (base, topping, modifier)

# The training names: every base, topping and modifier occurs in at least three of them.
TRAIN_COMBOS: tuple[Combo, ...] = (
    # 丼
    ("丼", "サーモン", None), ("丼", "カツ", None), ("丼", "親子", None), ("丼", "牛", None),
    ("丼", "豚キムチ", None), ("丼", "唐揚げ", None), ("丼", "えび天", None), ("丼", "牛", "大盛り"),
    ("丼", "豚キムチ", "ピリ辛"), ("丼", "親子", "大盛り"),
    # カレー
    ("カレー", None, None), ("カレー", "カツ", None), ("カレー", None, "激辛"),
    # うどん
    ("うどん", "きつね", None), ("うどん", "月見", None), ("うどん", "わかめ", None), ("うどん", "えび天", None),
    ("うどん", "親子", None), ("うどん", "牛", None), ("うどん", "きつね", "冷やし"), ("うどん", "月見", "冷やし"),
    # そば
    ("そば", "月見", None), ("そば", "えび天", None), ("そば", "きつね", None), ("そば", "わかめ", None),
    ("そば", "ねぎ", None), ("そば", "わかめ", "冷やし"),
    # ラーメン: the broth is part of the base
    ("醤油ラーメン", None, None), ("醤油ラーメン", "チャーシュー", None), ("醤油ラーメン", "コーン", None),
    ("味噌ラーメン", None, None), ("味噌ラーメン", "コーン", None), ("味噌ラーメン", "ねぎ", None),
    ("味噌ラーメン", None, "ピリ辛"),
    ("塩ラーメン", None, None), ("塩ラーメン", "ねぎ", None), ("塩ラーメン", "コーン", None),
    ("豚骨ラーメン", None, None), ("豚骨ラーメン", "チャーシュー", None), ("豚骨ラーメン", None, "激辛"),
    # 定食
    ("定食", "唐揚げ", None), ("定食", "カツ", None), ("定食", "サーモン", None), ("定食", "唐揚げ", "ピリ辛"),
    # チャーハン
    ("チャーハン", None, None), ("チャーハン", "チャーシュー", None), ("チャーハン", "サーモン", None),
    ("チャーハン", "豚キムチ", None), ("チャーハン", None, "大盛り"), ("チャーハン", None, "激辛"),
)

# Invented names: never trained on, built only from parts seen in training.
INVENTED_COMBOS: tuple[Combo, ...] = (
    ("うどん", "サーモン", None), ("カレー", "えび天", None), ("カレー", "月見", None), ("丼", "サーモン", "ピリ辛"),
    ("うどん", "唐揚げ", None), ("うどん", "豚キムチ", None), ("丼", "きつね", None), ("丼", "チャーシュー", None),
    ("塩ラーメン", None, "冷やし"), ("カレー", None, "大盛り"), ("味噌ラーメン", None, "激辛"),
    ("カレー", "カツ", "激辛"), ("丼", "えび天", "大盛り"), ("うどん", "えび天", "冷やし"),
    ("丼", "カツ", "大盛り"), ("チャーハン", "コーン", None), ("チャーハン", "唐揚げ", None),
    ("豚骨ラーメン", "ねぎ", None), ("味噌ラーメン", "チャーシュー", None), ("醤油ラーメン", "わかめ", None),
    ("定食", "えび天", None), ("そば", "きつね", "冷やし"), ("そば", "月見", "冷やし"), ("定食", "唐揚げ", "大盛り"),
    ("丼", "唐揚げ", "ピリ辛"), ("丼", "豚キムチ", "激辛"), ("そば", "牛", None), ("味噌ラーメン", "コーン", "ピリ辛"),
    ("カレー", "牛", None), ("そば", "サーモン", None),
)


def train_names() -> list[str]:
    return [compose_name(*c) for c in TRAIN_COMBOS]


def invented_names() -> list[str]:
    return [compose_name(*c) for c in INVENTED_COMBOS]


def image_rng(seed: int, name: str, index: int) -> np.random.Generator:
    """The generator for image ``index`` of ``name``: depends on nothing else."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8")), int(index)])


# Per-picture byte budget at 256 px (12 KiB: three 4 KiB disk blocks), so that the committed set
# stays small; scaled with the picture area.
BUDGET_BYTES_256 = 12 * 1024
MAX_QUALITY_DROP = 6


def encode_jpeg(img, quality: int, budget: int) -> bytes:
    """JPEG bytes at ``quality``, or at a slightly lower quality (at most ``MAX_QUALITY_DROP``
    less) for the few busy pictures that would exceed ``budget`` bytes."""
    data = b""
    for q in range(quality, max(quality - MAX_QUALITY_DROP, 1) - 1, -1):
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q, optimize=True)
        data = buf.getvalue()
        if len(data) <= budget:
            break
    return data


def _cell(value: str | None) -> str:
    return value if value else NONE


def _tsv(rows: Iterable[Sequence[str]]) -> str:
    return "".join("\t".join(r) + "\n" for r in rows)


_OWN_FILES = {"images", "names.tsv", "attributes.tsv", "invented.tsv", "README.md"}
_SIGNATURE = {"names.tsv", "attributes.tsv", "invented.tsv"}


def _check_out(out: Path) -> list[Path]:
    """Refuse an ``out`` that is a file or a foreign non-empty folder; return the files that a
    previous menu folder holds besides the set itself (caches of other commands), to keep."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a folder")
    if not out.is_dir():
        return []
    entries = {p.name for p in out.iterdir()}
    if not entries:
        return []
    if not _SIGNATURE <= entries:
        raise DataError(f"--out {out} is not empty and does not hold a menu set made by make-menu; "
                        "choose a new or empty folder (nothing was written)")
    return [out / name for name in sorted(entries - _OWN_FILES)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_menu(out: str | os.PathLike = "data/menu", seed: int = 0, per_name: int = 24, size: int = 256,
              quality: int = 90, names: Sequence[str] | None = None,
              progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Draw the menu set into ``out`` and return a summary (counts, bytes).

    ``names`` picks a subset of the training names (all of them by default). The folder is
    built beside ``out`` and swapped in at the end, so an interrupted run leaves the old set
    intact. An existing ``out`` is only replaced if it holds a previous menu set.
    """
    if per_name < 1:
        raise DataError(f"--per-name must be at least 1, got {per_name}")
    if size < 16:
        raise DataError(f"--size must be at least 16, got {size}")
    out = Path(out)
    keep = _check_out(out)
    all_train = train_names()
    if names is None:
        combos = list(TRAIN_COMBOS)
    else:
        unknown = [n for n in names if n not in all_train]
        if unknown:
            raise DataError(f"not training names of the menu: {', '.join(unknown)}")
        combos = [c for c, n in zip(TRAIN_COMBOS, all_train) if n in set(names)]
    jobs = [(c, compose_name(*c), i) for c in combos for i in range(per_name)]
    budget = int(BUDGET_BYTES_256 * (size / 256) ** 2)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private
    try:
        (tmp / "images").mkdir()
        name_rows, attr_rows = [("file", "name")], [("file", "name", "base", "topping", "modifier")]
        total = 0
        it = progress(jobs) if progress else jobs
        for (base, topping, modifier), name, i in it:
            img = render_dish(base, topping, modifier, image_rng(seed, name, i), size)
            data = encode_jpeg(img, quality, budget)
            rel = f"images/{slug(base, topping, modifier)}_{i:02d}.jpg"
            (tmp / rel).write_bytes(data)
            total += len(data)
            name_rows.append((rel, name))
            attr_rows.append((rel, name, base, _cell(topping), _cell(modifier)))
        inv_rows = [("name", "base", "topping", "modifier")]
        inv_rows += [(compose_name(*c), c[0], _cell(c[1]), _cell(c[2])) for c in INVENTED_COMBOS]
        (tmp / "names.tsv").write_text(_tsv(name_rows), encoding="utf-8")
        (tmp / "attributes.tsv").write_text(_tsv(attr_rows), encoding="utf-8")
        (tmp / "invented.tsv").write_text(_tsv(inv_rows), encoding="utf-8")
        shown = out.as_posix() if not out.is_absolute() else out.name  # no paths of this machine
        cmd = f"stackgan make-menu --out {shown} --seed {seed} --per-name {per_name} --size {size}"
        if quality != 90:
            cmd += f" --quality {quality}"
        (tmp / "README.md").write_text(_readme(cmd, seed, combos, per_name, size, quality), encoding="utf-8")
        _swap_in(tmp, out, keep)
    except DataError:
        raise  # a half-done swap: keep the copies it names
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "names": len(combos), "images": len(jobs), "invented": len(INVENTED_COMBOS),
            "image_bytes": total}


def _swap_in(tmp: Path, out: Path, keep: list[Path]) -> None:
    """Replace ``out`` by ``tmp``, moving ``keep`` (files of other commands) along; on any
    failure everything goes back where it was."""
    moved: list[Path] = []
    old = None
    try:
        for path in keep:
            os.replace(path, tmp / path.name)
            moved.append(path)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
            os.replace(out, old / "menu")
        os.replace(tmp, out)
    except BaseException:
        try:
            if old is not None and not out.exists():
                os.replace(old / "menu", out)
            for path in moved:
                if (tmp / path.name).exists() and not path.exists():
                    os.replace(tmp / path.name, path)
        except OSError as exc:  # leave every copy where it is and say where
            raise DataError(f"could not finish replacing {out} ({exc}); the previous set is in "
                            f"{old}, the new one in {tmp}") from exc
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_menu(root: str | os.PathLike) -> list[str]:
    """Consistency problems of a menu folder (empty list when all is well)."""
    root = Path(root)
    problems = []
    try:
        names = _read_tsv(root / "names.tsv")
        attrs = _read_tsv(root / "attributes.tsv")
        invented = _read_tsv(root / "invented.tsv")
    except (FileNotFoundError, ValueError) as exc:
        return [str(exc)]
    if [r[:2] for r in names] != [r[:2] for r in attrs]:
        problems.append("names.tsv and attributes.tsv list different files or names")
    for file, name, base, topping, modifier in attrs:
        if not (root / file).is_file():
            problems.append(f"{file}: missing")
        if compose_name(base, topping, modifier) != name:
            problems.append(f"{file}: parts {base}/{topping}/{modifier} do not make {name}")
    trained = {r[1] for r in names}
    for name, base, topping, modifier in invented:
        if name in trained:
            problems.append(f"invented name {name} is in the training set")
        if compose_name(base, topping, modifier) != name:
            problems.append(f"invented {name}: parts do not make it")
    return problems


def _read_tsv(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path} is empty")
    return [line.split("\t") for line in lines[1:] if line]


def _readme(cmd: str, seed: int, combos: Sequence[Combo], per_name: int, size: int, quality: int) -> str:
    def table(parts):
        rows = ["| part | id | looks like |", "|---|---|---|"]
        rows += [f"| {p.text} | `{p.slug}` | {p.looks} |" for p in parts]
        return "\n".join(rows)

    n_names = len(combos)
    train = ", ".join(compose_name(*c) for c in combos)
    inv = ", ".join(invented_names())
    return f"""# The cafeteria menu: the embedded training set

Procedurally drawn photos of Japanese cafeteria dishes, made by this project's own code
(`stackgan/menu/`), so the project ships a small text-to-image training set with no photos
of anybody else's. {n_names} dish names x {per_name} images, {size}x{size} JPEG (quality {quality};
a busy picture that would exceed {BUDGET_BYTES_256 // 1024} KiB at 256 px is saved at up to {MAX_QUALITY_DROP} lower).

Made with

    {cmd}

(seed {seed}). The same command gives the same files: each picture is drawn with a numpy
generator seeded from the seed, the name and the picture's number.

## Files

- `images/*.jpg`: the pictures, `<modifier>-<topping>-<base>_<NN>.jpg` (ASCII ids below).
- `names.tsv`: `file<TAB>name` (the project's dataset format; `file` relative to this folder).
- `attributes.tsv`: `file<TAB>name<TAB>base<TAB>topping<TAB>modifier`, the parts shown in each
  picture; a missing topping or modifier is written `{NONE}`.
- `invented.tsv`: `name<TAB>base<TAB>topping<TAB>modifier`: {len(INVENTED_COMBOS)} combinations never used for
  training, made only of parts that are (for evaluating invented names).

## How names are made

`modifier + topping + base`, written together as on a Japanese menu: ピリ辛 + サーモン + 丼 =
ピリ辛サーモン丼, 冷やし + きつね + うどん = 冷やしきつねうどん, カツ + カレー = カツカレー. The ramen
broth belongs to the base (醤油ラーメン, 味噌ラーメン, 塩ラーメン, 豚骨ラーメン). In Python:
`stackgan.menu.compose_name(base, topping, modifier)` and `parse_name(name)`.

## Vocabulary

Bases:

{table(BASE_PARTS)}

Toppings:

{table(TOPPING_PARTS)}

Modifiers:

{table(MODIFIER_PARTS)}

Each scene: a bowl or plate seen from about 45 degrees on a plastic tray or a wooden or laminate
table, with shading, a rim, a soft shadow, camera jitter (position, scale, rotation), a light
gradient and colour cast, sensor noise and a slight blur.

## Training names ({n_names})

{train}

## Invented names ({len(INVENTED_COMBOS)})

{inv}

## Licence

Generated by project code; the pictures are covered by the project's licence.
"""


def _self_check() -> None:
    """Invariants of the name lists (also run by the tests)."""
    train, inv = train_names(), invented_names()
    assert len(set(train)) == len(train), "duplicate training names"
    assert len(set(inv)) == len(inv), "duplicate invented names"
    assert not set(train) & set(inv), "an invented name is a training name"
    for n in train + inv:
        assert compose_name(*parse_name(n)) == n
