"""The shipped model (models/default): small, fp16, complete, loads on CPU, draws any name, and
carries the metrics that /api/model and the README quote."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from stackgan.inference import load_pipeline

MODEL = Path(__file__).resolve().parents[1] / "models" / "default"
README = MODEL.parents[1] / "README.md"


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return load_pipeline(MODEL)


def test_the_model_folder_is_small_and_holds_only_inference_files():
    files = [p for p in MODEL.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 40e6
    assert not [p for p in files if p.suffix in (".pt", ".pth", ".ckpt")]
    for weights in (MODEL / "G_ema.safetensors", MODEL / "stage1" / "G_ema.safetensors"):
        with safe_open(weights, "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}
    for text in (MODEL / "config.json", MODEL / "stage1" / "config.json", MODEL / "names.json", MODEL / "metrics.json"):
        body = text.read_text(encoding="utf-8")
        assert not re.search(r'"/(work|home|tmp|root|Users)/', body), f"{text} holds a machine path"


def test_it_is_the_two_stage_model_trained_on_the_embedded_menu(pipe):
    info = pipe.info()
    assert info["stages"] == 2 and info["stage1_size"] == 64 and info["stage2_size"] in (128, 256)
    assert info["text_encoder"] == "e5" and info["emb_dim"] == 384
    assert info["training"]["data"] == "data/menu" and info["training"]["n_names"] == 50
    assert "カツ丼" in pipe.names


def test_it_draws_training_and_invented_names_deterministically(pipe):
    a = pipe.generate(pipe.names[0], 2, seed=7)
    b = pipe.generate(pipe.names[0], 2, seed=7)
    assert torch.equal(a.images, b.images) and a.stage1.shape[-1] == 64
    assert a.images.isfinite().all() and a.images.std() > 0.05  # a picture, not a flat colour
    assert not torch.allclose(a.images[0], a.images[1])  # two seeds, two pictures


def test_its_metrics_are_the_ones_the_readme_quotes(pipe):
    m = pipe.info()["metrics"]
    assert m["scored"].startswith("stackgan-stage2") and m["data"] == "data/menu"
    ft, fi = m["faithfulness_train"], m["faithfulness_invented"]
    # the README's results section, not a table of some earlier stop that shares a figure
    readme = README.read_text(encoding="utf-8").split("## Results: the shipped model", 1)[1].split("\n### ", 1)[0]
    for value in (ft["base"], ft["topping"], fi["base"], fi["topping"]):
        assert f"{value:.3f}" in readme, f"README's results do not quote {value:.3f} from models/default/metrics.json"
    assert f"{m['fid_in_domain']:.2f}" in readme and f"{m['fid_floor']:.2f}" in readme


def test_far_names_are_told_apart_from_the_menu(pipe):
    from stackgan.web.app import EXAMPLES

    threshold = pipe.familiar_threshold()
    e = torch.nn.functional.normalize(pipe.emb, dim=1)
    sims = e @ e.T
    sims.fill_diagonal_(-2)
    assert threshold == pytest.approx(float(sims.max(1).values.min()))
    for name in ("抹茶チーズケーキ", "ハンバーガー"):
        f = pipe.familiarity(name)
        assert f["far"] and f["similarity"] < f["threshold"] and f["nearest"] in pipe.names, name
    for name in ("カツ丼", "ピリ辛サーモン丼", "冷やし月見そば", *EXAMPLES):  # the page's chips draw well
        assert not pipe.familiarity(name)["far"], name


def test_its_model_card_is_written_from_its_own_config_and_metrics(pipe):
    card = (MODEL / "README.md").read_text(encoding="utf-8")
    assert card == pipe.model_card(), "models/default/README.md drifted: re-export with scripts/export_model.py"
    assert card.startswith("---\nlicense: mit\nlibrary_name: stackgan\n")
