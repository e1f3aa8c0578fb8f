"""The menu evaluator for invented names: the attribute reader trained on renders of every combination
(tiny settings, real code paths), its cache, `--invented FILE` and both ceilings in the reports."""

from __future__ import annotations

import json

import pytest
import torch

from stackgan.metrics.reader import (ReaderConfig, all_combos, combo_targets, reader_path, render_combos,
                                     train_reader, vocabulary)
from stackgan.metrics.realdata import read_name_list
from conftest import one_thread, use_hash_encoder  # noqa: E402

# the reader the CLI builds from the TINY_CLI options below (evaluate at --image-size 16)
TINY = ReaderConfig(renders=2, heldout=1, draw_size=16, image_size=16, input_size=16, width=8, epochs=2)
TINY_CLI = ["--reader-renders", "2", "--reader-heldout", "1", "--reader-draw-size", "16", "--reader-size", "16",
            "--reader-width", "8", "--reader-epochs", "2"]


@pytest.fixture(scope="module")
def tiny_reader(tmp_path_factory):
    """The reader trained on 700 x 2 tiny renders (held out: 700 x 1), cached in a folder of its own."""
    cache = tmp_path_factory.mktemp("cache")
    with one_thread():
        reader = train_reader(TINY, cache=cache, progress=False)
    return reader, cache


def test_the_vocabulary_has_700_combinations():
    combos = all_combos()
    assert len(combos) == len(set(combos)) == 10 * 14 * 5
    vocab = vocabulary()
    assert [len(vocab[h]) for h in ("base", "topping", "modifier")] == [10, 14, 5]
    assert "-" in vocab["topping"] and "-" in vocab["modifier"] and "-" not in vocab["base"]
    y = combo_targets(combos[:3], 2)
    assert y["base"].tolist() == [vocab["base"].index(combos[0][0])] * 6
    assert y["topping"].tolist()[::2] == [vocab["topping"].index(c[1] or "-") for c in combos[:3]]
    assert y["modifier"].tolist()[::2] == [vocab["modifier"].index(c[2] or "-") for c in combos[:3]]


def test_renders_are_deterministic_and_follow_the_seed():
    combos = [("うどん", "サーモン", None), ("そば", None, "冷やし")]
    a = render_combos(combos, 2, seed=101, draw_size=32, image_size=16, workers=1, progress=False)
    assert a.dtype == torch.uint8 and a.shape == (4, 3, 16, 16)
    b = render_combos(combos, 2, seed=101, draw_size=32, image_size=16, workers=1, progress=False)
    assert torch.equal(a, b)
    c = render_combos(combos, 2, seed=102, draw_size=32, image_size=16, workers=1, progress=False)
    assert not torch.equal(a, c)  # the held-out seed draws other pictures
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], a[2])


@pytest.mark.slow
def test_reader_trains_on_every_combination_and_its_cache_is_reused(tiny_reader, monkeypatch):
    import stackgan.metrics.reader as rd

    reader, cache = tiny_reader
    m = reader.metrics
    assert m["combinations"] == 700 and m["train_images"] == 700 * 2 and m["heldout_images"] == 700
    assert {h: len(c) for h, c in reader.classes.items()} == {"base": 10, "topping": 14, "modifier": 5}
    assert m["reader"]["blur"] == TINY.blur > 0  # trained with the blur
    acc = m["heldout_accuracy"]
    assert set(acc) == {"base", "topping", "modifier", "all"}
    assert acc["base"] > 0.2, acc  # 10 bases: chance is 0.1, and the bases differ at a glance
    assert reader.path == reader_path(TINY, cache) and reader.path.is_file()
    assert len(list((cache / "renders").glob("reader-*.safetensors"))) == 2  # train and held-out sets

    def no_rendering(*a, **k):
        raise AssertionError("rendered again")

    monkeypatch.setattr(rd, "render_combos", no_rendering)
    again = train_reader(TINY, cache=cache, progress=False)  # the trained reader, from the cache
    assert again.path == reader.path and again.metrics == m
    for k, v in reader.net.state_dict().items():
        assert torch.equal(v.cpu(), again.net.state_dict()[k].cpu())
    # other training settings: another reader, trained on the cached renders (nothing rendered)
    other = train_reader(ReaderConfig(**{**TINY.__dict__, "epochs": 1}), cache=cache, progress=False)
    assert other.path != reader.path and other.metrics["train_images"] == 700 * 2
    # other render settings are another render set: they would render
    with pytest.raises(AssertionError, match="rendered again"):
        train_reader(ReaderConfig(**{**TINY.__dict__, "renders": 3}), cache=cache, progress=False)


