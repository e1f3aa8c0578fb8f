"""`stackgan generate`: samples and a grid from DCGAN checkpoints; the StackGAN delegation."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from stackgan.cli import main
from stackgan.train.dcgan import DCGANConfig, train_dcgan
from conftest import make_photos  # noqa: E402




pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: one thread is faster


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained DCGAN run folder (2 steps)."""
    base = tmp_path_factory.mktemp("gen")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKGAN_CACHE", str(base / "cache"))
        cfg = DCGANConfig(data=str(make_photos(base / "photos")), out=str(base / "run"), image_size="16",
                          batch_size=4, ngf=8, ndf=8, z_dim=12, epochs=1, device="cpu").validate()
        return train_dcgan(cfg, progress=False)


def gen(*args) -> int:
    return main(["generate", "--device", "cpu", *map(str, args)])


def pixels(path: Path) -> bytes:
    with Image.open(path) as im:
        return im.convert("RGB").tobytes()


def test_generate_writes_samples_and_grid(run, tmp_path, capsys):
    out = tmp_path / "g.png"
    assert gen("--checkpoint", run, "-n", 5, "--seed", 7, "--out", out) == 0
    files = sorted(p.name for p in (tmp_path / "g").glob("*.png"))
    assert files == [f"{i:04d}-seed{7 + i}.png" for i in range(5)]
    with Image.open(tmp_path / "g" / files[0]) as im:
        assert im.size == (16, 16)
    with Image.open(out) as grid:  # 3 columns, 2 rows, padding 2
        assert grid.size == (3 * 16 + 4 * 2, 2 * 16 + 3 * 2)
    tsv = (tmp_path / "g" / "samples.tsv").read_text(encoding="utf-8").splitlines()
    assert tsv[0] == "file\tname\tseed" and tsv[3].endswith("\t9")
    assert "wrote 5 samples" in capsys.readouterr().out
    # sample i of a run is the sample of seed + i alone, from any form of the checkpoint
    for ckpt in (run / "ckpt-000002.pt", run / "G.safetensors"):
        single = tmp_path / "one.png"
        assert gen("--checkpoint", ckpt, "-n", 1, "--seed", 9, "--out", single, "--out-dir", tmp_path / "one") == 0
        assert pixels(tmp_path / "one" / "0000-seed9.png") == pixels(tmp_path / "g" / "0002-seed9.png")
    # different seeds, different pictures
    assert pixels(tmp_path / "g" / files[0]) != pixels(tmp_path / "g" / files[1])


def test_truncation_and_variations(run, tmp_path, capsys):
    assert gen("--checkpoint", run, "-n", 3, "--truncation", 0, "--out", tmp_path / "t.png") == 0
    imgs = [pixels(p) for p in sorted((tmp_path / "t").glob("*.png"))]
    assert len(imgs) == 3 and imgs[0] == imgs[1] == imgs[2]  # z = 0 for all
    assert gen("--checkpoint", run, "-n", 1, "--seed", 4, "--out", tmp_path / "s.png") == 0
    assert gen("--checkpoint", run, "-n", 4, "--variations-of", 4, "--sigma", 0.5, "--out", tmp_path / "v.png") == 0
    var = sorted((tmp_path / "v").glob("*.png"))
    assert len(var) == 4
    assert pixels(var[0]) == pixels(tmp_path / "s" / "0000-seed4.png")  # image 0 is the original
    assert pixels(var[1]) != pixels(var[0])
    assert gen("--checkpoint", run, "-n", 1, "--parts-sentence", "parts", "--out", tmp_path / "p.png") == 2
    assert not (tmp_path / "p.png").exists()  # a DCGAN reads no names
    assert "--parts-sentence applies to a StackGAN trained with --parts" in capsys.readouterr().err


