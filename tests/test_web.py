"""The web app: request validation, every route and every bad input on a real tiny StackGAN.

The fixture trains a real two-stage model in a few seconds: a randomly initialised one-layer BERT
(a real Hugging Face folder, loaded by the project's text encoder code) encodes the names, stage I
trains 2 steps at 16 px and stage II 1 step at 32 px on small synthetic photos. Nothing is stubbed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from stackgan.errors import CheckpointError
from stackgan.web.app import MAX_BODY_BYTES, MAX_NAME_CHARS, BadRequest, clean_float, clean_int, clean_name, clean_seed

REPO = Path(__file__).resolve().parents[1]
NAMES = ["カツカレー", "きつねうどん", "ピリ辛サーモン丼", "味噌ラーメン", "月見そば"]
NEW_NAME = "月見カレーうどん"  # not a training name: goes through the text encoder
_RUNS: dict[str, Path] = {}


def make_text_encoder(folder: Path) -> Path:
    """A tiny random BERT with a per-character vocabulary, saved as a Hugging Face folder."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    chars = ([chr(c) for c in range(0x21, 0x7F)] + [chr(c) for c in range(0x3041, 0x3097)]
             + [chr(c) for c in range(0x30A1, 0x30FB)] + ["ー"] + sorted(set("".join(NAMES + [NEW_NAME]))))
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(chars)))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(Regex("."), behavior="isolated")])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]", model_max_length=64).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    return folder


def _photos(size: int, per_name: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic "photos": a colour per name, a disc, noise; uint8 [N, 3, size, size]."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    disc = ((xx ** 2 + yy ** 2) < 0.5).float()
    images, labels = [], []
    for k in range(len(NAMES)):
        colour = torch.rand(3, 1, 1, generator=g)
        for _ in range(per_name):
            img = colour * disc + 0.3 * (1 - disc) + 0.1 * torch.rand(3, size, size, generator=g)
            images.append((img.clamp(0, 1) * 255).to(torch.uint8))
            labels.append(k)
    return torch.stack(images), torch.tensor(labels)


def build_tiny_runs(root: Path) -> dict[str, Path]:
    """{"encoder", "stage1", "stage2"}: built once per test session (the browser test shares it)."""
    if _RUNS and all(p.exists() for p in _RUNS.values()):
        return _RUNS
    from stackgan.text import load_text_encoder
    from stackgan.train import stackgan as tr
    from stackgan.stackgan_config import StackGANConfig

    enc_dir = make_text_encoder(root / "encoder")
    enc = load_text_encoder(str(enc_dir))
    emb = enc.encode(NAMES)
    common = dict(text_encoder=str(enc_dir), image_size=16, stage2_size=128, ngf=8, ndf=8, c_dim=8, z_dim=16,
                  batch_size=8, sample_every=100, ckpt_every=100, grid_rows=2, grid_cols=2, progress=False,
                  device="cpu")
    s1, s2 = root / "stage1", root / "stage2"
    imgs, labels = _photos(16)
    tr.StackGANTrainer(StackGANConfig(max_steps=2, **common).validate(),
                       tr.TrainData(imgs, labels, list(NAMES), emb, source="synthetic"), s1).fit()
    imgs, labels = _photos(32)
    cfg2 = StackGANConfig(stage=2, stage1=str(s1), max_steps=1, **common).validate()
    tr.StackGANTrainer(cfg2, tr.TrainData(imgs, labels, list(NAMES), emb, source="synthetic"), s2,
                       stage1=tr.load_stage1(s1)).fit()
    _RUNS.update(encoder=enc_dir, stage1=s1, stage2=s2)
    return _RUNS


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared machine: threads only add contention
    try:
        yield build_tiny_runs(tmp_path_factory.mktemp("web-runs"))
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_run(tiny_runs):
    """The two-stage run folder."""
    return tiny_runs["stage2"]


@pytest.fixture(scope="module")
def app(tiny_run):
    from stackgan.web.app import create_app

    app = create_app(tiny_run)
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def post(client, path, body, raw=False, **kw):
    data = body if raw else json.dumps(body, ensure_ascii=False).encode("utf-8")
    return client.post(path, data=data, content_type=kw.pop("content_type", "application/json"), **kw)


def png(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    im = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    im.load()
    return im


def pixels(data_url: str) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.asarray(png(data_url).convert("RGB"), dtype=np.int16))


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
    from stackgan.web.app import create_app

    with pytest.raises(CheckpointError, match="no model at"):
        create_app(tmp_path / "nothing-here")


def test_serve_without_model_exits_2(tmp_path, capsys):
    from stackgan.cli import main

    assert main(["serve", "--checkpoint", str(tmp_path / "missing")]) == 2
    assert "no model at" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(tmp_path), "--port", "70000"]) == 2
    assert "--port must be <= 65535" in capsys.readouterr().err


