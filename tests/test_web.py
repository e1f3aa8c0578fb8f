"""The web app: request validation, the serve command, and every route on a real tiny model."""

from __future__ import annotations

import pytest

from stackgan.errors import CheckpointError
from web.app import MAX_NAME_CHARS, BadRequest, clean_float, clean_int, clean_name, clean_seed


# -- validation (no model needed) ---------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("ピリ辛サーモン丼", "ピリ辛サーモン丼"),
    ("  月見カレーうどん\u3000", "月見カレーうどん"),      # ideographic space trimmed
    ("ﾋﾟﾘ辛ｻｰﾓﾝ丼", "ピリ辛サーモン丼"),                  # half-width katakana -> NFKC
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # kept as text, escaped on output
    ("家族👨\u200d👩\u200d👧丼", "家族👨\u200d👩\u200d👧丼"),       # ZWJ emoji are allowed
    ("あ" * MAX_NAME_CHARS, "あ" * MAX_NAME_CHARS),
])
def test_clean_name_accepts(raw, expected):
    assert clean_name(raw) == expected


@pytest.mark.parametrize("raw, message", [
    (None, "required"),
    ("", "empty"),
    ("   \u3000\t ".replace("\t", " "), "empty"),
    ("あ" * (MAX_NAME_CHARS + 1), "too long"),
    ("カレー\nうどん", "control character (U+000A)"),
    ("カレー\x00", "control character (U+0000)"),
    ("カレー\u202eうどん", "control character (U+202E)"),   # bidi override
    ("\tカレー", "control character"),
    (123, "must be a string"),
    (["カレー"], "must be a string"),
])
def test_clean_name_refuses(raw, message):
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        clean_name(raw)


def test_clean_int_and_float():
    assert clean_int(None, "n", 1, 16, default=4) == 4
    assert clean_int(16, "n", 1, 16) == 16
    for bad, msg in [(True, "boolean"), (2.5, "fractional"), ("3", "a string"), (0, "between 1 and 16"),
                     (17, "between 1 and 16"), ([1], "a list")]:
        with pytest.raises(BadRequest, match=msg):
            clean_int(bad, "n", 1, 16)
    with pytest.raises(BadRequest, match="required"):
        clean_int(None, "n", 1, 16)
    assert clean_float(1, "sigma", 0, 2) == 1.0
    for bad in (float("nan"), float("inf"), 2.5, -0.1, False, "0.3"):
        with pytest.raises(BadRequest):
            clean_float(bad, "sigma", 0.0, 2.0)


def test_clean_seed():
    seeds = {clean_seed(None) for _ in range(20)}
    assert len(seeds) > 1 and all(isinstance(s, int) and s >= 0 for s in seeds)
    assert clean_seed(0) == 0
    with pytest.raises(BadRequest, match="seed is required"):
        clean_seed(None, required=True)
    for bad in (-1, 2**31, True, "12", 1.5):
        with pytest.raises(BadRequest, match="seed"):
            clean_seed(bad)


def test_create_app_without_model_is_a_clear_error(tmp_path):
    from web.app import create_app

    with pytest.raises(CheckpointError, match="no model at"):
        create_app(tmp_path / "nothing-here")


def test_serve_without_model_exits_2(tmp_path, capsys):
    from stackgan.cli import main

    assert main(["serve", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no model at" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be <= 65535" in capsys.readouterr().err