def test_generate_errors(run, tmp_path, capsys):
    assert gen("--checkpoint", run, "ピリ辛サーモン丼", "--out", tmp_path / "x.png") == 2
    assert "unconditional DCGAN" in capsys.readouterr().err
    assert gen("--checkpoint", tmp_path / "missing", "--out", tmp_path / "x.png") == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert gen("--checkpoint", run, "--out", tmp_path / "x.jpg") == 2
    assert "--out must be a .png" in capsys.readouterr().err
    assert gen("--checkpoint", run, "-n", 0) == 2
    assert "must be >= 1" in capsys.readouterr().err
    broken = tmp_path / "ckpt-000001.pt"
    broken.write_bytes(b"not a checkpoint")
    assert gen("--checkpoint", broken, "--out", tmp_path / "x.png") == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_kind": "ClassifierConfig"}))
    assert gen("--checkpoint", other, "--out", tmp_path / "x.png") == 2
    assert "not a DCGAN or StackGAN generator" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def stackgan_run(tmp_path, monkeypatch):
    """A StackGAN run folder and a stand-in for stackgan.inference following the design contract
    (load_sampler, and a sampler with sample and variations)."""
    folder = tmp_path / "sg"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_kind": "StackGANConfig"}))
    calls = []

    class Pipeline:
        kind, image_size = "stackgan-stage2", (128, 128)

        def sample(self, seeds, name=None, truncation=1.0):  # the final (stage-II) pictures
            calls.append(("sample", name, list(seeds), truncation))
            g = torch.Generator().manual_seed(seeds[0])
            return torch.rand(len(seeds), 3, 128, 128, generator=g) * 2 - 1

        def variations(self, name, seed, n, sigma):
            calls.append(("variations", name, seed, n, sigma))
            return types.SimpleNamespace(stage1=torch.zeros(n, 3, 64, 64), stage2=None, seeds=[seed] * n, z=None)

    def load_sampler(path, device="cpu", precision="fp32"):
        calls.append(("load", Path(path), str(device)))
        assert precision == "fp32"  # generate draws the exact pictures unless told otherwise
        return Pipeline()

    fake = types.ModuleType("stackgan.inference")
    fake.load_sampler = load_sampler
    monkeypatch.setitem(sys.modules, "stackgan.inference", fake)
    return folder, calls


def test_stackgan_checkpoints_delegate_to_the_pipeline(stackgan_run, tmp_path, capsys):
    folder, calls = stackgan_run
    assert gen("--checkpoint", folder, "--out", tmp_path / "x.png") == 2
    assert "give at least one NAME" in capsys.readouterr().err
    out = tmp_path / "menu.png"
    assert gen("--checkpoint", folder, "月見うどん", "カツカレー", "-n", 3, "--seed", 5, "--truncation", 0.7,
               "--out", out) == 0
    assert calls == [("load", folder, "cpu"), ("sample", "月見うどん", [5, 6, 7], 0.7),
                     ("sample", "カツカレー", [5, 6, 7], 0.7)]
    with Image.open(out) as grid:  # one row per name, stage-II pictures
        assert grid.size == (3 * 128 + 4 * 2, 2 * 128 + 3 * 2)
    rows = (tmp_path / "menu" / "samples.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[1].split("\t")[1:] == ["月見うどん", "5"] and rows[4].split("\t")[1:] == ["カツカレー", "5"]
    calls.clear()
    assert gen("--checkpoint", folder, "月見うどん", "-n", 2, "--variations-of", 3, "--sigma", 0.2,
               "--out", tmp_path / "v.png") == 0
    assert calls[1] == ("variations", "月見うどん", 3, 2, 0.2)
    with Image.open(tmp_path / "v" / "0000-seed3.png") as im:  # no stage II: stage I
        assert im.size == (64, 64)


def test_without_checkpoint_generate_uses_the_default_model(stackgan_run, tmp_path, monkeypatch):
    from stackgan.defaults import DEFAULT_MODEL, default_model

    folder, calls = stackgan_run
    monkeypatch.delenv("STACKGAN_CHECKPOINT", raising=False)
    assert default_model() == DEFAULT_MODEL and (DEFAULT_MODEL / "config.json").is_file()  # the shipped model
    monkeypatch.setenv("STACKGAN_CHECKPOINT", str(folder))  # as `stackgan serve` takes it
    assert gen("月見うどん", "-n", 2, "--seed", 1, "--out", tmp_path / "d.png") == 0
    assert calls[0] == ("load", folder, "cpu") and calls[1] == ("sample", "月見うどん", [1, 2], 1.0)
