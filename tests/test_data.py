"""Data set scanning, loading, caching and `stackgan data check`, on small photos made in tmp_path."""

from __future__ import annotations

import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stackgan.cli import main as cli_main
from stackgan.data import (MISSING, NOT_AN_IMAGE, NOT_LISTED, TOO_LARGE, TOO_SMALL, TRUNCATED, UNREADABLE, DataWarning,
                           ImageDataset, load_dataset, normalize_name, scan_dataset, shared_dataset)
from stackgan.errors import ConfigError, DataError

REALFOOD = Path(__file__).resolve().parents[1] / ".." / "shared" / "realfood"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("STACKGAN_CACHE", str(tmp_path / "cache"))


def photo(path: Path, size=(24, 20), color=(200, 60, 40), mode="RGB", fmt=None, seed=0, **save_kw) -> Path:
    """A small textured picture (a colour plus noise) saved at ``path``."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.array(color if isinstance(color, tuple) else (color,), dtype=np.float64)
    arr = np.clip(base[None, None, :] + rng.normal(0, 12, (h, w, base.size)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr[..., 0] if base.size == 1 else arr)
    if im.mode != mode:
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt, **save_kw)
    return path


def jpeg_bytes(size=(24, 20), seed=0) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def bomb_png(path: Path, width=20000, height=20000) -> Path:
    """A 60-byte PNG whose header claims ``width x height`` RGB pixels (a decompression bomb; its
    pixels are never stored, so nothing of that size is allocated here)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def names_tsv(root: Path, rows, header="file\tname") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "names.tsv").write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def broken_set(root: Path) -> dict[str, str]:
    """A folder with 3 good photos and one file of every kind of problem; returns file -> reason."""
    photo(root / "good1.jpg", seed=1)
    photo(root / "good2.png", seed=2)
    photo(root / "sub" / "good3.webp", seed=3)
    (root / "trunc.jpg").write_bytes(jpeg_bytes((64, 48))[:1500])  # header intact, pixels cut
    (root / "text.jpg").write_text("this is not a picture\n", encoding="utf-8")
    photo(root / "tiny.png", size=(8, 8))
    photo(root / "unlisted.jpg", seed=4)
    (root / "folder.jpg").mkdir()
    names_tsv(root, [("good1.jpg", "カツ丼", "extra column"), ("good2.png", "カツ丼"),
                     ("sub/good3.webp", "きつねうどん"), ("trunc.jpg", "カツ丼"), ("text.jpg", "カツ丼"),
                     ("tiny.png", "カツ丼"), ("gone.jpg", "カツ丼"), ("folder.jpg", "カツ丼")],
              header="file\tname\tnote")
    return {"trunc.jpg": TRUNCATED, "text.jpg": NOT_AN_IMAGE, "tiny.png": TOO_SMALL, "unlisted.jpg": NOT_LISTED,
            "gone.jpg": MISSING, "folder.jpg": UNREADABLE}


# -- names ------------------------------------------------------------------------------------

def test_normalize_name_nfkc_and_trim():
    assert normalize_name("ﾋﾟﾘ辛ｻｰﾓﾝ丼") == "ピリ辛サーモン丼"
    assert normalize_name("\u3000ＡＢＣ定食 \t") == "ABC定食"
    for bad in ("", "   ", "\u3000", "\t\n"):
        with pytest.raises(DataError, match="empty"):
            normalize_name(bad)


def test_half_and_full_width_names_merge(tmp_path):
    root = tmp_path / "ds"
    photo(root / "a.jpg", seed=1)
    photo(root / "b.jpg", seed=2)
    photo(root / "c.jpg", seed=3)
    names_tsv(root, [("a.jpg", "ﾋﾟﾘ辛ｻｰﾓﾝ丼"), ("b.jpg", " ピリ辛サーモン丼 "), ("c.jpg", "月見そば")])
    idx = scan_dataset(root)
    assert idx.counts() == {"ピリ辛サーモン丼": 2, "月見そば": 1}
    ds = load_dataset(root, image_size=16, progress=False)
    assert ds.names == sorted(["ピリ辛サーモン丼", "月見そば"])
    assert ds.counts() == {"ピリ辛サーモン丼": 2, "月見そば": 1}
    assert ds.labels.tolist() == [ds.names.index("ピリ辛サーモン丼")] * 2 + [ds.names.index("月見そば")]


