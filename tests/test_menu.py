"""The procedural cafeteria menu: vocabulary, names, drawing, the set writer and the committed set."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stackgan.cli import main
from stackgan.errors import DataError
from stackgan.menu import (BASES, INVENTED_COMBOS, MODIFIERS, NONE, TOPPINGS, TRAIN_COMBOS, check_menu,
                           compose_name, invented_names, make_menu, parse_name, render_dish, train_names)
from stackgan.menu.make import _umask, image_rng

REPO = Path(__file__).resolve().parents[1]
MENU = REPO / "data" / "menu"
SMALL = ["カツ丼", "月見うどん", "味噌ラーメン"]


# -- names --------------------------------------------------------------------------------------

def test_every_composable_name_parses_back_into_its_parts():
    seen = {}
    for base, topping, modifier in itertools.product(BASES, (None, *TOPPINGS), (None, *MODIFIERS)):
        name = compose_name(base, topping, modifier)
        assert parse_name(name) == (base, topping, modifier)
        assert name not in seen, f"{name} is ambiguous: {seen.get(name)} and {(base, topping, modifier)}"
        seen[name] = (base, topping, modifier)


def test_names_are_natural_concatenations():
    assert compose_name("丼", "サーモン", "ピリ辛") == "ピリ辛サーモン丼"
    assert compose_name("うどん", "きつね", "冷やし") == "冷やしきつねうどん"
    assert compose_name("カレー", "カツ") == "カツカレー"
    assert compose_name("味噌ラーメン") == "味噌ラーメン"
    assert compose_name("丼", NONE, NONE) == compose_name("丼", "", None) == "丼"


def test_parse_accepts_other_spellings_and_width_forms():
    assert parse_name("とんかつ定食") == ("定食", "カツ", None)
    assert parse_name("天丼") == ("丼", "えび天", None)
    assert parse_name("ネギみそラーメン") == ("味噌ラーメン", "ねぎ", None)
    assert parse_name(" ﾋﾟﾘ辛ｻｰﾓﾝ丼 ") == ("丼", "サーモン", "ピリ辛")  # half-width katakana, spaces
    assert parse_name("大盛牛丼") == ("丼", "牛", "大盛り")


@pytest.mark.parametrize("bad", ["", "   ", "ハンバーグ", "ラーメン", "サーモン", "丼サーモン", "カツカツ丼",
                                 "ピリ辛ピリ辛丼", "サーモンピリ辛丼"])
def test_parse_rejects_names_outside_the_vocabulary(bad):
    with pytest.raises(ValueError):
        parse_name(bad)


def test_compose_rejects_unknown_parts():
    with pytest.raises(ValueError, match="base"):
        compose_name("パスタ")
    with pytest.raises(ValueError, match="topping"):
        compose_name("丼", "ハンバーグ")
    with pytest.raises(ValueError, match="modifier"):
        compose_name("丼", "カツ", "甘口")
    with pytest.raises(ValueError, match="needs a base"):
        compose_name(None)


# -- the composition of the set ----------------------------------------------------------------

def test_training_and_invented_names_are_compositional():
    train, invented = train_names(), invented_names()
    assert len(train) >= 40 and len(set(train)) == len(train)
    assert len(invented) >= 20 and len(set(invented)) == len(invented)
    assert not set(train) & set(invented), "an invented name is trained on"
    counts = Counter(p for combo in TRAIN_COMBOS for p in combo if p)
    for part in (*BASES, *TOPPINGS, *MODIFIERS):
        assert counts[part] >= 3, f"{part} occurs in only {counts[part]} training names"
    for combo in INVENTED_COMBOS:
        for part in combo:
            assert part is None or counts[part] > 0, f"invented {compose_name(*combo)} uses unseen {part}"


# -- drawing -------------------------------------------------------------------------------------

def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_render_is_deterministic_for_a_generator_state():
    a = render_dish("丼", "サーモン", "ピリ辛", np.random.default_rng(5), 48)
    b = render_dish("丼", "サーモン", "ピリ辛", np.random.default_rng(5), 48)
    c = render_dish("丼", "サーモン", "ピリ辛", np.random.default_rng(6), 48)
    assert a.size == (48, 48) and a.mode == "RGB"
    assert np.array_equal(_arr(a), _arr(b))
    assert np.abs(_arr(a) - _arr(c)).mean() > 5


def test_render_draws_every_part_at_small_sizes():
    rng = np.random.default_rng(0)
    for i, base in enumerate(BASES):
        topping = TOPPINGS[i % len(TOPPINGS)]
        modifier = MODIFIERS[i % len(MODIFIERS)]
        for size in (16, 32):
            img = render_dish(base, topping, modifier, rng, size)
            assert img.size == (size, size)
    for topping in TOPPINGS:
        assert render_dish("丼", topping, None, rng, 32).size == (32, 32)


def test_render_rejects_unknown_parts():
    with pytest.raises(ValueError, match="base"):
        render_dish("パスタ", None, None, 0, 32)
    with pytest.raises(ValueError, match="topping"):
        render_dish("丼", "ハンバーグ", None, 0, 32)
    with pytest.raises(ValueError, match="size"):
        render_dish("丼", None, None, 0, 8)


def test_pictures_look_like_photos_not_flat_clip_art():
    img = render_dish("うどん", "きつね", None, np.random.default_rng(1), 64)
    a = _arr(img)
    # shading, noise and blur give many distinct colours and no large perfectly flat areas
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 1500
    flat = (np.abs(np.diff(a, axis=1)).sum(-1) == 0).mean()
    assert flat < 0.15


def _features(img: Image.Image) -> np.ndarray:
    """Colour histogram (4 levels a channel) of the middle of a 32-px thumbnail, where the food is."""
    a = np.asarray(img.resize((32, 32), Image.BILINEAR), np.float32)[8:24, 8:24] / 255.0
    q = np.minimum((a * 4).astype(int), 3)
    idx = q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]
    return np.bincount(idx.ravel(), minlength=64) / idx.size


@pytest.mark.parametrize("kind,combo,threshold", [
    ("base", lambda p: (p, None, None), 0.7),
    ("topping", lambda p: ("丼", p, None), 0.7),
    ("modifier", lambda p: ("うどん", "きつね", p), 0.75),
])
def test_parts_are_visually_distinct_at_low_resolution(kind, combo, threshold):
    """Even a nearest-centroid classifier on colour histograms of 32-px thumbnails tells most
    parts apart on held-out draws (chance: 1 in 4 to 1 in 13)."""
    parts = {"base": BASES, "topping": TOPPINGS, "modifier": MODIFIERS}[kind]
    n_train, n_test = 5, 3
    centroids, tests = [], []
    for j, part in enumerate(parts):
        feats = [_features(render_dish(*combo(part), np.random.default_rng(1000 * j + i), 64))
                 for i in range(n_train + n_test)]
        centroids.append(np.mean(feats[:n_train], axis=0))
        tests += [(f, j) for f in feats[n_train:]]
    cen = np.stack(centroids)
    correct = sum(int(np.argmin(((cen - f) ** 2).sum(1)) == j) for f, j in tests)
    assert correct / len(tests) >= threshold, f"{kind}: only {correct}/{len(tests)} held-out draws recognised"


# -- writing a set -------------------------------------------------------------------------------

def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_make_menu_same_seed_gives_identical_files(tmp_path):
    a = make_menu(tmp_path / "a", seed=3, per_name=2, size=32, names=SMALL)
    make_menu(tmp_path / "b", seed=3, per_name=2, size=32, names=SMALL)
    make_menu(tmp_path / "c", seed=4, per_name=2, size=32, names=SMALL)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a["images"] == 6 and len([f for f in fa if f.startswith("images/")]) == 6
    readme_a, readme_b = fa.pop("README.md").decode(), fb.pop("README.md").decode()
    assert readme_a.replace("--out a ", "--out b ") == readme_b  # the out folder (name only) differs
    assert fa == fb
    imgs = [f for f in fa if f.endswith(".jpg")]
    assert all(fa[f] != fc[f] for f in imgs), "a different seed must give different pictures"
    assert fa["invented.tsv"] == fc["invented.tsv"]


def test_make_menu_tables_are_consistent(tmp_path):
    out = tmp_path / "menu"
    make_menu(out, seed=0, per_name=2, size=32, names=SMALL)
    assert check_menu(out) == []
    lines = (out / "names.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "file\tname"
    rows = [line.split("\t") for line in lines[1:]]
    assert Counter(name for _, name in rows) == {n: 2 for n in SMALL}
    attrs = [line.split("\t") for line in (out / "attributes.tsv").read_text(encoding="utf-8").splitlines()]
    assert attrs[0] == ["file", "name", "base", "topping", "modifier"]
    for file, name, base, topping, modifier in attrs[1:]:
        assert parse_name(name) == (base, None if topping == NONE else topping, None if modifier == NONE else modifier)
        with Image.open(out / file) as im:
            assert im.size == (32, 32) and im.format == "JPEG"
    inv = [line.split("\t") for line in (out / "invented.tsv").read_text(encoding="utf-8").splitlines()]
    assert inv[0] == ["name", "base", "topping", "modifier"] and len(inv) - 1 == len(INVENTED_COMBOS)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "--seed 0" in readme and "ピリ辛" in readme


def test_check_menu_reports_broken_tables(tmp_path):
    out = tmp_path / "menu"
    make_menu(out, seed=0, per_name=1, size=32, names=SMALL[:2])
    attrs = out / "attributes.tsv"
    attrs.write_text(attrs.read_text(encoding="utf-8").replace("\tカツ\t", "\t牛\t"), encoding="utf-8")
    (out / sorted((out / "images").iterdir())[0].relative_to(out)).unlink()
    problems = check_menu(out)
    assert any("do not make" in p for p in problems) and any("missing" in p for p in problems)


def test_make_menu_never_overwrites_a_foreign_folder(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "mine.jpg").write_bytes(b"precious")
    with pytest.raises(DataError, match="not empty"):
        make_menu(out, seed=0, per_name=1, size=32, names=SMALL[:1])
    assert (out / "mine.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"], "no temporary folder left behind"
    with pytest.raises(DataError, match="not training names"):
        make_menu(tmp_path / "x", seed=0, per_name=1, size=32, names=["ハンバーグ"])


def test_make_menu_replaces_a_previous_menu_and_keeps_other_files(tmp_path):
    out = tmp_path / "menu"
    make_menu(out, seed=0, per_name=2, size=32, names=SMALL)
    (out / "embeddings-cache.bin").write_bytes(b"someone else's cache")
    make_menu(out, seed=1, per_name=1, size=32, names=SMALL[:1])
    files = _files(out)
    assert len([f for f in files if f.endswith(".jpg")]) == 1, "stale pictures of the old set remain"
    assert files["embeddings-cache.bin"] == b"someone else's cache"
    assert check_menu(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["menu"]
    assert (out.stat().st_mode & 0o777) == (0o777 & ~_umask()), "the folder must not stay private"


def test_a_failed_swap_puts_everything_back(tmp_path, monkeypatch):
    out = tmp_path / "menu"
    make_menu(out, seed=0, per_name=1, size=32, names=SMALL[:1])
    (out / "cache.bin").write_bytes(b"c")
    before = _files(out)
    real_replace = os.replace

    calls = []

    def failing_replace(src, dst):  # the new set cannot be moved in, once
        if Path(dst) == out and not calls:
            calls.append(src)
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        make_menu(out, seed=5, per_name=1, size=32, names=SMALL[:1])
    monkeypatch.undo()
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["menu"]


def test_cli_make_menu(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["make-menu", "--out", str(out), "--seed", "2", "--per-name", "1", "--size", "16"]) == 0
    assert "wrote 50 images of 50 names" in capsys.readouterr().out
    assert check_menu(out) == []
    assert main(["make-menu", "--out", str(out), "--per-name", "0"]) == 2
    assert "--per-name must be >= 1" in capsys.readouterr().err
    (tmp_path / "f").write_text("x")
    assert main(["make-menu", "--out", str(tmp_path / "f"), "--size", "16"]) == 2
    assert "not a folder" in capsys.readouterr().err


# -- the committed set -----------------------------------------------------------------------------

@pytest.mark.skipif(not (MENU / "names.tsv").is_file(), reason="data/menu not present")
def test_committed_menu_is_complete_and_small():
    assert check_menu(MENU) == []
    rows = [line.split("\t") for line in (MENU / "names.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    per_name = Counter(name for _, name in rows)
    assert set(per_name) == set(train_names())
    assert min(per_name.values()) >= 20
    images = list((MENU / "images").glob("*.jpg"))
    assert len(images) == len(rows)
    total = sum(p.stat().st_size for p in MENU.rglob("*") if p.is_file())
    assert total < 15e6
    with Image.open(images[0]) as im:
        assert im.size == (256, 256)


@pytest.mark.skipif(not (MENU / "names.tsv").is_file(), reason="data/menu not present")
def test_committed_menu_is_reproducible_from_its_seed():
    """The README's command redraws the committed pictures (compared decoded, with a small
    tolerance, since another JPEG library build may round differently)."""
    readme = (MENU / "README.md").read_text(encoding="utf-8")
    assert "--seed 0" in readme
    rows = [line.split("\t") for line in (MENU / "attributes.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    one_per_base = {row[2]: row for row in rows}  # the last picture of every base
    assert set(one_per_base) == set(BASES)
    for file, name, base, topping, modifier in one_per_base.values():
        topping, modifier = (None if v == NONE else v for v in (topping, modifier))
        index = int(Path(file).stem.rsplit("_", 1)[1])
        redrawn = render_dish(base, topping, modifier, image_rng(0, name, index), 256)
        with Image.open(MENU / file) as im:
            committed = _arr(im.convert("RGB"))
        assert np.abs(committed - _arr(redrawn)).mean() < 3.0, f"{file} does not match the code any more"