def test_reader_refuses_bad_settings(tmp_path):
    from stackgan.errors import DataError

    with pytest.raises(DataError, match="at least 1 training"):
        train_reader(ReaderConfig(renders=0), cache=tmp_path)
    with pytest.raises(DataError, match="at least 16 px"):
        train_reader(ReaderConfig(draw_size=8), cache=tmp_path)
    with pytest.raises(DataError, match="blur"):
        train_reader(ReaderConfig(blur=-1), cache=tmp_path)
    with pytest.raises(DataError, match="blur"):
        train_reader(ReaderConfig(blur_p=1.5), cache=tmp_path)


def test_reader_blur_softens_its_training_batches_and_is_part_of_its_key():
    from stackgan.metrics.classifier import Classifier
    from stackgan.metrics.reader import load_reader_config, reader_key

    assert ReaderConfig(blur=0).augmenter() is None and ReaderConfig(blur_p=0).augmenter() is None
    torch.manual_seed(0)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    soft = ReaderConfig(blur=1.2, blur_p=1.0).augmenter()(x)
    assert soft.shape == x.shape
    edges = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert edges(soft) < 0.7 * edges(x)  # every picture blurred: its neighbouring pixels nearer
    assert reader_key(ReaderConfig()) != reader_key(ReaderConfig(blur=0))
    clf = Classifier.__new__(Classifier)
    clf.metrics = {"reader": {k: v for k, v in ReaderConfig().__dict__.items() if k not in ("blur", "blur_p")}}
    assert load_reader_config(clf).blur == 0.0  # a reader saved before the blur existed had none
    clf.metrics = {"reader": dict(ReaderConfig().__dict__)}
    assert load_reader_config(clf) == ReaderConfig()


def test_name_list_sorts_scorable_from_not_scorable_names_with_reasons(tmp_path):
    only_names = tmp_path / "names.tsv"
    only_names.write_text("name\nサーモンうどん\nえび天ラーメン\n抹茶チーズケーキ\nカツ丼\nサーモンうどん\n"
                          "とんかつカレー\n激辛わかめ豚骨ラーメン\nいくらうどん\n", encoding="utf-8")
    ok, bad = read_name_list(only_names, {"カツ丼"})
    assert ok == [("サーモンうどん", {"base": "うどん", "topping": "サーモン", "modifier": "-"}),
                  ("とんかつカレー", {"base": "カレー", "topping": "カツ", "modifier": "-"}),  # an accepted spelling
                  ("激辛わかめ豚骨ラーメン", {"base": "豚骨ラーメン", "topping": "わかめ", "modifier": "激辛"})]
    why = {b["name"]: (b["line"], b["reason"]) for b in bad}
    assert set(why) == {"えび天ラーメン", "抹茶チーズケーキ", "カツ丼", "サーモンうどん", "いくらうどん"}
    assert "does not end with a base" in why["えび天ラーメン"][1]
    assert "does not end with a base" in why["抹茶チーズケーキ"][1]
    assert why["カツ丼"] == (5, "a training name of the data set, not an invented one (scored with the training "
                                "names)")
    assert why["サーモンうどん"] == (6, "listed before (line 2)")
    assert "'いくら' before the base うどん" in why["いくらうどん"][1]

    with_parts = tmp_path / "invented.tsv"
    with_parts.write_text("name\tbase\ttopping\tmodifier\n月見カレー\tカレー\t月見\t-\n特製丼\t丼\tいくら\t-\n"
                          "まかない丼\t丼\tカツ\t大盛り\nサーモンそば\tうどん\tサーモン\t-\n", encoding="utf-8")
    ok, bad = read_name_list(with_parts)
    assert [n for n, _ in ok] == ["月見カレー", "まかない丼"]  # a name of its own, parts from the columns
    assert ok[1][1] == {"base": "丼", "topping": "カツ", "modifier": "大盛り"}
    reasons = {b["name"]: b["reason"] for b in bad}
    assert reasons["特製丼"] == "not in the menu vocabulary: topping 'いくら'"
    assert "the columns say - + サーモン + うどん" in reasons["サーモンそば"]

    from stackgan.errors import DataError

    (tmp_path / "bad.tsv").write_text("dish\nサーモンうどん\n", encoding="utf-8")
    with pytest.raises(DataError, match="header must start with 'name'"):
        read_name_list(tmp_path / "bad.tsv")
    with pytest.raises(DataError, match="not found"):
        read_name_list(tmp_path / "missing.tsv")


# -- end to end: `stackgan evaluate --invented` and `stackgan compare --invented` on a tiny menu -------------
@pytest.fixture
def offline(monkeypatch, tiny_reader):
    with one_thread():
        yield use_hash_encoder(monkeypatch, tiny_reader[1])  # the tiny reader's cache: it is reused


SMALL = ["--clf-size", "16", "--clf-width", "8", "--clf-epochs", "2", "--n-per-name", "2", "--kid-subsets", "5",
         "--no-progress", "--device", "cpu", "--image-size", "16", *TINY_CLI]