def test_names_tsv_with_bom_crlf_comments_and_extra_columns(tmp_path):
    root = tmp_path / "ds"
    photo(root / "a.jpg", seed=1)
    photo(root / "b.jpg", seed=2)
    text = "\ufeffFile\tName\tname_en\r\n# a comment\r\na.jpg\t月見うどん\tmoon udon\r\n\r\nb.jpg \t 月見うどん\r\n"
    (root / "names.tsv").write_bytes(text.encode("utf-8"))
    idx = scan_dataset(root)
    assert idx.entries == [("a.jpg", "月見うどん"), ("b.jpg", "月見うどん")] and idx.problems == []
    (root / "names.tsv").write_text("file\tname\nb.jpg\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2"):
        scan_dataset(root)
    (root / "names.tsv").write_bytes("file\tname\na.jpg\tカツ丼\n".encode("cp932"))
    with pytest.raises(DataError, match="not UTF-8"):
        scan_dataset(root)


def test_names_tsv_with_conflicting_rows_is_an_error(tmp_path):
    root = tmp_path / "ds"
    photo(root / "a.jpg")
    names_tsv(root, [("a.jpg", "カツ丼"), ("a.jpg", "親子丼")])
    with pytest.raises(DataError, match="listed twice"):
        scan_dataset(root)


# -- scanning -----------------------------------------------------------------------------------

def test_scan_reports_every_kind_of_problem(tmp_path):
    root = tmp_path / "ds"
    expected = broken_set(root)
    idx = scan_dataset(root, min_size=16)
    assert dict(idx.problems) == expected
    assert sorted(idx.entries) == [("good1.jpg", "カツ丼"), ("good2.png", "カツ丼"), ("sub/good3.webp", "きつねうどん")]
    assert idx.sizes["good1.jpg"] == (24, 20) and idx.sizes["tiny.png"] == (8, 8)
    assert "8x8" in idx.details["tiny.png"]


def test_scan_without_decoding_misses_only_truncation(tmp_path):
    root = tmp_path / "ds"
    expected = broken_set(root)
    idx = scan_dataset(root, min_size=16, decode=False)
    del expected["trunc.jpg"]  # only a full decode sees the missing bytes
    assert dict(idx.problems) == expected


def test_listed_paths_may_be_relative_to_an_images_subfolder(tmp_path):
    root = tmp_path / "ds"  # the layout of the shared realfood set: names.tsv lists 0001.jpg, file in images/
    photo(root / "images" / "0001.jpg", seed=1)
    photo(root / "images" / "0002.jpg", seed=2)
    names_tsv(root, [("0001.jpg", "醤油ラーメン"), ("images/0002.jpg", "塩ラーメン")])
    idx = scan_dataset(root)
    assert idx.problems == []
    assert idx.entries == [("images/0001.jpg", "醤油ラーメン"), ("images/0002.jpg", "塩ラーメン")]


def test_paths_outside_the_folder_are_not_followed(tmp_path):
    root = tmp_path / "ds"
    photo(tmp_path / "outside.jpg")
    photo(root / "a.jpg")
    names_tsv(root, [("a.jpg", "カツ丼"), ("../outside.jpg", "カツ丼")])
    idx = scan_dataset(root)
    assert idx.problems == [("../outside.jpg", MISSING)]
    assert "leaves" in idx.details["../outside.jpg"]


def test_per_name_folders_layout(tmp_path):
    root = tmp_path / "ds"
    photo(root / "親子丼" / "1.jpg", seed=1)
    photo(root / "親子丼" / "2.JPG", seed=2)
    photo(root / "ｶﾂ丼" / "a.png", seed=3)
    photo(root / "カツ丼" / "b.webp", seed=4)
    photo(root / "loose.jpg", seed=5)
    (root / "カツ丼" / "notes.txt").write_text("ignored", encoding="utf-8")
    idx = scan_dataset(root)
    assert idx.layout == "folders"
    assert idx.counts() == {"カツ丼": 2, "親子丼": 2}
    assert idx.problems == [("loose.jpg", NOT_LISTED)]
    with pytest.warns(DataWarning, match="loose.jpg"):
        ds = load_dataset(root, image_size=16, progress=False)
    assert len(ds) == 4 and ds.names == ["カツ丼", "親子丼"]
    assert sorted(ds.files) == sorted(["ｶﾂ丼/a.png", "カツ丼/b.webp", "親子丼/1.jpg", "親子丼/2.JPG"])


