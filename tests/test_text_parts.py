"""The parts code of dish names (stackgan.text.parts): vocabulary, parsing, codes, attributes.tsv."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stackgan.data.names import read_attributes_tsv
from stackgan.errors import DataError
from stackgan.text.parts import PartVocab, SentenceFit, names_parts

MENU = Path(__file__).resolve().parents[1] / "data" / "menu"


@pytest.fixture(scope="module")
def menu_vocab() -> tuple[PartVocab, dict]:
    rows = read_attributes_tsv(MENU / "attributes.tsv")
    names = sorted({r["name"] for r in rows})
    table = names_parts(rows, names)
    return PartVocab.from_table(table), table


def _as_parsed(parts: dict) -> dict:
    return {k: (None if v in ("", "-") else v) for k, v in parts.items()}


def test_the_menu_vocabulary_reads_every_training_and_invented_name_as_its_table_does(menu_vocab):
    vocab, table = menu_vocab
    assert vocab.slots == ("base", "topping", "modifier")
    assert vocab.sizes == (11, 14, 5)  # 10 bases, 13 toppings, 4 modifiers, each + "none"
    for name, parts in table.items():
        assert vocab.parse(name) == _as_parsed(parts), name
    lines = (MENU / "invented.tsv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(lines) >= 20
    for line in lines:
        name, base, topping, modifier = line.split("\t")
        assert vocab.parse(name) == _as_parsed({"base": base, "topping": topping, "modifier": modifier}), name


def test_unknown_words_leave_their_part_unknown_and_a_full_reading_means_none(menu_vocab):
    vocab, _ = menu_vocab
    assert vocab.parse("サーモンうどん") == {"base": "うどん", "topping": "サーモン", "modifier": None}
    assert vocab.parse("ｻｰﾓﾝ うどん") == vocab.parse("サーモンうどん")  # NFKC, spaces
    # 「とんかつ」 is no value of the table: the topping and modifier cannot be told apart from "none"
    assert vocab.parse("とんかつ定食") == {"base": "定食", "topping": "?", "modifier": "?"}
    assert vocab.parse("抹茶チーズケーキ") == {"base": "?", "topping": "?", "modifier": "?"}
    assert vocab.parse("えび天ラーメン") == {"base": "?", "topping": "えび天", "modifier": "?"}
    assert vocab.parse("味噌ラーメン")["base"] == "味噌ラーメン"  # the longest value wins over a shorter one
    assert vocab.describe("ピリ辛サーモン丼") == "base=丼 topping=サーモン modifier=ピリ辛"


def test_codes_are_one_hot_per_part_with_none_and_zeros_for_unknown(menu_vocab):
    vocab, table = menu_vocab
    b, t, m = vocab.values
    code = vocab.code(vocab.parse("サーモンうどん"))
    assert code.shape == (vocab.dim,) and code.sum() == 3
    assert code[b.index("うどん")] == 1
    assert code[11 + t.index("サーモン")] == 1
    assert code[11 + 14 + 4] == 1  # the modifier's "none"
    unknown = vocab.code(vocab.parse("とんかつ定食"))
    assert unknown.sum() == 1 and unknown[b.index("定食")] == 1  # topping and modifier blocks all zero
    assert vocab.code(vocab.parse("抹茶チーズケーキ")).sum() == 0
    # training names take the table's parts; others are parsed
    codes = vocab.codes(["カツカレー", "サーモンうどん"], table)
    assert torch.equal(codes[0], vocab.code(table["カツカレー"]))
    assert torch.equal(codes[1], code)
    assert vocab.codes([]).shape == (0, vocab.dim)


def test_the_vocabulary_round_trips_through_json_and_refuses_nonsense(menu_vocab):
    vocab, _ = menu_vocab
    assert PartVocab.from_json(vocab.to_json()) == vocab
    with pytest.raises(DataError, match="slots"):
        PartVocab.from_json({"values": []})
    with pytest.raises(DataError, match="at least one part column"):
        PartVocab((), ())
    with pytest.raises(DataError, match="no values"):
        PartVocab(("base",), ((),))


def test_names_parts_checks_the_table():
    rows = [{"file": "a.png", "name": "カツカレー", "base": "カレー", "topping": "カツ", "modifier": "-"},
            {"file": "b.png", "name": "きつねうどん", "base": "うどん", "topping": "きつね", "modifier": ""}]
    table = names_parts(rows, ["カツカレー", "きつねうどん"])
    assert set(table["カツカレー"]) == {"base", "topping"}  # a column no name fills is dropped
    with pytest.raises(DataError, match="no row for 1 training name"):
        names_parts(rows, ["カツカレー", "月見そば"])
    clash = rows + [{"file": "c.png", "name": "カツカレー", "base": "丼", "topping": "カツ", "modifier": "-"}]
    with pytest.raises(DataError, match="two different part lists"):
        names_parts(clash, ["カツカレー"])
    with pytest.raises(DataError, match="no part columns"):
        names_parts([{"file": "a.png", "name": "カツカレー"}], ["カツカレー"])
    with pytest.raises(DataError, match="fills no part column"):
        names_parts([{"file": "a.png", "name": "x", "base": "-"}], ["x"])


def test_the_sentence_fit_predicts_a_name_from_its_parts():
    torch.manual_seed(0)
    parts = torch.zeros(6, 5)  # two parts: 3 values, 2 values
    for i, (a, b) in enumerate([(0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4)]):
        parts[i, a] = parts[i, b] = 1
    basis = torch.randn(5, 8)
    sentences = parts @ basis + 0.5
    lengths = sentences.norm(dim=1).mean()
    fit = SentenceFit(torch.cat([sentences, parts], 1), text_dim=8, ridge=1e-6)
    got = fit(parts)
    # vectors linear in their parts: the fit gives each name's direction back, at the names' mean length
    assert torch.allclose(torch.nn.functional.cosine_similarity(got, sentences), torch.ones(6), atol=1e-4)
    assert torch.allclose(got.norm(dim=1), torch.full((6,), float(lengths)), atol=1e-4)
    # a combination no row has: still the sum of its parts' shares
    new = torch.zeros(1, 5)
    new[0, 2] = new[0, 4] = 1
    want = new @ basis + 0.5
    assert float(torch.nn.functional.cosine_similarity(fit(new), want)) > 0.999
    assert fit(parts.to(torch.bfloat16)).dtype == torch.bfloat16
    with pytest.raises(DataError, match="parts code after 8"):
        SentenceFit(sentences, text_dim=8)
    with pytest.raises(DataError, match="at least two"):
        SentenceFit(torch.cat([sentences, parts], 1)[:1], text_dim=8)