@pytest.mark.slow
def test_evaluate_and_compare_score_an_invented_list_with_the_reader(tmp_path, offline, tiny_reader, capsys,
                                                                     monkeypatch):
    import stackgan.metrics.reader as rd
    from stackgan.cli import main
    from stackgan.menu.make import make_menu

    reader, _ = tiny_reader
    menu = tmp_path / "menu"
    make_menu(menu, per_name=5, size=32, names=["カツ丼", "きつねうどん", "味噌ラーメン", "チャーハン", "唐揚げ定食"])
    run = tmp_path / "sg"
    assert main(["train", "--data", str(menu), "--out", str(run), "--image-size", "16", "--ngf", "8", "--ndf", "8",
                 "--c-dim", "8", "--z-dim", "8", "--batch-size", "8", "--max-steps", "2", "--ckpt-every", "2",
                 "--no-progress", "--grid-rows", "2", "--grid-cols", "2", "--device", "cpu"]) == 0
    mine = tmp_path / "mine.tsv"
    mine.write_text("name\nサーモンうどん\n月見チャーハン\nえび天ラーメン\n", encoding="utf-8")
    capsys.readouterr()
    monkeypatch.setattr(rd, "render_combos", lambda *a, **k: pytest.fail("the cached reader was not reused"))
    rc = main(["evaluate", str(run), "--out", str(tmp_path / "ev"), "--invented", str(mine), "--checkpoints", "0",
               "--dprobe-steps", "0", "--no-write-run-metrics", *SMALL])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "えび天ラーメン: not a menu name" in out.out
    res = json.loads((tmp_path / "ev" / "eval.json").read_text(encoding="utf-8"))
    inv = res["invented_names"]
    assert inv["source"] == str(mine) and inv["names"] == 2
    assert [(b["line"], b["name"]) for b in inv["not_scorable"]] == [(4, "えび天ラーメン")]
    assert "does not end with a base" in inv["not_scorable"][0]["reason"]
    # both instruments, with both ceilings side by side; the reader is the cached tiny one
    rdr, clf = res["reader"], res["classifier"]
    assert rdr["cache"] == str(reader.path) and rdr["train_images"] == 1400
    for who in (rdr, clf):
        assert set(who["heldout_accuracy"]) == set(who["invented_accuracy"]) == {"base", "topping", "modifier", "all"}
        assert who["invented_images"] == 2 * 8 and who["heldout_images"] == res["data"]["heldout"]
    assert "faithfulness" in rdr["used_for"] and "faithfulness" not in clf["used_for"]
    assert rdr["renders"]["blur"] == TINY.blur and "blurred at random in training" in rdr["trained_on"]
    from stackgan.metrics.runeval import _reader_words

    assert _reader_words(rdr) == "attribute reader (renders of every combination, blurred up to 1.2 px in training)"
    assert _reader_words({"renders": {**rdr["renders"], "blur": 0.0}}) == "attribute reader (renders of every combination)"
    (label, r), = res["models"].items()
    assert [p["name"] for p in r["faithfulness_invented"]["per_name"]] == ["サーモンうどん", "月見チャーハン"]
    assert r["faithfulness_invented"]["unseen_parts"] == 0  # the reader knows every part
    md = (tmp_path / "ev" / "eval.md").read_text(encoding="utf-8")
    assert "attribute reader" in md and "| instrument | training names (held-out photos) |" in md
    assert "**Not scorable**" in md and "line 4: えび天ラーメン" in md
    ceiling = f"ceiling {rdr['invented_accuracy']['topping']:.3f}"
    assert f"topping accuracy, invented names ({ceiling})" in md  # the rows quote the reader's ceilings
    assert not (run / "metrics.json").exists()

    # --no-reader: the photo classifier reads faithfulness, as before; no reader section
    rc = main(["evaluate", str(run), "--out", str(tmp_path / "ev-old"), "--no-reader", "--checkpoints", "0",
               "--dprobe-steps", "0", *SMALL])
    assert rc == 0, capsys.readouterr().err
    old = json.loads((tmp_path / "ev-old" / "eval.json").read_text(encoding="utf-8"))
    assert "reader" not in old and old["invented_names"]["names"] == 30  # the menu's own invented.tsv
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8"))["faithfulness_read_by"].startswith(
        "in-domain classifier")

    # compare takes the same option
    capsys.readouterr()
    rc = main(["compare", "--out", str(tmp_path / "cmp"), "--models", "no-ca", "--stackgan", str(run),
               "--invented", str(mine), *SMALL])
    assert rc == 0, capsys.readouterr().err
    cmp = json.loads((tmp_path / "cmp" / "report" / "compare.json").read_text(encoding="utf-8"))
    assert cmp["invented_names"]["names"] == 2 and cmp["reader"]["cache"] == str(reader.path)
    assert cmp["models"]["no-ca"]["faithfulness_invented"]["names"] == 2

    # a missing list fails before any work
    rc = main(["evaluate", str(run), "--out", str(tmp_path / "ev-x"), "--invented", str(tmp_path / "nope.tsv"),
               *SMALL])
    assert rc == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "ev-x").exists()