# -- the page and static files --------------------------------------------------------------------
def test_index_page(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    for needle in ('id="name"', 'id="n"', 'id="seed"', 'id="generate"', 'id="error"', "ピリ辛サーモン丼",
                   "月見カレーうどん", 'max="16"', "/static/app.js", "/static/style.css"):
        assert needle in html, needle
    # everything is served locally: no CDN, no external fonts or scripts
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_index_escapes_the_name_from_the_url(client):
    r = client.get("/", query_string={"name": '"><script>alert(1)</script>'})
    html = r.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # only our own app.js


@pytest.mark.parametrize("path, needles", [
    ("/static/app.js", ["isComposing", "compositionstart", "/api/generate", "/api/variations", "/api/explore",
                        "history.replaceState", "textContent"]),
    ("/static/style.css", [".card", ".error"]),
])
def test_static_files(client, path, needles):
    r = client.get(path)
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    for needle in needles:
        assert needle in text, needle
    assert not re.search(r"https?://", text)  # nothing fetched from elsewhere
    assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", text)  # textContent only


# -- health and model -------------------------------------------------------------------------------
def test_health(client, tiny_run):
    r = client.get("/api/health")
    assert r.status_code == 200
    assert r.json["status"] == "ok" and r.json["model"] == tiny_run.name  # the folder's name, not its path
    assert str(tiny_run.parent) not in r.get_data(as_text=True)
    assert client.get("/api/model").json["source"] == tiny_run.name
    assert r.headers["Cache-Control"] == "no-store"


def test_model_info(client, tiny_runs):
    info = client.get("/api/model").json
    assert info["stages"] == 2 and info["stage1_size"] == 16 and info["stage2_size"] == 32
    assert info["text_encoder"] == str(tiny_runs["encoder"])
    assert info["training"]["n_names"] == len(NAMES) and info["training"]["n_images"] == 4 * len(NAMES)
    assert info["explore_directions"] == 4
    assert info["limits"]["max_n"] == 16 and info["limits"]["max_name_chars"] == MAX_NAME_CHARS
    json.dumps(info)  # plain JSON all the way down


# -- generate -----------------------------------------------------------------------------------------
def test_generate(client):
    r = post(client, "/api/generate", {"name": NEW_NAME, "n": 3, "seed": 5})
    assert r.status_code == 200, r.json
    d = r.json
    assert d["name"] == NEW_NAME and d["seed"] == 5 and d["n"] == 3
    assert [im["seed"] for im in d["images"]] == [5, 6, 7]
    for im in d["images"]:
        assert png(im["stage1"]).size == (16, 16) and png(im["stage2"]).size == (32, 32)
    assert len({im["stage2"] for im in d["images"]}) == 3  # different seeds, different pictures
    nb = d["neighbours"]
    assert len(nb) == 5 and {x["name"] for x in nb} == set(NAMES)
    sims = [x["similarity"] for x in nb]
    assert sims == sorted(sims, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in sims)
    assert d["elapsed_ms"] >= 0

    # deterministic for (name, seed); picture i is seed + i whatever n
    again = post(client, "/api/generate", {"name": NEW_NAME, "n": 3, "seed": 5}).json
    assert again["images"] == d["images"]
    one = post(client, "/api/generate", {"name": NEW_NAME, "n": 1, "seed": 6}).json
    assert (pixels(one["images"][0]["stage2"]) - pixels(d["images"][1]["stage2"])).abs().max() <= 1
    other = post(client, "/api/generate", {"name": "カツカレー", "n": 1, "seed": 5}).json
    assert other["images"][0]["stage2"] != d["images"][0]["stage2"]
    assert other["neighbours"][0] == {"name": "カツカレー", "similarity": pytest.approx(1.0, abs=1e-3)}
    # how familiar the name is: a training name is never far; the threshold is the pipeline's own
    fam = other["familiarity"]
    assert fam["nearest"] == "カツカレー" and fam["far"] is False
    assert fam["threshold"] == pytest.approx(client.application.extensions["stackgan"].pipeline.familiar_threshold(),
                                             abs=1e-4)
    assert d["familiarity"]["far"] == (d["familiarity"]["similarity"] < d["familiarity"]["threshold"])


def test_generate_defaults_random_seed_and_normalisation(client):
    d = post(client, "/api/generate", {"name": "  ﾋﾟﾘ辛ｻｰﾓﾝ丼 "}).json
    assert d["name"] == "ピリ辛サーモン丼" and d["n"] == 4 and len(d["images"]) == 4
    seed = d["seed"]
    assert isinstance(seed, int) and d["images"][0]["seed"] == seed
    same = post(client, "/api/generate", {"name": "ピリ辛サーモン丼", "n": 4, "seed": seed}).json
    assert same["images"] == d["images"]  # the reported seed reproduces the pictures
    null_seed = post(client, "/api/generate", {"name": "ピリ辛サーモン丼", "n": 1, "seed": None}).json
    assert isinstance(null_seed["seed"], int)
    trunc = post(client, "/api/generate", {"name": "ピリ辛サーモン丼", "n": 2, "seed": 1, "truncation": 0.05}).json
    assert trunc["truncation"] == 0.05 and trunc["images"][0]["stage2"] != same["images"][0]["stage2"]


def test_generate_script_name_is_data_not_markup(client):
    name = "<script>alert(1)</script>"
    r = post(client, "/api/generate", {"name": name, "n": 1, "seed": 0})
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.json["name"] == name


def test_generate_max_n(client):
    d = post(client, "/api/generate", {"name": "月見そば", "n": 16, "seed": 0}).json
    assert len(d["images"]) == 16 and d["images"][-1]["seed"] == 15


BAD_GENERATE = [
    ({"name": ""}, "name is empty"),
    ({"name": " \u3000 "}, "name is empty"),
    ({"name": "   ", "n": 2}, "name is empty"),
    ({"n": 2}, "name is required"),
    ({"name": None}, "name is required"),
    ({"name": 12}, "name must be a string"),
    ({"name": "あ" * (MAX_NAME_CHARS + 1)}, "name is too long: 65 characters"),
    ({"name": "カレー\nうどん"}, "control character (U+000A)"),
    ({"name": "カレー\x07"}, "control character (U+0007)"),
    ({"name": "カレー\u202eうどん"}, "control character (U+202E)"),
    ({"name": "カレー", "n": 0}, "n must be between 1 and 16, got 0"),
    ({"name": "カレー", "n": 17}, "n must be between 1 and 16, got 17"),
    ({"name": "カレー", "n": -3}, "n must be between 1 and 16"),
    ({"name": "カレー", "n": "3"}, "n must be an integer, got a string"),
    ({"name": "カレー", "n": 2.5}, "n must be an integer, got a fractional number"),
    ({"name": "カレー", "n": 2.0}, "n must be an integer"),
    ({"name": "カレー", "n": True}, "n must be an integer, got a boolean"),
    ({"name": "カレー", "seed": "12"}, "seed must be an integer, got a string"),
    ({"name": "カレー", "seed": 1.5}, "seed must be an integer, got a fractional number"),
    ({"name": "カレー", "seed": False}, "seed must be an integer, got a boolean"),
    ({"name": "カレー", "seed": -1}, "seed must be between 0 and"),
    ({"name": "カレー", "seed": 2**31}, "seed must be between 0 and"),
    ({"name": "カレー", "seed": [1]}, "seed must be an integer, got a list"),
    ({"name": "カレー", "truncation": 0}, "truncation must be between"),
    ({"name": "カレー", "truncation": "1"}, "truncation must be a number"),
    ({"name": "カレー", "colour": "red"}, "unknown field(s): colour"),
]


@pytest.mark.parametrize("body, message", BAD_GENERATE, ids=[m for _, m in BAD_GENERATE])
def test_generate_bad_input(client, body, message):
    r = post(client, "/api/generate", body)
    assert r.status_code == 400
    assert r.mimetype == "application/json"
    assert message in r.json["error"] and r.json["status"] == 400


BAD_BODIES = [
    (b"", "the request body is empty"),
    (b"   ", "the request body is empty"),
    (b"{name: 1}", "not valid JSON"),
    (b'{"name": "\xe3\x82"}', "not valid JSON"),  # cut UTF-8
    (b'{"name": "x",}', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, got a list"),
    ('"ピリ辛"'.encode(), "must be a JSON object, got a string"),
    (b"3", "must be a JSON object, got a number"),
    (b"null", "must be a JSON object, got null"),
    (b'{"name": "x", "seed": NaN}', "seed must be an integer, got a non-finite number"),
    (b"[" * (MAX_BODY_BYTES + 1), "too large"),
]


@pytest.mark.parametrize("raw, message", BAD_BODIES, ids=[m for _, m in BAD_BODIES])
def test_generate_bad_body(client, raw, message):
    r = post(client, "/api/generate", raw, raw=True)
    expected = 413 if len(raw) > MAX_BODY_BYTES else 400
    assert r.status_code == expected, (r.status_code, r.json)
    assert message in r.json["error"]


def test_bad_json_nesting_and_form_content_type(client):
    deep = b"[" * 5000 + b"]" * 5000  # under the size limit, deeper than the JSON parser allows
    r = post(client, "/api/generate", deep, raw=True)
    assert r.status_code == 400 and "not valid JSON" in r.json["error"]
    # only a body declared as JSON is read (a plain HTML form of another site cannot post here)
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        r = post(client, "/api/generate", {"name": "月見そば", "n": 1, "seed": 3}, content_type=ctype)
        assert r.status_code == 415 and "Content-Type: application/json" in r.json["error"], ctype
    r = post(client, "/api/generate", {"name": "月見そば", "n": 1, "seed": 3},
             content_type="application/json; charset=utf-8")
    assert r.status_code == 200


def test_body_size_limit(client):
    big = {"name": "カレー", "n": 1, "pad": "x" * (MAX_BODY_BYTES + 10)}
    r = post(client, "/api/generate", big)
    assert r.status_code == 413
    assert f"at most {MAX_BODY_BYTES} bytes" in r.json["error"]


def test_wrong_method_and_unknown_route(client):
    r = client.get("/api/generate")
    assert r.status_code == 405 and "GET is not allowed" in r.json["error"]
    r = client.post("/api/health")
    assert r.status_code == 405
    r = client.get("/api/nothing")
    assert r.status_code == 404 and "no such API route" in r.json["error"]
    r = client.get("/nothing")
    assert r.status_code == 404 and r.mimetype == "text/html"


def _run_until_closed(srv) -> None:
    """waitress's loop in a test thread: ``srv.close()`` from the test may close the socket while the
    loop is in select(), which then fails with EBADF; that is the shutdown, not an error."""
    import errno

    try:
        srv.run()
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise


def test_doubled_slashes_are_not_redirected_to_the_clients_host(app):
    """Over a real socket (the test client turns "//" into an empty path): werkzeug would redirect
    /api//health to an absolute http://HOST/api/health built from the request's Host header."""
    import socket

    from stackgan.commands.serve_cmd import make_server

    srv = make_server(app, "127.0.0.1", 0, 3)
    thread = threading.Thread(target=_run_until_closed, args=(srv,), daemon=True)
    thread.start()
    try:
        for path in ("//", "/api//health", "/static//app.js", "///api/health", "//evil.example/"):
            with socket.create_connection(("127.0.0.1", srv.effective_port), timeout=10) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode())
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            status = int(head.split()[1])
            assert status in (200, 404) and "evil.example" not in head, (path, head)  # served or not found
    finally:
        srv.close()
        thread.join(timeout=10)


# -- variations and explore -------------------------------------------------------------------------
def test_variations(client):
    base = post(client, "/api/generate", {"name": NEW_NAME, "n": 1, "seed": 11}).json["images"][0]
    r = post(client, "/api/variations", {"name": NEW_NAME, "seed": 11, "n": 4, "sigma": 0.8})
    assert r.status_code == 200, r.json
    d = r.json
    assert d["seed"] == 11 and d["sigma"] == 0.8 and len(d["images"]) == 4
    assert "seed" not in d["images"][0]  # variations share the seed; they are not seeds of their own
    assert (pixels(d["images"][0]["stage2"]) - pixels(base["stage2"])).abs().max() <= 1  # picture 0 is the chosen one
    assert len({im["stage2"] for im in d["images"]}) == 4
    assert post(client, "/api/variations", {"name": NEW_NAME, "seed": 11, "n": 4, "sigma": 0.8}).json["images"] \
        == d["images"]
    zero = post(client, "/api/variations", {"name": NEW_NAME, "seed": 11, "n": 3, "sigma": 0}).json["images"]
    assert all((pixels(im["stage2"]) - pixels(zero[0]["stage2"])).abs().max() <= 1 for im in zero)
    default = post(client, "/api/variations", {"name": NEW_NAME, "seed": 11}).json
    assert len(default["images"]) == 8 and default["sigma"] == 0.3


@pytest.mark.parametrize("body, message", [
    ({"name": NEW_NAME}, "seed is required"),
    ({"name": NEW_NAME, "seed": None}, "seed is required"),
    ({"name": "", "seed": 1}, "name is empty"),
    ({"name": NEW_NAME, "seed": 1, "sigma": 2.5}, "sigma must be between 0 and 2"),
    ({"name": NEW_NAME, "seed": 1, "sigma": -0.1}, "sigma must be between"),
    ({"name": NEW_NAME, "seed": 1, "sigma": "0.3"}, "sigma must be a number"),
    ({"name": NEW_NAME, "seed": 1, "n": 17}, "n must be between 1 and 16"),
    ({"name": NEW_NAME, "seed": 1, "offsets": []}, "unknown field(s): offsets"),
])
def test_variations_bad_input(client, body, message):
    r = post(client, "/api/variations", body)
    assert r.status_code == 400 and message in r.json["error"]


def test_explore(client):
    base = post(client, "/api/generate", {"name": NEW_NAME, "n": 1, "seed": 21}).json["images"][0]
    zero = post(client, "/api/explore", {"name": NEW_NAME, "seed": 21, "offsets": [0, 0, 0, 0]})
    assert zero.status_code == 200, zero.json
    assert len(zero.json["images"]) == 1
    assert (pixels(zero.json["images"][0]["stage2"]) - pixels(base["stage2"])).abs().max() <= 1
    moved = post(client, "/api/explore", {"name": NEW_NAME, "seed": 21, "offsets": [2.5, 0, -1, 0.5]}).json
    assert moved["offsets"] == [2.5, 0.0, -1.0, 0.5]
    assert moved["images"][0]["stage2"] != base["stage2"]
    assert post(client, "/api/explore", {"name": NEW_NAME, "seed": 21, "offsets": [2.5, 0, -1, 0.5]}).json["images"] \
        == moved["images"]


@pytest.mark.parametrize("body, message", [
    ({"name": NEW_NAME, "seed": 1}, "offsets must be a list of 4 numbers, got null"),
    ({"name": NEW_NAME, "seed": 1, "offsets": "0,0,0,0"}, "offsets must be a list of 4 numbers, got a string"),
    ({"name": NEW_NAME, "seed": 1, "offsets": [0, 0, 0]}, "offsets must have 4 numbers (one per direction), got 3"),
    ({"name": NEW_NAME, "seed": 1, "offsets": [0] * 5}, "got 5"),
    ({"name": NEW_NAME, "seed": 1, "offsets": [0, 0, 3.5, 0]}, "offsets[2] must be between -3 and 3"),
    ({"name": NEW_NAME, "seed": 1, "offsets": [0, "1", 0, 0]}, "offsets[1] must be a number, got a string"),
    ({"name": NEW_NAME, "seed": 1, "offsets": [0, 0, 0, True]}, "offsets[3] must be a number, got a boolean"),
    ({"name": NEW_NAME, "offsets": [0, 0, 0, 0]}, "seed is required"),
    ({"name": "\x00", "seed": 1, "offsets": [0, 0, 0, 0]}, "control character"),
])
def test_explore_bad_input(client, body, message):
    r = post(client, "/api/explore", body)
    assert r.status_code == 400 and message in r.json["error"]


def test_explore_rejects_nan_offsets(client):
    r = post(client, "/api/explore", b'{"name": "x", "seed": 1, "offsets": [NaN, 0, 0, 0]}', raw=True)
    assert r.status_code == 400 and "offsets[0] must be a finite number, got nan" in r.json["error"]


# -- PNG download ----------------------------------------------------------------------------------
def test_image_png(client):
    gen = post(client, "/api/generate", {"name": NEW_NAME, "n": 1, "seed": 9}).json["images"][0]
    r = client.get("/api/image.png", query_string={"name": NEW_NAME, "seed": "9"})
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.headers["Content-Disposition"] == "attachment; filename=stackgan-seed9-stage2.png"
    im = Image.open(io.BytesIO(r.data))
    assert im.size == (32, 32)
    assert base64.b64encode(r.data).decode() == gen["stage2"].split(",", 1)[1]
    r1 = client.get("/api/image.png", query_string={"name": NEW_NAME, "seed": "9", "stage": "1"})
    assert Image.open(io.BytesIO(r1.data)).size == (16, 16)
    assert r1.headers["Content-Disposition"].endswith("stage1.png")


@pytest.mark.parametrize("query, message", [
    ({"seed": "1"}, "name is required"),
    ({"name": "", "seed": "1"}, "name is empty"),
    ({"name": NEW_NAME}, "seed is required"),
    ({"name": NEW_NAME, "seed": "abc"}, "seed must be an integer, got 'abc'"),
    ({"name": NEW_NAME, "seed": "１２"}, "seed must be an integer"),  # full-width digits
    ({"name": NEW_NAME, "seed": "-5"}, "seed must be between 0 and"),
    ({"name": NEW_NAME, "seed": "1", "stage": "3"}, "stage must be between 1 and 2"),
])
def test_image_png_bad_input(client, query, message):
    r = client.get("/api/image.png", query_string=query)
    assert r.status_code == 400 and message in r.json["error"]


# -- other models, concurrency, loading --------------------------------------------------------------
def test_stage1_only_model_and_pipeline_object(tiny_runs):
    from stackgan.inference import load_pipeline
    from stackgan.web.app import create_app

    client = create_app(load_pipeline(tiny_runs["stage1"])).test_client()  # a Pipeline object works too
    assert client.get("/api/health").json["model"] == "Pipeline"
    assert client.get("/api/model").json["stages"] == 1
    d = post(client, "/api/generate", {"name": NEW_NAME, "n": 2, "seed": 1}).json
    assert d["images"][0]["stage2"] is None and png(d["images"][0]["stage1"]).size == (16, 16)
    r = client.get("/api/image.png", query_string={"name": NEW_NAME, "seed": "1"})
    assert Image.open(io.BytesIO(r.data)).size == (16, 16)
    assert r.headers["Content-Disposition"].endswith("stage1.png")


def test_concurrent_requests_are_safe_and_deterministic(app):
    seeds = list(range(100, 108))
    expected = {s: post(app.test_client(), "/api/generate", {"name": NEW_NAME, "n": 2, "seed": s}).json["images"]
                for s in seeds}
    got, errors = {}, []

    def worker(chunk):
        c = app.test_client()
        for s in chunk:
            r = post(c, "/api/generate", {"name": NEW_NAME, "n": 2, "seed": s})
            if r.status_code != 200:
                errors.append(r.json)
            got[s] = r.json["images"]

    threads = [threading.Thread(target=worker, args=(seeds[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == expected


def test_flask_run_finds_the_app_lazily(tiny_run, monkeypatch):
    from flask.cli import ScriptInfo

    import stackgan.web.app as web_app

    monkeypatch.setenv("STACKGAN_CHECKPOINT", str(tiny_run))
    monkeypatch.delattr(web_app, "app", raising=False)
    assert "app" not in vars(web_app)  # importing the module builds nothing
    app = ScriptInfo(app_import_path="stackgan.web.app").load_app()  # what `flask --app stackgan.web.app run` does
    try:
        assert app.test_client().get("/api/health").json["model"] == tiny_run.name
        factory = ScriptInfo(app_import_path="stackgan.web.app:create_app").load_app()
        assert factory.extensions["stackgan"].source == str(tiny_run)
    finally:
        vars(web_app).pop("app", None)


def _start_serve(run: Path, *extra: str) -> tuple[subprocess.Popen, str, list[str]]:
    """`stackgan serve` in a subprocess on a free loopback port: (process, base URL, lines it said)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "stackgan", "serve", "--checkpoint", str(run),
                             "--port", "0", "--threads", "3", *extra], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    for line in proc.stdout:  # bounded by the process: it prints the URL or exits
        lines.append(line)
        m = re.search(r"serving on (http://127\.0\.0\.1:\d+/)", line)
        if m:
            return proc, m.group(1), lines
    proc.wait(timeout=30)
    raise AssertionError("".join(lines))


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: 15-40 s on 2 busy cores
def test_serve_command_end_to_end(tiny_run):
    """`stackgan serve` in a subprocess on a free loopback port, then real HTTP requests."""
    import urllib.request

    proc, url, lines = _start_serve(tiny_run)
    try:
        with urllib.request.urlopen(url + "api/health", timeout=60) as r:
            assert json.load(r)["status"] == "ok"
        req = urllib.request.Request(url + "api/generate", method="POST",
                                     data=json.dumps({"name": NEW_NAME, "n": 1, "seed": 3}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.headers["Server"] == "stackgan" and len(json.load(r)["images"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    said = "".join(lines) + proc.stdout.read()
    assert f"loaded {tiny_run}" in said  # the model it serves, then one line per request
    assert re.search(r"GET /api/health 200 [\d.]+ ms", said) and re.search(r"POST /api/generate 200 [\d.]+ ms", said)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.slow  # 1,000 requests through a real server: about a minute on 2 cores
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's RSS from /proc")
def test_the_servers_memory_stays_flat_over_a_thousand_new_names(tiny_run):
    """The server's RSS after 1,000 requests with distinct new names (each goes through the text
    encoder) stays within 10 % of its RSS after the first 100: the name cache and the per-request
    work are bounded. Requests go one at a time over one kept-alive connection."""
    import http.client
    from urllib.parse import urlsplit

    proc, url, lines = _start_serve(tiny_run)
    # drain the access log so the server never blocks writing to a full pipe
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        rss = {}
        for i in range(1000):
            body = json.dumps({"name": f"新作{i:04d}カレーうどん", "n": 1, "seed": i})
            conn.request("POST", "/api/generate", body=body, headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200, r.read()[:200]
            r.read()
            if i + 1 in (100, 1000):
                rss[i + 1] = _rss_kib(proc.pid)
        conn.close()
        assert rss[1000] <= 1.10 * rss[100], f"RSS grew from {rss[100]} KiB to {rss[1000]} KiB"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# -- fuzz: a fixed corpus of bad inputs; every answer is a 4xx with a message, never a 500 ---------------
def _raw(text: str) -> bytes:
    return text.encode("utf-8")


def _fuzz_corpus() -> list[tuple[str, str, dict]]:
    """(method, path, test-client keyword arguments): bad inputs only, each refused with a 4xx."""
    json_ct = "application/json"
    bad_names = ["", " ", "\u3000\u3000", None, 12, 1.5, True, [], {}, ["カレー"], {"name": "カレー"},
                 "\x00", "カレー\x00", "\x00" * 10, "カレー\x1b[31m", "\u202eうどん", "\u200fカレー", "\u200eカレー",
                 "\u200d", "\u200c\u200d", "\u0301\u0302", "\ufeffカレー", "カ\u2028レー", "カ\u2029レー", "カレー\x7f",
                 "a" * 10_000, "🍜" * (MAX_NAME_CHARS + 1), "カレー\U000E0001", "\U0010FFFF", "\uE000カレー",
                 "<script>" * 20]
    bodies: list[bytes] = []
    for name in bad_names:
        bodies.append(json.dumps({"name": name, "n": 1, "seed": 1}, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    # lone surrogates, escaped (valid JSON) and raw (invalid UTF-8)
    bodies += [b'{"name": "\\ud800"}', b'{"name": "\\udc00\\ud800x"}', b'{"name": "\xed\xa0\x80"}',
               b'{"\\ud800": 1, "name": "x"}', b'{"name": "\\u0000"}']
    for field, values in {
        "n": ["0", "-1", "17", "10" + "0" * 100, "9" * 4000, '"4"', "4.5", "NaN", "Infinity", "-Infinity", "[4]",
              '{"n": 4}', "true", "1e400", "-0.0"],
        "seed": ["-1", str(2**31), "9" * 1000, "9" * 5000, "-" + "9" * 5000, '"1"', "1e400", "NaN", "Infinity",
                 "[]", "{}", "true", "1.5", "-0"  + "1"],
        "truncation": ["0", "2", "NaN", "Infinity", "-Infinity", "1" + "0" * 400, '"1"', "[1]", "false", "1e-400"],
    }.items():
        for v in values:
            bodies.append(_raw('{"name": "月見そば", "%s": %s}' % (field, v)))
    bodies += [b"", b" ", b"null", b"[]", b"[{}]", b'[{"name": "x"}]', b"\xff\xfe{", b"{", b"}", b'"x"', b"1",
               b"\x00", b"[" * 5000 + b"]" * 5000, b'{"name": "x", "name": ' + b"[" * 3000 + b"]" * 3000 + b"}",
               _raw(json.dumps({"name": "x", "k" * 10_000: 1})), _raw(json.dumps({f"f{i}": i for i in range(200)})),
               b'{"name": "x"} trailing', b"\xef\xbb\xbf" + b'{"name": "x", "seed": -1}']
    cases: list[tuple[str, str, dict]] = [("POST", "/api/generate", {"data": b, "content_type": json_ct}) for b in bodies]

    for route, extra in (("/api/variations", {"seed": 1}), ("/api/explore", {"seed": 1, "offsets": [0.0]})):
        cases.append(("POST", route, {"data": b'{"name": "\\ud800", "seed": 1}', "content_type": json_ct}))
        for bad in ({"seed": None}, {"seed": -1}, {"seed": "1"}, {"seed": 10**40}, {"name": "a" * 10_000},
                    {"name": None}, {"extra": 1}):
            body = {"name": "月見そば", **extra, **bad}
            body = {k: v for k, v in body.items() if v is not None or k == "name"}
            cases.append(("POST", route, {"data": _raw(json.dumps(body)), "content_type": json_ct}))
        cases.append(("POST", route, {"data": _raw('{"name": "x", "seed": %s}' % ("9" * 5000)),
                                      "content_type": json_ct}))
    for sigma in ("-0.1", "2.5", "NaN", "Infinity", '"0.3"', "[0.3]", "1" + "0" * 400, "true"):
        cases.append(("POST", "/api/variations", {"data": _raw('{"name": "x", "seed": 1, "sigma": %s}' % sigma),
                                                  "content_type": json_ct}))
    for offsets in ("null", '"0,0"', "{}", "[]", "[[0]]", "[NaN]", "[Infinity]", '["0"]', "[true]", "[9]",
                    "[" + ",".join(["0"] * 1000) + "]", "[1" + "0" * 400 + "]", "[-1e400]", '{"0": 0}'):
        cases.append(("POST", "/api/explore", {"data": _raw('{"name": "x", "seed": 1, "offsets": %s}' % offsets),
                                               "content_type": json_ct}))
    # wrong content types and oversized bodies
    good = _raw(json.dumps({"name": "月見そば", "n": 1, "seed": 3}))
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "text/json", "application/json-patch+json", "image/png", None):
        for route in ("/api/generate", "/api/variations", "/api/explore"):
            kw = {"data": good} if ctype is None else {"data": good, "content_type": ctype}
            cases.append(("POST", route, kw))
    for size in (MAX_BODY_BYTES + 1, 1024 * 1024, 20 * 1024 * 1024):
        cases.append(("POST", "/api/generate", {"data": b"{" + b" " * size + b"}", "content_type": json_ct}))
    # the image URL's query string
    for query in ("seed=--1", "seed=-", "seed=%2B1", "seed=1e3", "seed=0x10", "seed=%EF%BC%91%EF%BC%92", "seed=%C2%B2",
                  "seed=%20", "seed=" + "1" * 5000, "seed=-" + "9" * 30, "seed=NaN", "seed=Infinity", "seed=1.0",
                  "seed=1%00", "seed=%ED%A0%80", "seed=-1", "seed=2147483648", "seed=1&stage=0", "seed=1&stage=3",
                  "seed=1&stage=x", "seed=1&stage=" + "9" * 40, "seed=1&stage=--2", "seed=1&stage=%00"):
            cases.append(("GET", "/api/image.png", {"query_string": "name=%E6%9C%88%E8%A6%8B%E3%81%9D%E3%81%B0&" + query}))
    for query in ("seed=1", "name=&seed=1", "name=%00&seed=1", "name=" + "a" * 10_000 + "&seed=1",
                  "name=%E2%80%AE%E3%81%86&seed=1", "name=%E2%80%8D&seed=1", "name[]=x&seed=1",
                  "name=%ED%A0%80&seed=x", "name=%FF%FE&seed=-5"):
        cases.append(("GET", "/api/image.png", {"query_string": query}))
    # unknown routes, traversal attempts, wrong methods
    for path in ("/api/nothing", "/api/", "/api", "/api/generate/x", "/api/image.png/../../web/app.py",
                 "/static/../web/app.py", "/static/..%2f..%2fweb%2fapp.py", "/static/%2e%2e/%2e%2e/pyproject.toml",
                 "/static/....//....//etc/passwd", "/static/%00", "/static/app.js%00.png", "/web/app.py", "/.env",
                 "/.git/config", "/etc/passwd", "/api/%ff", "/%E2%80%AE", "/index.html/..", "/api/health/..%2f..%2f"):
        cases.append(("GET", path, {}))
    for method, path in (("PUT", "/api/generate"), ("DELETE", "/api/generate"), ("PATCH", "/api/variations"),
                         ("POST", "/api/health"), ("POST", "/api/model"), ("POST", "/api/image.png"),
                         ("GET", "/api/generate"), ("GET", "/api/explore"), ("POST", "/"), ("PUT", "/static/app.js")):
        cases.append((method, path, {"data": good, "content_type": json_ct}))
    return cases


_EXCEPTION_NAME = re.compile(r"Traceback|\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|File \"")


def test_fuzz_every_bad_input_is_a_4xx_with_a_message(app):
    corpus = _fuzz_corpus()
    assert len(corpus) >= 150
    client = app.test_client()
    statuses = {}
    for method, path, kw in corpus:
        r = client.open(path, method=method, **kw)
        label = (method, path, repr(kw)[:120])
        assert 400 <= r.status_code < 500, (label, r.status_code, r.data[:300])
        text = r.get_data(as_text=True)
        assert not _EXCEPTION_NAME.search(text), (label, text[:300])
        if path.startswith("/api/"):
            assert r.mimetype == "application/json", (label, r.mimetype)
            assert isinstance(r.json["error"], str) and r.json["error"] and r.json["status"] == r.status_code
        else:  # the page's routes answer with the HTML error page
            assert r.mimetype == "text/html", (label, r.mimetype)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    assert {400, 404, 405, 413, 415} <= set(statuses) and statuses[400] >= 150, statuses
    # and the server still works
    r = post(client, "/api/generate", {"name": NEW_NAME, "n": 1, "seed": 3})
    assert r.status_code == 200 and len(r.json["images"]) == 1


def test_huge_and_odd_numbers_are_400_not_500(client):
    r = post(client, "/api/generate", _raw('{"name": "x", "seed": %s}' % ("9" * 5000)), raw=True)
    assert r.status_code == 400 and "a number in it is too long" in r.json["error"]
    r = post(client, "/api/generate", _raw('{"name": "x", "seed": %s}' % ("9" * 1000)), raw=True)
    assert r.status_code == 400 and "seed must be between 0 and" in r.json["error"]
    assert "digits" in r.json["error"] and len(r.json["error"]) < 200
    r = post(client, "/api/generate", _raw('{"name": "x", "truncation": 1%s}' % ("0" * 400)), raw=True)
    assert r.status_code == 400 and "truncation must be between" in r.json["error"]
    for query, message in (("seed=--1", "seed must be an integer, got '--1'"),
                           ("seed=" + "1" * 5000, "seed is out of range: a number of 5000 digits"),
                           ("seed=%C2%B2", "seed must be an integer"),
                           ("seed=1&stage=--2", "stage must be an integer")):
        r = client.get("/api/image.png?name=x&" + query)
        assert r.status_code == 400 and message in r.json["error"], (query, r.json)
    r = post(client, "/api/generate", b'{"\\ud800": 1, "name": "x"}', raw=True)
    assert r.status_code == 400 and "unknown field(s): \\ud800" in r.json["error"]
    r = post(client, "/api/generate", {"name": "\u200d"})
    assert r.status_code == 400 and "no visible character" in r.json["error"]


def test_an_internal_error_does_not_reach_the_client(app, monkeypatch):
    service = app.extensions["stackgan"]

    def broken(*a, **k):
        raise ZeroDivisionError("secret detail /home/user/model")

    monkeypatch.setattr(service, "call", broken)
    r = post(app.test_client(), "/api/generate", {"name": "月見そば", "n": 1, "seed": 3})
    assert r.status_code == 500 and r.json["error"].startswith("internal error")
    assert "ZeroDivision" not in r.get_data(as_text=True) and "secret" not in r.get_data(as_text=True)


def test_serve_refuses_an_oversized_body_before_reading_it(app):
    """waitress answers 413 from the Content-Length alone: the 100 MB body is never sent here (with
    waitress's default limit of 1 GiB it would wait for, and spool, the whole body)."""
    import socket

    from stackgan.commands.serve_cmd import make_server

    srv = make_server(app, "127.0.0.1", 0, 2)
    thread = threading.Thread(target=_run_until_closed, args=(srv,), daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", srv.effective_port), timeout=10) as sock:
            sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 104857600\r\n\r\n{")
            answer = sock.recv(4096)  # times out (fails) if the server waits for the body
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    finally:
        srv.close()
        thread.join(timeout=10)


def test_slow_connections_hold_no_worker_and_are_closed_after_the_channel_timeout(app):
    """20 connections that send half a request and stall, 4 clients generating in a loop: the health
    route still answers every time (the stalled requests never reach a worker thread), and waitress
    drops the stalled connections after --channel-timeout. (Timings: scripts/load_serve.py.)"""
    import http.client
    import socket
    import time

    from stackgan.commands.serve_cmd import make_server

    srv = make_server(app, "127.0.0.1", 0, 2, channel_timeout=2, connection_limit=100)
    port = srv.effective_port
    thread = threading.Thread(target=_run_until_closed, args=(srv,), daemon=True)
    thread.start()
    slow = []
    stop = threading.Event()
    answers: list[int] = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            conn.request("POST", "/api/generate", body=json.dumps({"name": "月見そば", "n": 4, "seed": 1}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            answers.append(r.status)
        conn.close()

    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: appl")  # and nothing more
            slow.append(s)
        loaders = [threading.Thread(target=client, daemon=True) for _ in range(4)]
        for t in loaders:
            t.start()
        health = []
        for _ in range(10):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # fails the test if it hangs
            conn.request("GET", "/api/health")
            r = conn.getresponse()
            health.append((r.status, json.loads(r.read())["status"]))
            conn.close()
        stop.set()
        for t in loaders:
            t.join(timeout=30)
        assert health == [(200, "ok")] * 10 and answers and set(answers) == {200}
        time.sleep(4.5)  # > channel_timeout + waitress's cleanup pass
        closed = 0
        for s in slow:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 0
        assert closed == 20, f"only {closed} of 20 stalled connections were closed"
    finally:
        stop.set()
        for s in slow:
            s.close()
        srv.close()
        thread.join(timeout=10)


def test_the_model_lock_serves_the_smallest_waiter_first_and_refuses_beyond_its_queue():
    import time

    from stackgan.web.app import ServerBusy, SmallestFirstLock

    lock = SmallestFirstLock(max_waiting=3)
    order: list[float] = []
    started, release = threading.Event(), threading.Event()

    def holder():
        with lock.hold(0):
            started.set()
            release.wait(30)  # the others queue up meanwhile

    def waiter(cost):
        with lock.hold(cost):
            order.append(cost)

    t0 = threading.Thread(target=holder)
    t0.start()
    assert started.wait(30)
    waiters = []
    for cost in (16, 12, 1):  # arrive big first
        waiters.append(threading.Thread(target=waiter, args=(cost,)))
        waiters[-1].start()
        deadline = time.monotonic() + 30
        while len(lock._waiting) < len(waiters) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(lock._waiting) == 3
    with pytest.raises(ServerBusy):  # the queue (3) is full
        with lock.hold(1):
            pass
    release.set()
    for t in [t0, *waiters]:
        t.join(30)
    assert order == [1, 12, 16]
    with lock.hold(5):  # free again
        pass


def test_a_large_request_is_drawn_in_turns_with_the_same_pictures_and_busy_is_a_503(app):
    from stackgan.web.app import CHUNK

    service = app.extensions["stackgan"]
    n = CHUNK * 2 + 1
    whole = service.pipeline.generate("月見そば", n, seed=7)
    turns = service.generate("月見そば", n, seed=7)
    assert turns.seeds == whole.seeds  # the same pictures, up to float rounding (the batch is smaller)
    torch.testing.assert_close(turns.stage1, whole.stage1, atol=1e-4, rtol=0)
    assert (turns.stage2 is None) == (whole.stage2 is None)
    if whole.stage2 is not None:
        torch.testing.assert_close(turns.stage2, whole.stage2, atol=1e-4, rtol=0)
    saved = service.lock.max_waiting
    service.lock.max_waiting = 0
    try:
        r = app.test_client().post("/api/generate", json={"name": "月見そば", "n": 1, "seed": 1})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1" and "busy" in r.json["error"]
        assert app.test_client().get("/api/health").status_code == 200  # health never waits for the model
    finally:
        service.lock.max_waiting = saved
