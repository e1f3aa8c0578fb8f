"""stackgan.runs: RunFolder on tiny real runs (StackGAN stage I and II, DCGAN), an exported model
folder, single files, old and broken folders; and today's run folders generating and resuming
through it."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from stackgan.dcgan_config import DCGANConfig
from stackgan.errors import CheckpointError
from stackgan.runs import DCGAN, STACKGAN, STACKGAN_STAGE1, STACKGAN_STAGE2, RunFolder, read_json, typed_config
from stackgan.stackgan_config import StackGANConfig

from conftest import TINY_EMB, TINY_NAMES, tiny_data  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def dcgan_cfg(base: Path, run: Path, **kw) -> DCGANConfig:
    """A tiny DCGAN on 8 random 20 px pictures (the baseline takes any folder of pictures)."""
    photos = base / "photos"
    if not photos.is_dir():
        photos.mkdir(parents=True)
        g = torch.Generator().manual_seed(0)
        for i in range(8):
            pixels = torch.randint(0, 256, (20, 20, 3), dtype=torch.uint8, generator=g).numpy()
            Image.fromarray(pixels).save(photos / f"p{i}.png")
    opts = dict(data=str(photos), out=str(run), image_size="16", batch_size=4, ngf=8, ndf=8, z_dim=8,
                max_steps=2, ckpt_every=1, device="cpu")
    return DCGANConfig(**{**opts, **kw}).validate()


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> Path:
    """A tiny DCGAN run folder (2 steps, a checkpoint after each)."""
    from stackgan.train.dcgan import train_dcgan

    base = tmp_path_factory.mktemp("dcgan")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKGAN_CACHE", str(base / "cache"))
        return train_dcgan(dcgan_cfg(base, base / "run"), progress=False)


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


# -- the three kinds of run -----------------------------------------------------------------------
def test_a_stage1_run(stackgan_runs):
    s1 = stackgan_runs.s1
    run = RunFolder.open(s1)
    assert (run.model, run.stage, run.kind, run.config_kind) == (STACKGAN, 1, STACKGAN_STAGE1, "StackGANConfig")
    assert run.kind == run.config.kind  # the names StackGANConfig.kind and the checkpoints use
    assert run.folder == s1 and run.path == s1
    assert run.config_file == run.config_source == s1 / "config.json"
    assert run.raw_config == json.loads((s1 / "config.json").read_text(encoding="utf-8"))
    assert isinstance(run.config, StackGANConfig) and run.config.emb_dim == TINY_EMB
    assert run.require(STACKGAN) is run.config
    assert run.weights_file == s1 / "G_ema.safetensors"
    assert [p.name for p in run.checkpoint_files] == ["ckpt-000002.pt"]
    ckpt, state = run.latest_checkpoint()
    assert ckpt == s1 / "ckpt-000002.pt" and state["step"] == 2
    weights, meta = run.weights()
    assert meta["step"] == "2"
    assert same_state(weights, state["G_ema"])  # the weights file is the newest checkpoint's EMA generator


def test_a_stage2_run_and_its_stage1(stackgan_runs):
    run = RunFolder.open(stackgan_runs.s2)
    assert (run.model, run.stage, run.kind) == (STACKGAN, 2, STACKGAN_STAGE2) and run.kind == run.config.kind
    assert run.config.stage1 == str(stackgan_runs.s1)
    inner = RunFolder.open(stackgan_runs.s2 / "stage1")  # stage II's own copy of its stage I: a model folder
    assert inner.kind == "stackgan-stage1" and inner.checkpoint_files == [] and inner.latest_checkpoint() is None
    assert same_state(inner.weights()[0], RunFolder.open(stackgan_runs.s1).weights()[0])


def test_a_dcgan_run(dcgan_run):
    run = RunFolder.open(dcgan_run)
    assert (run.model, run.stage, run.kind, run.config_kind) == (DCGAN, None, "dcgan", "DCGANConfig")
    assert isinstance(run.config, DCGANConfig) and run.require(DCGAN).size == (16, 16)
    assert run.weights_file == dcgan_run / "G.safetensors"
    assert [p.name for p in run.checkpoint_files] == ["ckpt-000002.pt", "ckpt-000001.pt"]
    ckpt, state = run.latest_checkpoint()
    assert ckpt.name == "ckpt-000002.pt"
    assert same_state(run.weights()[0], state["G"])
    with pytest.raises(CheckpointError, match=r"is not a StackGAN run \(its config is a DCGANConfig\); why"):
        run.require(STACKGAN, needs="why")


def test_an_exported_model_folder(stackgan_runs, tmp_path):
    from stackgan.inference import load_pipeline

    model = load_pipeline(stackgan_runs.s2).save_pretrained(tmp_path / "model")
    run = RunFolder.open(model)
    assert run.kind == "stackgan-stage2" and run.config_file == model / "config.json"
    assert run.checkpoint_files == [] and run.latest_checkpoint() is None
    assert run.weights_file == model / "G_ema.safetensors"
    assert same_state(run.weights()[0], RunFolder.open(stackgan_runs.s2).weights()[0])


def test_load_into_refuses_weights_that_do_not_fit_or_are_not_finite(stackgan_runs, tmp_path):
    from safetensors.torch import load_file, save_file

    from stackgan.models.stackgan import stage1_generator

    run = RunFolder.open(stackgan_runs.s1)
    G = run.load_into(stage1_generator(run.config), check_finite=True)
    assert same_state(G.state_dict(), run.weights()[0])
    with pytest.raises(CheckpointError, match="the weights do not fit the config"):
        run.load_into(stage1_generator(dataclasses.replace(run.config, ngf=16)))
    bad = shutil.copytree(stackgan_runs.s1, tmp_path / "nan")
    state = load_file(str(bad / "G_ema.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key][0] = float("inf")
    save_file(state, str(bad / "G_ema.safetensors"))
    run = RunFolder.open(bad)
    run.load_into(stage1_generator(run.config))  # training code does not ask
    with pytest.raises(CheckpointError, match="NaN or infinite values"):
        run.load_into(stage1_generator(run.config), check_finite=True)


# -- single files ---------------------------------------------------------------------------------
def test_a_bare_checkpoint_carries_its_own_config(stackgan_runs, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    ckpt = shutil.copy2(stackgan_runs.s1 / "ckpt-000002.pt", alone / "ckpt-000002.pt")
    run = RunFolder.open(ckpt)
    assert run.given_checkpoint == ckpt and run.folder == alone
    assert run.config_file is None and run.config_source == ckpt and run.weights_file is None
    assert run.kind == "stackgan-stage1" and run.config.emb_dim == TINY_EMB
    assert run.latest_checkpoint()[0] == ckpt
    assert same_state(run.weights()[0], RunFolder.open(stackgan_runs.s1).weights()[0])
    # in a run folder too, a checkpoint that is given wins over the folder's config.json and weights file
    inside = RunFolder.open(stackgan_runs.s1 / "ckpt-000002.pt")
    assert inside.config_file is None and inside.weights_file is None and inside.weights()[1] == {"step": "2"}


def test_a_bare_safetensors_needs_the_config_beside_it(stackgan_runs, tmp_path):
    given = stackgan_runs.s1 / "G_ema.safetensors"
    run = RunFolder.open(given)
    assert run.given_weights == given and run.weights_file == given and run.config_file == stackgan_runs.s1 / "config.json"
    assert run.kind == "stackgan-stage1"
    alone = tmp_path / "alone"
    alone.mkdir()
    run = RunFolder.open(shutil.copy2(given, alone / "G_ema.safetensors"))
    with pytest.raises(CheckpointError, match="needs the config.json of its run beside it"):
        run.raw_config


# -- old, broken and foreign folders --------------------------------------------------------------
def test_a_folder_without_config_json_reads_its_newest_intact_checkpoint(stackgan_runs, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(stackgan_runs.s1, old)
    (old / "config.json").unlink()  # a run folder as older versions wrote them, or a copy of its checkpoints
    whole = (old / "ckpt-000002.pt").read_bytes()
    (old / "ckpt-000009.pt").write_bytes(whole[: len(whole) // 2])  # a newer one cut short is passed over
    warnings: list[str] = []
    run = RunFolder.open(old)
    assert run.latest_checkpoint(warn=warnings.append)[0] == old / "ckpt-000002.pt" and warnings
    assert run.config_source == old / "ckpt-000002.pt" and run.kind == "stackgan-stage1"
    assert run.weights_file is None  # a weights file is read only with the config.json beside it
    assert same_state(run.weights()[0], RunFolder.open(stackgan_runs.s1).weights()[0])


def test_a_config_from_before_a_field_existed_still_loads(stackgan_runs, tmp_path):
    from stackgan.inference import load_pipeline

    old = tmp_path / "old"
    shutil.copytree(stackgan_runs.s1, old)
    raw = json.loads((old / "config.json").read_text(encoding="utf-8"))
    del raw["r1"], raw["name_loss"]
    (old / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    assert RunFolder.open(old).config.r1 == 0.0
    assert load_pipeline(old).generate(TINY_NAMES[0], 1, seed=1).stage1.shape == (1, 3, 16, 16)


def test_invalid_json_is_one_clear_error(stackgan_runs, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(stackgan_runs.s1, bad)
    (bad / "config.json").write_text("{\"stage\": 1,", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        RunFolder.open(bad).raw_config
    (bad / "config.json").write_bytes(b'{"stage": "\xe3\x82"}')  # cut UTF-8
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON"):
        RunFolder.open(bad).kind
    (bad / "config.json").write_text(json.dumps({"_kind": "StackGANConfig", "stage": 3}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="stage 3 is not 1 or 2"):
        RunFolder.open(bad).kind
    (bad / "config.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        RunFolder.open(bad).config
    with pytest.raises(CheckpointError, match="missing .*nothing.json"):
        read_json(tmp_path / "nothing.json")
    assert read_json(tmp_path / "nothing.json", default=None) is None
    assert read_json(bad / "config.json") == [1, 2]
    (bad / "metrics.json").write_text("{", encoding="utf-8")
    assert read_json(bad / "metrics.json", default={}) == {}


def test_what_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        RunFolder.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a run folder: no config.json, and neither weights nor"):
        RunFolder.open(tmp_path / "empty")
    assert not RunFolder(tmp_path / "empty").looks_like_run and not RunFolder(tmp_path / "not-yet").looks_like_run
    garbage = tmp_path / "ckpt-000001.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        RunFolder.open(garbage).kind
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        RunFolder.open(plain).raw_config
    other = tmp_path / "classifier"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_kind": "ClassifierConfig"}))
    run = RunFolder.open(other)
    assert (run.config_kind, run.model, run.kind, run.stage, run.weights_file) == ("ClassifierConfig", None, None,
                                                                                 None, None)
    with pytest.raises(CheckpointError, match="a ClassifierConfig run, not a StackGAN or DCGAN run"):
        run.config
    with pytest.raises(CheckpointError, match=r"not a DCGAN run \(its config is a ClassifierConfig\)"):
        run.require(DCGAN)


def test_a_stackgan_config_without_an_embedding_size_is_refused(tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    StackGANConfig(max_steps=1).validate().save_json(unfinished / "config.json")  # emb_dim 0: never saw data
    run = RunFolder.open(unfinished)
    assert run.kind == "stackgan-stage1"
    with pytest.raises(CheckpointError, match="no embedding size"):
        run.require(STACKGAN)
    with pytest.raises(CheckpointError, match="no G_ema.safetensors and no ckpt-"):
        run.weights()


def test_typed_config_names_the_place(tmp_path):
    with pytest.raises(CheckpointError, match=r"^here: unusable config: unknown StackGANConfig keys: nope"):
        typed_config({"_kind": "StackGANConfig", "nope": 1}, "here")


# -- today's run folders through the new reader ---------------------------------------------------
def test_todays_stackgan_run_generates_and_resumes(stackgan_runs, tmp_path, capsys):
    from stackgan.cli import main
    from stackgan.train import stackgan as tr

    run_dir = tmp_path / "s1"
    shutil.copytree(stackgan_runs.s1, run_dir)
    out = tmp_path / "grid.png"
    assert main(["generate", "--checkpoint", str(run_dir), TINY_NAMES[0], "-n", "2", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert out.is_file()
    cfg = dataclasses.replace(RunFolder.open(run_dir).config, out=str(run_dir), resume=True, max_steps=3)
    summary = tr.train(cfg, data=tiny_data(16), printer=lambda m: None)
    assert summary["step"] == 3 and summary["steps_this_run"] == 1
    run = RunFolder.open(run_dir)
    assert run.checkpoint_files[0].name == "ckpt-000003.pt" and run.weights()[1]["step"] == "3"
    assert tr.load_stage1(run_dir).cfg.emb_dim == TINY_EMB


def test_todays_dcgan_run_generates_and_resumes(dcgan_run, tmp_path, monkeypatch):
    from stackgan.cli import main
    from stackgan.train.dcgan import train_dcgan

    monkeypatch.setenv("STACKGAN_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    shutil.copytree(dcgan_run, run_dir)
    out = tmp_path / "grid.png"
    assert main(["generate", "--checkpoint", str(run_dir), "-n", "4", "--out", str(out), "--device", "cpu"]) == 0
    assert out.is_file()
    cfg = RunFolder.open(run_dir).config
    train_dcgan(dataclasses.replace(cfg, data=str(dcgan_run.parent / "photos"), out=str(run_dir),
                                    max_steps=3, resume=True), progress=False)
    run = RunFolder.open(run_dir)
    ckpt, state = run.latest_checkpoint()
    assert ckpt.name == "ckpt-000003.pt" and state["step"] == 3
    assert same_state(run.weights()[0], state["G"])