# -- loading ----------------------------------------------------------------------------------------

def test_load_skips_each_bad_file_with_a_warning_naming_it(tmp_path):
    root = tmp_path / "ds"
    expected = broken_set(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root, image_size=16, min_size=16, progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    for file, reason in expected.items():
        assert any(file in m and reason in m for m in messages), (file, messages)
    assert dict(ds.skipped) == expected
    assert sorted(ds.files) == ["good1.jpg", "good2.png", "sub/good3.webp"]
    assert ds.images.shape == (3, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.names == sorted(["カツ丼", "きつねうどん"])


def test_a_decompression_bomb_costs_one_warning_not_the_run(tmp_path, capsys):
    root = tmp_path / "ds"
    photo(root / "good1.jpg", seed=1)
    photo(root / "good2.png", seed=2)
    bomb_png(root / "bomb.png")  # 400 megapixels claimed: PIL itself would raise DecompressionBombError
    names_tsv(root, [("good1.jpg", "カツ丼"), ("good2.png", "カツ丼"), ("bomb.png", "カツ丼")])
    detail = "20000 x 20000 pixels, limit 100,000,000"
    for decode in (True, False):
        idx = scan_dataset(root, decode=decode)
        assert idx.problems == [("bomb.png", TOO_LARGE)] and idx.details["bomb.png"] == detail
        assert sorted(rel for rel, _ in idx.entries) == ["good1.jpg", "good2.png"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(root, image_size=16, progress=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert messages == [f"skipping bomb.png: too large ({detail})"]
    assert sorted(ds.files) == ["good1.jpg", "good2.png"] and dict(ds.skipped) == {"bomb.png": TOO_LARGE}
    assert cli_main(["data", "check", str(root)]) == 0
    assert f"bomb.png: too large ({detail})" in capsys.readouterr().out


def test_the_pixel_limit_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored afterwards
    root = tmp_path / "ds"
    photo(root / "a.jpg", size=(24, 20), seed=1)
    photo(root / "b.png", size=(16, 16), seed=2)
    names_tsv(root, [("a.jpg", "x"), ("b.png", "x")])
    first = load_dataset(root, image_size=16, progress=False)
    assert len(first) == 2
    monkeypatch.setenv("STACKGAN_MAX_IMAGE_PIXELS", "400")  # 24 x 20 = 480 is too many, 16 x 16 = 256 is not
    idx = scan_dataset(root)
    assert idx.problems == [("a.jpg", TOO_LARGE)] and idx.details["a.jpg"] == "24 x 20 pixels, limit 400"
    monkeypatch.setenv("STACKGAN_MAX_IMAGE_PIXELS", "100")
    idx = scan_dataset(root)
    assert dict(idx.problems) == {"a.jpg": TOO_LARGE, "b.png": TOO_LARGE}
    assert idx.details["b.png"] == "16 x 16 pixels, limit 100"
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="too large"):
        warnings.simplefilter("always")
        load_dataset(root, image_size=16, progress=False, cache_dir=tmp_path / "c2")
    assert sorted(str(w.message) for w in caught) == ["skipping a.jpg: too large (24 x 20 pixels, limit 100)",
                                                       "skipping b.png: too large (16 x 16 pixels, limit 100)"]
    monkeypatch.setenv("STACKGAN_MAX_IMAGE_PIXELS", "400")
    with pytest.warns(DataWarning, match="a.jpg: too large"):
        cached = load_dataset(root, image_size=16, progress=False, cache_dir=tmp_path / "c2")
    assert cached.files == ["b.png"] and not cached.from_cache  # refusals under another limit are retried
    monkeypatch.setenv("STACKGAN_MAX_IMAGE_PIXELS", "1_000")
    assert sorted(load_dataset(root, image_size=16, progress=False, cache_dir=tmp_path / "c2").files) == ["a.jpg", "b.png"]
    monkeypatch.setenv("STACKGAN_MAX_IMAGE_PIXELS", str(800_000_000))  # above PIL's: its backstop follows
    assert scan_dataset(root).problems == [] and Image.MAX_IMAGE_PIXELS == 800_000_000
    for bad in ("lots", "0", "-5", "1.5"):
        monkeypatch.setenv("STACKGAN_MAX_IMAGE_PIXELS", bad)
        with pytest.raises(ConfigError, match="STACKGAN_MAX_IMAGE_PIXELS.*whole number of pixels"):
            scan_dataset(root)


def test_colour_modes_become_rgb_gray_or_rgba(tmp_path):
    root = tmp_path / "ds"
    photo(root / "gray.png", color=(90,), mode="L")
    photo(root / "cmyk.jpg", color=(220, 30, 30), mode="CMYK", quality=95)
    photo(root / "pal.png", color=(30, 200, 40), mode="P")
    photo(root / "la.png", color=(90, 90, 90), mode="LA")
    photo(root / "rgb.jpg", color=(30, 30, 220), quality=95)
    rgba = np.zeros((20, 24, 4), dtype=np.uint8)
    rgba[:, :12] = (10, 10, 10, 255)  # left half opaque near-black, right half fully transparent black
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    g16 = (np.full((20, 24), 40000, dtype=np.uint16))
    Image.fromarray(g16).save(root / "gray16.png")
    files = ["gray.png", "cmyk.jpg", "pal.png", "la.png", "rgb.jpg", "rgba.png", "gray16.png"]
    names_tsv(root, [(f, "テスト") for f in files])

    ds = load_dataset(root, image_size=16, progress=False)
    assert ds.files == files and ds.images.shape == (7, 3, 16, 16)
    px = {f: ds.images[i].float().mean(dim=(1, 2)) for i, f in enumerate(ds.files)}
    assert torch.allclose(px["gray.png"], torch.full((3,), 90.0), atol=6)
    r, g, b = px["cmyk.jpg"]
    assert r > 150 and g < 90 and b < 90, px["cmyk.jpg"]
    r, g, b = px["pal.png"]
    assert g > 150 and r < 90 and b < 90, px["pal.png"]
    r, g, b = px["rgb.jpg"]
    assert b > 150 and r < 90, px["rgb.jpg"]
    assert abs(px["gray16.png"][0] - 40000 / 65535 * 255) < 2
    i = ds.files.index("rgba.png")  # transparent part composited over white
    assert ds.images[i, :, :, :6].float().mean() < 20 and ds.images[i, :, :, 10:].float().mean() > 235

    ds4 = load_dataset(root, image_size=16, channels=4, progress=False)
    assert ds4.images.shape == (7, 4, 16, 16)
    i = ds4.files.index("rgba.png")
    assert ds4.images[i, 3, :, :6].min() == 255 and ds4.images[i, 3, :, 10:].max() == 0
    assert (ds4.images[ds4.files.index("rgb.jpg"), 3] == 255).all()  # opaque alpha added

    ds1 = load_dataset(root, image_size=16, channels=1, progress=False)
    assert ds1.images.shape == (7, 1, 16, 16)
    x, label = ds1[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and isinstance(label, int)


def test_exif_orientation_is_applied(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = (230, 20, 20)  # left half red
    arr[:, 20:] = (20, 20, 230)  # right half blue
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the left half ends up on top
    im.save(root / "rot.jpg", quality=95, exif=exif)
    Image.fromarray(arr).save(root / "plain.jpg", quality=95)
    names_tsv(root, [("rot.jpg", "a"), ("plain.jpg", "b")])

    idx = scan_dataset(root)
    assert idx.sizes["rot.jpg"] == (20, 40) and idx.sizes["plain.jpg"] == (40, 20)
    ds = load_dataset(root, image_size=16, progress=False)
    rot, plain = ds.images[0].float(), ds.images[1].float()
    assert rot[0, :8].mean() > 150 and rot[2, :8].mean() < 100  # top: red
    assert rot[2, 8:].mean() > 150 and rot[0, 8:].mean() < 100  # bottom: blue
    assert plain[0, :, :8].mean() > 150 and plain[2, :, 8:].mean() > 150  # unrotated: left red, right blue


def test_crop_none_pads_and_non_square_sizes(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    Image.new("RGB", (40, 20), (200, 0, 0)).save(root / "wide.png")
    names_tsv(root, [("wide.png", "x")])
    ds = load_dataset(root, image_size=16, crop="none", progress=False)
    img = ds.images[0]
    assert (img[:, :3] == 255).all() and (img[:, -3:] == 255).all()  # white bars top and bottom
    assert (img[:, 6:10] == torch.tensor([200, 0, 0], dtype=torch.uint8)[:, None, None]).all()
    centre = load_dataset(root, image_size=16, progress=False)
    assert (centre.images[0] == torch.tensor([200, 0, 0], dtype=torch.uint8)[:, None, None]).all()
    ns = load_dataset(root, image_size=(8, 12), progress=False)
    assert ns.images.shape == (1, 3, 8, 12) and ns.image_size == (8, 12)
    with pytest.raises(ConfigError, match="crop"):
        load_dataset(root, crop="random", progress=False)
    with pytest.raises(ConfigError, match="channels"):
        load_dataset(root, channels=2, progress=False)


def test_second_load_hits_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    broken_set(root)
    with pytest.warns(DataWarning):
        first = load_dataset(root, image_size=16, progress=False)
    assert not first.from_cache and first.cache_path is not None and first.cache_path.is_file()
    assert first.cache_path.parent == tmp_path / "cache" / "images"

    import stackgan.data.load as load_mod

    def no_decoding(*a, **k):
        raise AssertionError("decoded a photo although the cache holds it")

    monkeypatch.setattr(load_mod, "decode_to_tensor", no_decoding)
    with warnings.catch_warnings(record=True) as caught:  # failures are cached too, and still reported
        warnings.simplefilter("always")
        second = load_dataset(root, image_size=16, progress=False)
    assert any("trunc.jpg: truncated" in str(w.message) for w in caught)
    assert second.from_cache and second.cache_path == first.cache_path
    assert torch.equal(first.images, second.images) and first.files == second.files
    assert dict(first.skipped) == dict(second.skipped)
    # min_size is applied after the cache: another minimum needs no decoding either
    with pytest.warns(DataWarning):
        lenient = load_dataset(root, image_size=16, min_size=8, progress=False)
    assert "tiny.png" in lenient.files and len(lenient) == 4
    with pytest.warns(DataWarning), pytest.raises(DataError, match="too small"):
        load_dataset(root, image_size=16, min_size=21, progress=False)  # the good ones are 24x20


def test_a_changed_photo_is_decoded_again_and_old_cache_removed(tmp_path):
    root = tmp_path / "ds"
    photo(root / "a.jpg", seed=1)
    photo(root / "b.jpg", seed=2)
    names_tsv(root, [("a.jpg", "x"), ("b.jpg", "y")])
    first = load_dataset(root, image_size=16, progress=False)
    photo(root / "b.jpg", color=(10, 200, 10), seed=3)
    second = load_dataset(root, image_size=16, progress=False)
    assert not second.from_cache and second.cache_path != first.cache_path
    assert not first.cache_path.exists()  # the stale cache of this folder is pruned
    assert torch.equal(first.images[0], second.images[0]) and not torch.equal(first.images[1], second.images[1])
    # other sizes have their own cache file
    other = load_dataset(root, image_size=8, progress=False)
    assert not other.from_cache and second.cache_path.exists()


def test_a_damaged_cache_file_is_rebuilt(tmp_path):
    root = tmp_path / "ds"
    photo(root / "a.jpg")
    names_tsv(root, [("a.jpg", "x")])
    first = load_dataset(root, image_size=16, progress=False)
    first.cache_path.write_bytes(b"garbage")
    with pytest.warns(DataWarning, match="cache"):
        again = load_dataset(root, image_size=16, progress=False)
    assert not again.from_cache and torch.equal(again.images, first.images)
    assert load_dataset(root, image_size=16, progress=False).from_cache


def test_empty_or_unusable_data_sets_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "nope", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no photos"):
        load_dataset(empty, progress=False)
    header_only = tmp_path / "header_only"
    names_tsv(header_only, [])
    with pytest.raises(DataError, match="no rows"):
        load_dataset(header_only, progress=False)
    bad_header = tmp_path / "bad_header"
    names_tsv(bad_header, [("a.jpg", "x")], header="path\tlabel")
    with pytest.raises(DataError, match="header must start with"):
        scan_dataset(bad_header)
    all_bad = tmp_path / "all_bad"
    all_bad.mkdir()
    (all_bad / "a.jpg").write_text("text", encoding="utf-8")
    (all_bad / "b.jpg").write_bytes(jpeg_bytes()[:300])
    names_tsv(all_bad, [("a.jpg", "x"), ("b.jpg", "x"), ("c.jpg", "x")])
    with pytest.warns(DataWarning), pytest.raises(DataError, match="none of the 3"):
        load_dataset(all_bad, progress=False)
    loose = tmp_path / "loose"
    photo(loose / "a.jpg")
    with pytest.raises(DataError, match="no names.tsv"):
        load_dataset(loose, progress=False)


def test_training_on_a_folder_of_every_bad_kind_uses_the_good_photos_and_names_each_bad_one(tmp_path, monkeypatch,
                                                                                           capsys):
    """`stackgan train` and `stackgan baseline-dcgan` on one folder with every kind of bad file at once
    (truncated, not a picture, too small, unlisted, missing, a folder, a decompression bomb): both train
    on the good photos, name each bad file with its reason, and exit 0. A folder with no usable photo
    is exit 2 with the loader's message."""
    from conftest import use_hash_encoder

    root = tmp_path / "ds"
    expected = broken_set(root)
    bomb_png(root / "bomb.png")
    rows = (root / "names.tsv").read_text(encoding="utf-8") + "bomb.png\tカツ丼\t\n"
    (root / "names.tsv").write_text(rows, encoding="utf-8")
    expected["bomb.png"] = TOO_LARGE
    use_hash_encoder(monkeypatch, tmp_path / "cache")
    tiny = ["--image-size", "16", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--max-steps", "1", "--device", "cpu",
            "--no-progress"]
    # the command line prints each skipped file itself, whatever the warning filters around it
    for cmd in (["train", "--data", str(root), "--out", str(tmp_path / "sg"), "--c-dim", "8", "--grid-rows", "2",
                 "--grid-cols", "2", *tiny],
                ["baseline-dcgan", "--data", str(root), "--out", str(tmp_path / "dc"), *tiny]):
        rc = cli_main(cmd)
        said = capsys.readouterr()
        assert rc == 0, said.err
        for file, reason in expected.items():
            assert f"warning: skipping {file}: {reason}" in said.err, (cmd[0], file, said.err)
    names = json.loads((tmp_path / "sg" / "names.json").read_text(encoding="utf-8"))
    assert names["n_images"] == 3
    all_bad = tmp_path / "all_bad"
    all_bad.mkdir()
    (all_bad / "a.jpg").write_text("text", encoding="utf-8")
    names_tsv(all_bad, [("a.jpg", "x"), ("b.jpg", "x")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli_main(["train", "--data", str(all_bad), "--out", str(tmp_path / "none"), *tiny]) == 2
    assert "none of the 2" in capsys.readouterr().err

# -- the dataset object ------------------------------------------------------------------------------

def _counts_set(root: Path, counts: dict[str, int]) -> ImageDataset:
    rows = []
    for k, (name, n) in enumerate(counts.items()):
        for j in range(n):
            f = f"{k}_{j}.png"
            photo(root / f, size=(16, 16), seed=100 * k + j)
            rows.append((f, name))
    names_tsv(root, rows)
    return load_dataset(root, image_size=16, progress=False)


def test_split_is_stratified_deterministic_and_keeps_singletons_in_train(tmp_path):
    ds = _counts_set(tmp_path / "ds", {"A": 10, "B": 5, "C": 1, "D": 2})
    train, test = ds.split(held_out=0.2, seed=0)
    assert test.counts() == {"A": 2, "B": 1, "C": 0, "D": 1}
    assert train.counts() == {"A": 8, "B": 4, "C": 1, "D": 1}
    assert sorted(train.files + test.files) == sorted(ds.files) and not set(train.files) & set(test.files)
    assert train.names == test.names == ds.names
    for sub in (train, test):  # labels still index the same names
        for f, lab in zip(sub.files, sub.labels.tolist()):
            assert ds.labels[ds.files.index(f)] == lab
    again = ds.split(held_out=0.2, seed=0)
    assert again[1].files == test.files
    assert any(ds.split(0.2, seed=s)[1].files != test.files for s in range(1, 6))
    whole, none = ds.split(held_out=0.0)
    assert len(whole) == len(ds) and len(none) == 0 and none.images.shape[1:] == ds.images.shape[1:]
    with pytest.raises(ConfigError):
        ds.split(held_out=1.0)


def test_items_subset_counts_and_summary(tmp_path):
    ds = _counts_set(tmp_path / "ds", {"うどん": 3, "そば": 2})
    x, label = ds[4]
    assert x.shape == (3, 16, 16) and x.min() >= -1 and x.max() <= 1 and label == ds.names.index("そば")
    assert torch.allclose((x + 1) * 127.5, ds.images[4].float(), atol=1e-3)
    sub = ds.subset([4, 0])
    assert sub.files == [ds.files[4], ds.files[0]] and sub.labels.tolist() == [ds.labels[4], ds.labels[0]]
    assert sub.counts() == {"うどん": 1, "そば": 1}
    s = ds.summary()
    json.dumps(s)  # JSON-ready
    assert s["n_images"] == 5 and s["n_names"] == 2 and s["counts"] == {"うどん": 3, "そば": 2}
    assert s["image_size"] == 16 and s["channels"] == 3
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    xb, yb = next(iter(loader))
    assert xb.shape == (2, 3, 16, 16) and yb.dtype == torch.long


def test_attributes_tsv_is_aligned_with_the_images(tmp_path):
    root = tmp_path / "ds"
    for i in range(3):
        photo(root / "images" / f"{i}.jpg", seed=i)
    names_tsv(root, [("images/0.jpg", "ピリ辛サーモン丼"), ("images/1.jpg", "きつねうどん"), ("images/2.jpg", "ﾈｷﾞそば")])
    (root / "attributes.tsv").write_text(
        "file\tname\tbase\ttopping\tmodifier\n"
        "images/2.jpg\tねぎそば\tそば\tねぎ\t\n"
        "images/0.jpg\tピリ辛サーモン丼\t丼\tサーモン\tピリ辛\n"
        "images/1.jpg\tきつねうどん\tうどん\tきつね\t\n", encoding="utf-8")
    ds = load_dataset(root, image_size=16, progress=False)
    assert [a["topping"] for a in ds.attributes] == ["サーモン", "きつね", "ねぎ"]
    assert ds.attributes[0]["modifier"] == "ピリ辛" and ds.attributes[1]["modifier"] == ""
    train, test = ds.split(0.5)
    assert len(train.attributes) == len(train)
    (root / "attributes.tsv").unlink()
    assert load_dataset(root, image_size=16, progress=False).attributes is None


# -- CLI --------------------------------------------------------------------------------------------------

def test_cli_data_check_reports_and_exit_codes(tmp_path, capsys):
    root = tmp_path / "ds"
    expected = broken_set(root)
    assert cli_main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2  カツ丼" in out and "1  きつねうどん" in out
    assert "short side, px): min 20, median 20, max 20" in out
    for file, reason in expected.items():
        assert f"{file}: {reason}" in out
    assert "OK: 3 usable photo(s) of 2 name(s), 6 file(s) skipped" in out

    assert cli_main(["data", "check", str(root), "--min-size", "8", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_usable"] == 4 and rep["counts"] == {"カツ丼": 3, "きつねうどん": 1}
    assert rep["problem_counts"] == {TRUNCATED: 1, NOT_AN_IMAGE: 1, NOT_LISTED: 1, MISSING: 1, UNREADABLE: 1}

    assert cli_main(["data", "check", str(root), "--min-size", "32"]) == 1  # nothing is big enough
    out = capsys.readouterr().out
    assert "0 usable photo(s)" in out and "good1.jpg: too small (24x20 px, short side below 32)" in out

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_text("text", encoding="utf-8")
    names_tsv(bad, [("a.jpg", "x")])
    assert cli_main(["data", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "a.jpg: not an image" in out and "UNUSABLE" in out

    assert cli_main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "error: data set folder not found" in capsys.readouterr().err


# -- the shared real photos (opt-in) -------------------------------------------------------------------------

@pytest.mark.realfood
@pytest.mark.slow
def test_realfood_loads_as_it_is(tmp_path):
    if shared_dataset("realfood") is None or not REALFOOD.is_dir():
        pytest.skip("../shared/realfood is absent")
    t0 = time.perf_counter()
    ds = load_dataset(REALFOOD, image_size=64, cache_dir=tmp_path / "rf-cache", progress=False)
    t1 = time.perf_counter()
    again = load_dataset(REALFOOD, image_size=64, cache_dir=tmp_path / "rf-cache", progress=False)
    t2 = time.perf_counter()
    print(f"realfood: first load {t1 - t0:.1f} s, cached {t2 - t1:.2f} s")
    assert len(ds.names) == 28 and len(ds) >= 1800
    assert ds.images.shape[1:] == (3, 64, 64)
    assert again.from_cache and torch.equal(again.images, ds.images)
    assert t2 - t1 < 10
