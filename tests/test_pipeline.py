"""StackGANPipeline: the diffusers-style API (from_pretrained, __call__, save_pretrained) on tiny runs
and on the shipped model, and the README's example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from PIL import Image

import stackgan
from stackgan.errors import UserError
from stackgan.inference import load_pipeline
from stackgan.model_card import train_command
from stackgan.pipeline import StackGANPipeline, StackGANPipelineOutput, to_pil

REPO = Path(__file__).resolve().parents[1]


def card_header(card: str) -> dict:
    """The YAML header of a model card (flat keys and lists: all a card has)."""
    lines = card.split("\n")
    assert lines[0] == "---", "a model card starts with its YAML header"
    out: dict = {}
    key = None
    for line in lines[1:lines.index("---", 1)]:
        if line.startswith("- ") and key:
            out[key].append(line[2:])
        else:
            key, _, value = line.partition(":")
            out[key] = value.strip() or []
    return out


def test_call_gives_pil_pictures_of_both_stages_and_their_seeds(stackgan_runs):
    pipe = stackgan.StackGANPipeline.from_pretrained(stackgan_runs.s2)
    out = pipe(stackgan_runs.names[1], num_images=3, seed=5)
    assert isinstance(out, StackGANPipelineOutput) and out.seeds == [5, 6, 7]
    assert [im.size for im in out.images] == [(32, 32)] * 3 and [im.size for im in out.stage1] == [(16, 16)] * 3
    assert all(im.mode == "RGB" for im in out.images + out.stage1)
    # the same pictures as the inference API, picture i from seed + i alone
    ref = load_pipeline(stackgan_runs.s2).generate(stackgan_runs.names[1], n=3, seed=5)
    assert [a.tobytes() for a in out.images] == [a.tobytes() for a in to_pil(ref.images)]
    assert out.images[2].tobytes() == pipe(stackgan_runs.names[1], num_images=1, seed=7).images[0].tobytes()
    one = StackGANPipeline.from_pretrained(stackgan_runs.s1)(stackgan_runs.names[0], num_images=2, seed=1)
    assert [im.size for im in one.images] == [(16, 16)] * 2  # stage I only: images are stage I's
    assert [a.tobytes() for a in one.images] == [a.tobytes() for a in one.stage1]
    v = pipe.variations(stackgan_runs.names[0], seed=3, num_images=4, sigma=0.5)
    assert len(v.images) == 4
    e = pipe.explore(stackgan_runs.names[0], seed=3, offsets=[1.0, 0.0, 0.0, 0.0])
    assert len(e.images) == 1
    assert pipe.neighbours(stackgan_runs.names[2], k=2)[0][0] == stackgan_runs.names[2]
    with pytest.raises(UserError, match="n must be"):
        pipe(stackgan_runs.names[0], num_images=0)


def test_to_pil_maps_the_range_ends():
    ims = to_pil(torch.stack([torch.full((3, 2, 2), -1.0), torch.full((3, 2, 2), 1.0)]))
    assert ims[0].getpixel((0, 0)) == (0, 0, 0) and ims[1].getpixel((1, 1)) == (255, 255, 255)


def test_save_pretrained_writes_a_folder_that_loads_the_same_pictures(stackgan_runs, tmp_path):
    pipe = StackGANPipeline.from_pretrained(stackgan_runs.s2)
    out = pipe.save_pretrained(tmp_path / "model")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["G_ema.safetensors", "README.md", "config.json", "embeddings.safetensors", "names.json",
                     "stage1/G_ema.safetensors", "stage1/config.json"]
    card = (out / "README.md").read_text(encoding="utf-8")
    head = card_header(card)
    assert head["library_name"] == "stackgan" and head["language"] == ["ja"] and "text-to-image" in head["tags"]
    assert head["license"] == "mit" and "## Training recipe" in card and "## Intended use and limitations" in card
    assert "stackgan train --stage 1 --data" in card and "--stage 2" in card  # both stages' commands
    assert "no metrics" in card  # the tiny run was never scored
    again = StackGANPipeline.from_pretrained(out)
    a, b = pipe("味噌ラーメン", num_images=2, seed=9), again("味噌ラーメン", num_images=2, seed=9)
    assert [x.tobytes() for x in a.images] == [x.tobytes() for x in b.images]
    assert again.names == pipe.names and again.info()["stages"] == 2
    # `stackgan serve --checkpoint FOLDER` loads it
    from stackgan.web.app import load_model

    assert load_model(str(out)).pipeline.names == pipe.names
    # saving again replaces the model folder; a folder holding anything else is refused, untouched
    half = pipe.save_pretrained(out, fp16=True)
    assert StackGANPipeline.from_pretrained(half)("味噌ラーメン", num_images=1, seed=9).images[0].size == (32, 32)
    with pytest.raises(UserError, match="holds other files"):
        pipe.save_pretrained(stackgan_runs.s2)  # a run folder: its checkpoints must not be deleted
    assert list(stackgan_runs.s2.glob("ckpt-*.pt"))
    assert not (tmp_path / "model.tmp").exists()


def test_from_pretrained_without_a_path_is_the_shipped_model(monkeypatch):
    monkeypatch.delenv("STACKGAN_CHECKPOINT", raising=False)
    pipe = StackGANPipeline.from_pretrained()
    assert pipe.pipeline.folder == REPO / "models" / "default" and len(pipe.names) == 50


def test_the_readme_example_runs(tmp_path, monkeypatch):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- python-api -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README: the Python API example (```python after <!-- python-api -->) is missing"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").symlink_to(REPO / "models")
    scope: dict = {}
    exec(compile(m.group(1), "README.md", "exec"), scope)  # noqa: S102 (the project's own README)
    assert isinstance(scope["out"].images[0], Image.Image)
    assert (tmp_path / "my-model" / "G_ema.safetensors").is_file()


def test_train_command_names_the_options_that_differ_from_the_defaults():
    from stackgan.stackgan_config import StackGANConfig

    cfg = StackGANConfig(ngf=32, ndf=32, batch_size=32, max_steps=6000, diffaugment="translation", ca=False,
                         kl=0.5, out="runs/x", progress=False).validate()
    cmd = train_command(cfg)
    assert cmd.startswith("stackgan train --stage 1 --data data/menu")
    for part in ("--ngf 32", "--batch-size 32", "--max-steps 6000", "--diffaugment translation", "--no-ca", "--kl 0.5"):
        assert part in cmd
    assert "--out" not in cmd and "--progress" not in cmd and "--lr-g" not in cmd  # bookkeeping and defaults


def test_the_shipped_model_card_matches_its_metrics(tmp_path):
    pipe = StackGANPipeline.from_pretrained(REPO / "models" / "default")
    card = (pipe.save_pretrained(tmp_path / "m") / "README.md").read_text(encoding="utf-8")
    m = pipe.pipeline.extra["metrics"]
    assert f"{m['fid_in_domain']:.3f}" in card and f"(floor {m['fid_floor']:.3f})" in card
    assert "`data/menu`: " in card and "50 dish names" in card


def test_the_model_card_shows_the_detail_fid_when_measured():
    from stackgan.model_card import _metrics_lines

    m = {"fid_in_domain": 3.26, "fid_floor": 1.77}
    assert not any("detail" in line for line in _metrics_lines(m))
    lines = _metrics_lines({**m, "fid_detail": 8.19, "fid_detail_floor": 1.6})
    assert "| FID in detail (crops at full size), in-domain classifier features | 8.190 (floor 1.600) |" in lines


def test_the_model_card_shows_the_spectrum_when_measured():
    from stackgan.model_card import _metrics_lines

    m = {"fid_in_domain": 3.26, "fid_floor": 1.77}
    assert not any("spectrum" in line for line in _metrics_lines(m))
    lines = _metrics_lines({**m, "spectrum_distance": 0.069, "spectrum_fine": 0.099, "spectrum_floor_distance": 0.007})
    assert ("| power spectrum against held-out photos, log10 per ring: mean distance; fine half (above 0 grain, "
            "below 0 blur) | 0.069 (floor 0.007); +0.099 |") in lines


def test_the_model_card_shows_the_patches_when_measured():
    from stackgan.model_card import _metrics_lines

    m = {"fid_in_domain": 3.26, "fid_floor": 1.77}
    assert not any("patches" in line for line in _metrics_lines(m))
    lines = _metrics_lines({**m, "patch_precision": 0.791, "patch_recall": 0.76, "patch_floor_precision": 0.818,
                            "patch_floor_recall": 0.831})
    assert ("| 8 px patches against held-out photos: precision (under the floor: strokes the photos never have); "
            "recall | 0.791 (floor 0.818); 0.760 (floor 0.831) |") in lines
