"""The DCGAN baseline: networks, config, training run folder, resume, losses, errors."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from PIL import Image

from stackgan.cli import main
from stackgan.errors import CheckpointError, ConfigError, DataError
from stackgan.models.dcgan import Discriminator, Generator, make_z, plan_sizes
from stackgan.models.init import init_weights
from stackgan.train.dcgan import (DCGANConfig, generate_images, load_dcgan_generator, parse_size, sample_dcgan,
                                  train_dcgan)
from stackgan.utils.io import load_checkpoint
from stackgan.utils.runlog import read_jsonl
from conftest import assert_a_nan_step_is_undone  # noqa: E402


def make_photos(folder, n=12, size=(24, 24), mode="RGB"):
    """A handful of small, varied pictures and their names.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file\tname"]
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        w, h = size
        base = (torch.rand(3, generator=g) * 255).int().tolist()
        im = Image.new("RGB", (w, h), tuple(base))
        for y in range(h // 4, 3 * h // 4):
            for x in range(w // 4, 3 * w // 4):
                im.putpixel((x, y), ((base[0] + 90 + 7 * i) % 256, (x * 9) % 256, (y * 9) % 256))
        if mode != "RGB":
            im = im.convert(mode)
        name = f"dish{i:02d}.png"
        im.save(folder / name)
        rows.append(f"{name}\t{'丼' if i % 2 else 'うどん'}")
    (folder / "names.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: one thread is faster


@pytest.fixture(scope="module")
def image_cache(tmp_path_factory):
    """One decoded-image cache for the module's tests (the photos are decoded once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKGAN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="module")
def photos(tmp_path_factory, image_cache):
    return make_photos(tmp_path_factory.mktemp("photos"))


def tiny(data, run, **kw) -> DCGANConfig:
    opts = dict(data=str(data), out=str(run), image_size="16", batch_size=4, ngf=8, ndf=8,
                z_dim=16, epochs=1, device="cpu", seed=3)
    opts.update(kw)
    return DCGANConfig(**opts).validate()


# -- networks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size,start,stages", [((64, 64), (4, 4), 4), ((96, 96), (6, 6), 4),
                                               ((64, 74), (4, 5), 4), ((16, 16), (4, 4), 2),
                                               ((128, 128), (4, 4), 5), ((8, 8), (4, 4), 1)])
def test_plan_sizes(size, start, stages):
    plan = plan_sizes(*size)
    assert plan.start == start and plan.stages == stages
    assert (plan.heights[-1], plan.widths[-1]) == size
    for a, b in zip(plan.heights, plan.heights[1:]):
        assert b in (2 * a, 2 * a - 1)


def test_plan_sizes_too_small():
    with pytest.raises(ValueError, match="too small"):
        plan_sizes(7, 64)


@pytest.mark.parametrize("size", [(64, 64), (96, 96), (64, 74), (20, 33), (9, 15)])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("kernel", [4, 5])
def test_shapes_are_exact(size, channels, kernel):
    h, w = size
    G = Generator(z_dim=8, channels=channels, height=h, width=w, ngf=4, kernel=kernel)
    D = Discriminator(channels=channels, height=h, width=w, ndf=4, kernel=kernel)
    x = G(torch.rand(2, 8) * 2 - 1)
    assert x.shape == (2, channels, h, w)
    assert x.min() >= -1 and x.max() <= 1  # tanh
    assert D(x).shape == (2,)


def test_architecture_is_dcgan():
    G = Generator(z_dim=100, channels=3, height=64, width=64, ngf=64)
    D = Discriminator(channels=3, height=64, width=64, ndf=64)
    kinds = [type(m).__name__ for m in G.main]
    assert kinds.count("ConvTranspose2d") == 5 and kinds[-1] == "Tanh" and "ReLU" in kinds
    assert [m.out_channels for m in G.main if isinstance(m, torch.nn.ConvTranspose2d)] == [512, 256, 128, 64, 3]
    # the same G as pytorch/examples' dcgan netG (3,576,704 weights) plus the output layer's 3 biases
    assert sum(p.numel() for p in G.parameters()) == 3_576_704 + 3
    assert all(m.kernel_size == (4, 4) for m in G.main if isinstance(m, torch.nn.ConvTranspose2d))
    dk = [type(m).__name__ for m in D.main]
    assert dk[:2] == ["Conv2d", "LeakyReLU"]  # no BatchNorm on D's input layer
    assert dk.count("BatchNorm2d") == 3
    assert all(m.negative_slope == 0.2 for m in D.main if isinstance(m, torch.nn.LeakyReLU))
    torch.manual_seed(0)
    init_weights(G)
    w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
    bn = torch.cat([m.weight for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bn.mean().item() - 1) < 0.01


def test_wgan_gp_critic_has_no_batchnorm():
    cfg = DCGANConfig(loss="wgan-gp").validate()
    assert cfg.resolved_d_norm == "layer"
    from stackgan.train.dcgan import build_discriminator

    D = build_discriminator(cfg)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


def test_make_z_per_seed():
    a = make_z([5, 6, 7], 10, "uniform")
    assert a.shape == (3, 10) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(make_z([6], 10, "uniform")[0], a[1])
    assert torch.equal(make_z([6], 10, "normal", truncation=0.5), make_z([6], 10, "normal") * 0.5)


# -- config -------------------------------------------------------------------------------------

def test_config_sizes():
    assert parse_size("64") == (64, 64) and parse_size("64x74") == (64, 74)
    cfg = DCGANConfig(image_size="64x74").validate()
    assert cfg.size == (64, 74) and cfg.image_size == "64x74"
    cfg = DCGANConfig(image_size="96", image_width=128).validate()
    assert cfg.size == (96, 128)
    back = DCGANConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg
    assert dataclasses.replace(cfg, image_size="32", image_width=None).validate().size == (32, 32)
    # DCGAN-tensorflow's defaults
    d = DCGANConfig().validate()
    assert (d.epochs, d.lr_g, d.lr_d, d.beta1, d.batch_size, d.z_dim, d.size) == (25, 0.0002, 0.0002, 0.5, 64, 100,
                                                                               (64, 64))
    assert d.resume is False  # as `stackgan train`: a run folder is continued only with --resume


@pytest.mark.parametrize("kw,msg", [
    (dict(image_size="big"), "N or HxW"),
    (dict(image_size="4"), "too small"),
    (dict(image_size="2048"), "<= 1024"),
    (dict(channels=2), "--channels must be one of"),
    (dict(loss="hinge", label_noise=0.1), "bce only"),
    (dict(loss="wgan-gp", d_norm="batch"), "wgan-gp"),
    (dict(label_flip=0.9), "--label-flip must be <= 0.5"),
    (dict(lr_g=-1.0), "--lr-g must be >= 0"),
    (dict(lr_d=-1.0), "--lr-d must be >= 0"),
])
def test_config_errors(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        DCGANConfig(**kw).validate()


# -- training -----------------------------------------------------------------------------------

def test_one_epoch_writes_run_folder(photos, tmp_path, capsys):
    run = tmp_path / "run"
    out = train_dcgan(tiny(photos, run), progress=False)
    assert out == run
    # 12 images, batch 4: 3 steps
    for name in ("config.json", "ckpt-000003.pt", "log.jsonl", "losses.png", "progress.gif", "G.safetensors",
                 "samples/000000.png", "samples/000003.png"):
        assert (run / name).is_file(), name
    with Image.open(run / "samples/000003.png") as grid:
        assert grid.size == (8 * 16 + 9 * 2, 8 * 16 + 9 * 2)  # 8 x 8 grid, padding 2
    with Image.open(run / "progress.gif") as gif:
        assert gif.n_frames == 2
    records = read_jsonl(run / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) and r["img_s"] > 0 for r in records)
    ck = load_checkpoint(run / "ckpt-000003.pt")
    assert ck["step"] == 3 and ck["epoch"] == 1 and ck["config"]["_kind"] == "DCGANConfig"
    # the checkpoint keys of `stackgan train`, then the DCGAN's own
    assert {"kind", "config", "step", "G", "D", "opt_g", "opt_d", "rng", "train_seconds", "precision"} <= set(ck)
    assert {"epoch", "fixed_z", "lr_scale", "nan_events"} <= set(ck) and ck["kind"] == "dcgan"
    assert json.loads((run / "config.json").read_text())["image_size"] == "16"
    text = capsys.readouterr().out
    assert "epoch 1/1" in text and "step 3/3" in text and "resuming" not in text


def test_resume_matches_uninterrupted_run(photos, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    train_dcgan(tiny(photos, full, epochs=2), progress=False)
    train_dcgan(tiny(photos, part, epochs=1), progress=False)  # "killed" after epoch 1
    capsys.readouterr()
    train_dcgan(tiny(photos, part, epochs=2, resume=True), progress=False)
    assert "resuming from ckpt-000003.pt at epoch 1, step 3" in capsys.readouterr().out
    a, b = read_jsonl(full / "log.jsonl"), read_jsonl(part / "log.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):  # bit for bit on the CPU
        assert (ra["d_loss"], ra["g_loss"]) == (rb["d_loss"], rb["g_loss"]), ra["step"]
    ga, gb = load_checkpoint(full / "ckpt-000006.pt")["G"], load_checkpoint(part / "ckpt-000006.pt")["G"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    # a finished run resumed again has nothing left to do
    train_dcgan(tiny(photos, part, epochs=2, resume=True), progress=False)
    assert "nothing to train" in capsys.readouterr().out
    assert len(read_jsonl(part / "log.jsonl")) == 6


def test_resume_mid_epoch_with_step_checkpoints(photos, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    train_dcgan(tiny(photos, full, epochs=2, ckpt_every=2), progress=False)
    train_dcgan(tiny(photos, part, epochs=2, ckpt_every=2, max_steps=4), progress=False)
    capsys.readouterr()
    train_dcgan(tiny(photos, part, epochs=2, ckpt_every=2, resume=True), progress=False)
    assert "resuming from ckpt-000004.pt at epoch 1, step 4 (batch 1/3 of epoch 2)" in capsys.readouterr().out
    a, b = read_jsonl(full / "log.jsonl"), read_jsonl(part / "log.jsonl")
    assert [(r["d_loss"], r["g_loss"]) for r in a] == [(r["d_loss"], r["g_loss"]) for r in b]


@pytest.mark.parametrize("kw", [
    dict(loss="bce", label_noise=0.1, label_flip=0.2, flip=True),
    dict(loss="hinge", z_dist="normal", weight_decay=1e-4, kernel_size=5),
    dict(loss="wgan-gp", n_critic=2, beta1=0.0, beta2=0.9, lr_g=1e-4, lr_d=1e-4, epochs=2),
    dict(loss="bce", diffaugment="color,translation,cutout"),
])
def test_losses_are_finite(photos, tmp_path, kw):
    run = tmp_path / "run"
    train_dcgan(tiny(photos, run, max_steps=2, **kw), progress=False)
    records = read_jsonl(run / "log.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    keys = ["d_loss", "g_loss", "d_real", "d_fake", "d_real_logit", "d_fake_logit", "img_s", "sec_step",
            "train_seconds", "lr_g", "lr_d"] + (["gp"] if kw["loss"] == "wgan-gp" else [])
    assert all(math.isfinite(r[k]) for r in records for k in keys)
    # d_real / d_fake mean what `stackgan train` logs: D's mean probability of "real"
    for r in records:
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1
        assert r["lr_g"] == r["lr_d"] == kw.get("lr_g", 2e-4)


def test_non_square_rgba(tmp_path, image_cache):
    data = make_photos(tmp_path / "stickers", n=8, size=(30, 24), mode="RGBA")
    run = tmp_path / "run"
    train_dcgan(tiny(data, run, image_size="16x20", channels=4, max_steps=1,
                     diffaugment="translation"), progress=False)
    G, cfg = load_dcgan_generator(run)
    assert cfg.size == (16, 20) and cfg.channels == 4
    assert sample_dcgan(G, cfg, [1, 2]).shape == (2, 4, 16, 20)
    with Image.open(run / "samples/000001.png") as grid:
        assert grid.mode == "RGBA"


def test_a_plain_folder_of_stickers_trains_with_a_pattern_and_keeps_alpha(tmp_path, image_cache, capsys):
    """The DCGAN's own use: a folder of transparent PNG stickers, no names.tsv, no per-name folders."""
    stickers = make_photos(tmp_path / "stickers", n=8, size=(20, 20), mode="RGBA")
    (stickers / "names.tsv").unlink()
    for i, im_path in enumerate(sorted(stickers.glob("*.png"))):  # half transparent: alpha must survive
        with Image.open(im_path) as im:
            im = im.copy()
        im.putalpha(Image.new("L", im.size, 0 if i % 2 else 255))
        im.save(im_path)
    Image.new("RGB", (20, 20), (255, 0, 0)).save(stickers / "not-a-sticker.jpg")
    from stackgan.data import load_dataset
    from stackgan.data.scan import UNLABELED

    ds = load_dataset(stickers, image_size=16, channels=4, progress=False, unlabeled=True, pattern="*.png")
    assert len(ds) == 8 and ds.names == [UNLABELED]
    assert ds.images[1, 3].max() == 0 and ds.images[0, 3].min() == 255  # transparent stays transparent
    with pytest.raises(DataError, match="no names.tsv.*baseline-dcgan"):  # StackGAN needs names
        load_dataset(stickers, image_size=16, progress=False)
    with pytest.raises(DataError, match="no picture matches"):
        load_dataset(stickers, image_size=16, progress=False, unlabeled=True, pattern="*.gif")
    run = tmp_path / "run"
    assert main(["baseline-dcgan", "--data", str(stickers), "--pattern", "*.png", "--checkpoint-dir", str(run),
                 "--image-size", "16", "--channels", "4", "--batch-size", "4", "--ngf", "8", "--ndf", "8",
                 "--max-steps", "1", "--device", "cpu", "--no-progress"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["pattern"] == "*.png" and saved["channels"] == 4
    assert load_checkpoint(run / "ckpt-000001.pt")["data"]["n_images"] == 8  # the .jpg was left out
    # `stackgan data check` reports it as an unlabeled set, usable by the DCGAN only
    capsys.readouterr()
    main(["data", "check", str(stickers)])
    out = capsys.readouterr().out
    assert "layout: unlabeled" in out and "usable by the unconditional DCGAN" in out and "not by StackGAN" in out


def test_load_generator_from_any_form(photos, tmp_path):
    run = tmp_path / "run"
    train_dcgan(tiny(photos, run, channels=1), progress=False)
    z = make_z([1, 2, 3], 16, "uniform")
    outs = []
    for path in (run, run / "ckpt-000003.pt", run / "G.safetensors"):
        G, cfg = load_dcgan_generator(path)
        assert not G.training and cfg.channels == 1
        outs.append(generate_images(G, z))
    assert outs[0].shape == (3, 1, 16, 16)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


def test_training_errors(photos, tmp_path):
    with pytest.raises(DataError, match="fewer than one step"):
        train_dcgan(tiny(photos, tmp_path / "a", batch_size=13), progress=False)
    with pytest.raises(ConfigError, match="unknown DiffAugment policy"):
        train_dcgan(tiny(photos, tmp_path / "b", diffaugment="sparkle"), progress=False)
    with pytest.raises(ConfigError, match="RGB"):
        train_dcgan(tiny(photos, tmp_path / "c", channels=1, diffaugment="color"), progress=False)
    run = tmp_path / "run"
    train_dcgan(tiny(photos, run, max_steps=1), progress=False)
    with pytest.raises(CheckpointError, match=r"--ngf 8 \(checkpoint\) vs 16"):
        train_dcgan(tiny(photos, run, ngf=16, resume=True), progress=False)
    with pytest.raises(CheckpointError, match=r"image size \(16, 16\) \(checkpoint\) vs \(16, 24\)"):
        train_dcgan(tiny(photos, run, image_width=24, resume=True), progress=False)
    with pytest.raises(CheckpointError, match=r"--lr-g 0.0002 \(checkpoint\) vs 0.001"):
        train_dcgan(tiny(photos, run, lr_g=1e-3, resume=True), progress=False)
    # the same size said another way resumes
    train_dcgan(tiny(photos, run, image_size="16x16", max_steps=2, resume=True), progress=False)
    # as `stackgan train`: never silently continue (or overwrite) a run; --resume needs a checkpoint
    with pytest.raises(CheckpointError, match="already holds checkpoints.*--resume"):
        train_dcgan(tiny(photos, run, resume=False), progress=False)
    with pytest.raises(ConfigError, match="already holds checkpoints.*--resume"):
        train_dcgan(tiny(photos, run), progress=False)
    with pytest.raises(CheckpointError, match="--resume: no checkpoint"):
        train_dcgan(tiny(photos, tmp_path / "fresh", resume=True), progress=False)
    with pytest.raises(CheckpointError, match="not a DCGAN run"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "config.json").write_text('{"_kind": "StackGANConfig"}')
        load_dcgan_generator(tmp_path / "other")


def test_cli(photos, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["baseline-dcgan", "--data", str(photos), "--checkpoint-dir", str(run), "--image-size", "16",
               "--batch-size", "6", "--ngf", "8", "--ndf", "8", "--epochs", "1", "--device", "cpu",
               "--no-progress", "--flip", "--loss", "hinge"])
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["flip"] is True and cfg["loss"] == "hinge" and cfg["batch_size"] == 6
    assert (run / "ckpt-000002.pt").is_file()
    # the old spelling still works, with a one-line note naming the new one
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "deprecated" in ln]
    assert notes == ["note: --checkpoint-dir is deprecated; use --out"]
    assert main(["baseline-dcgan", "--image-size", "64y"]) == 2
    assert "--image-size must be N or HxW" in capsys.readouterr().err
    # the same command again: refused (exit 2) and told to pass --resume, as `stackgan train`
    again = ["baseline-dcgan", "--data", str(photos), "--out", str(run), "--image-size", "16", "--batch-size", "6",
             "--ngf", "8", "--ndf", "8", "--epochs", "2", "--device", "cpu", "--no-progress", "--flip", "--loss",
             "hinge"]
    assert main(again) == 2
    err = capsys.readouterr().err
    assert "already holds checkpoints" in err and "--resume" in err and "Traceback" not in err
    assert main(again + ["--resume"]) == 0
    assert (run / "ckpt-000004.pt").is_file() and "resuming from ckpt-000002.pt" in capsys.readouterr().out
    assert main(["baseline-dcgan", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"),
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and "Traceback" not in err


def test_held_out_photos_are_not_trained_on(tmp_path):
    """--held-out keeps the same per-name split out of training as `stackgan evaluate` scores on."""
    from PIL import Image

    from stackgan.data import load_dataset
    from stackgan.train.dcgan import load_images
    from stackgan.train.dcgan_config import DCGANConfig

    root = tmp_path / "set"
    (root / "img").mkdir(parents=True)
    rows = ["file\tname"]
    for i in range(10):
        Image.new("RGB", (20, 20), (i * 20, 0, 0)).save(root / "img" / f"{i}.png")
        rows.append(f"img/{i}.png\t{'カツ丼' if i < 5 else 'うどん'}")
    (root / "names.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = DCGANConfig(data=str(root), image_size="16", held_out=0.4, split_seed=1).validate()
    images, _ = load_images(cfg, progress=False)
    train, test = load_dataset(root, image_size=16, progress=False).split(0.4, 1)
    assert images.shape[0] == len(train) == 10 - len(test) and len(test) >= 2
    assert torch.equal(images, train.images)


def test_max_minutes_stops_after_the_first_step_with_a_checkpoint(photos, tmp_path):
    run = tmp_path / "run"
    train_dcgan(tiny(photos, run, epochs=5, max_minutes=1e-6), progress=False)
    timing = json.loads((run / "timing.json").read_text())
    assert timing["step"] == 1 and timing["stopped_by"] == "max_minutes" and timing["train_seconds"] > 0
    assert (run / "ckpt-000001.pt").is_file() and (run / "samples" / "000001.png").is_file()
    assert load_checkpoint(run / "ckpt-000001.pt")["train_seconds"] > 0
    # the budget is summed over resumptions: raising it lets the run go on from its checkpoint
    train_dcgan(tiny(photos, run, epochs=1, max_minutes=0.0, resume=True), progress=False)
    timing = json.loads((run / "timing.json").read_text())
    assert timing["step"] == 3 and timing["stopped_by"] == "epochs"
    assert [r["step"] for r in read_jsonl(run / "log.jsonl")] == [1, 2, 3]


def test_bf16_trains_and_resumes_without_a_jump(photos, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    train_dcgan(tiny(photos, full, epochs=2, precision="bf16"), progress=False)
    train_dcgan(tiny(photos, part, epochs=1, precision="bf16"), progress=False)
    train_dcgan(tiny(photos, part, epochs=2, precision="bf16", resume=True), progress=False)
    assert "bf16" in capsys.readouterr().out
    a, b = read_jsonl(full / "log.jsonl"), read_jsonl(part / "log.jsonl")
    assert [(r["d_loss"], r["g_loss"]) for r in a] == [(r["d_loss"], r["g_loss"]) for r in b]
    assert load_checkpoint(part / "ckpt-000006.pt")["precision"] == "bf16"


def test_a_damaged_newest_checkpoint_is_passed_over(photos, tmp_path, capsys):
    run = tmp_path / "run"
    train_dcgan(tiny(photos, run, epochs=2, ckpt_every=2, keep_ckpts=5), progress=False)
    ref = [(r["d_loss"], r["g_loss"]) for r in read_jsonl(run / "log.jsonl")]
    (run / "ckpt-000006.pt").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    train_dcgan(tiny(photos, run, epochs=2, ckpt_every=2, keep_ckpts=5, resume=True), progress=False)
    out = capsys.readouterr().out
    assert "cannot read checkpoint" in out and "resuming from ckpt-000004.pt" in out
    assert [(r["d_loss"], r["g_loss"]) for r in read_jsonl(run / "log.jsonl")] == ref


# -- the run-folder rules shared with `stackgan train` ------------------------------------------

def test_old_and_new_option_spellings_give_the_same_config(capsys):
    """--out / --ckpt-every / --keep-ckpts / --lr-g --lr-d, as `stackgan train`; the old spellings
    still parse, each with a one-line note on stderr naming the new one."""
    import argparse

    def parse(argv):
        p = argparse.ArgumentParser()
        DCGANConfig.add_arguments(p)
        return DCGANConfig.from_args(p.parse_args(argv))

    new = parse(["--out", "r", "--ckpt-every", "5", "--keep-ckpts", "2", "--lr-g", "0.001", "--lr-d", "0.001",
                 "--sample-every", "7", "--log-every", "3"])
    assert capsys.readouterr().err == ""
    old = parse(["--checkpoint-dir", "r", "--checkpoint-every", "5", "--keep-checkpoints", "2", "--lr", "0.001",
                 "--sample-every", "7", "--log-every", "3"])
    assert old == new
    assert (new.out, new.ckpt_every, new.keep_ckpts, new.lr_g, new.lr_d, new.sample_every, new.log_every) == (
        "r", 5, 2, 0.001, 0.001, 7, 3)
    assert capsys.readouterr().err.splitlines() == [
        "note: --checkpoint-dir is deprecated; use --out",
        "note: --checkpoint-every is deprecated; use --ckpt-every",
        "note: --keep-checkpoints is deprecated; use --keep-ckpts",
        "note: --lr is deprecated; use --lr-g and --lr-d",
    ]
    # the later option wins, whichever its spelling
    assert parse(["--lr", "0.1", "--lr-d", "0.2"]).lr_d == 0.2
    assert parse(["--lr-d", "0.2", "--lr", "0.1"]).lr_d == 0.1
    with pytest.raises(ConfigError, match="--lr-g must be >= 0"):
        parse(["--lr", "-1"])


def test_a_run_folder_written_with_the_old_names_resumes_generates_and_evaluates(photos, tmp_path, capsys):
    """A DCGAN run folder as written before the options were shared with `stackgan train`: config.json
    and the checkpoints' config with checkpoint_dir / checkpoint_every / keep_checkpoints / lr, and
    checkpoints with opt_G / opt_D and without lr_scale / nan_events."""
    from stackgan.metrics.runs import make_sampler, read_run
    from stackgan.runs import RunFolder

    full, run = tmp_path / "full", tmp_path / "run"
    train_dcgan(tiny(photos, full, epochs=2, ckpt_every=2), progress=False)
    train_dcgan(tiny(photos, run, epochs=2, ckpt_every=2, max_steps=4), progress=False)

    def old_config(d):
        d = dict(d)
        d["checkpoint_dir"], d["checkpoint_every"] = d.pop("out"), d.pop("ckpt_every")
        d["keep_checkpoints"], d["lr"] = d.pop("keep_ckpts"), d.pop("lr_g")
        for k in ("lr_d", "sample_every", "log_every"):
            d.pop(k)
        d["resume"] = True  # the old default
        return d

    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(old_config(config), indent=2))
    for ck_path in run.glob("ckpt-*.pt"):
        ck = torch.load(ck_path, weights_only=False)
        ck["config"] = old_config(ck["config"])
        ck["opt_G"], ck["opt_D"] = ck.pop("opt_g"), ck.pop("opt_d")
        del ck["lr_scale"], ck["nan_events"]
        torch.save(ck, ck_path)
    assert "checkpoint_dir" in json.loads((run / "config.json").read_text())

    # it reads as today's config, generates and evaluates (a sampler as `stackgan evaluate` makes it)
    cfg = RunFolder.open(run).config
    assert (cfg.out, cfg.ckpt_every, cfg.keep_ckpts, cfg.lr_g, cfg.lr_d) == (str(run), 2, 3, 2e-4, 2e-4)
    G, loaded = load_dcgan_generator(run / "ckpt-000004.pt")
    assert loaded == cfg and sample_dcgan(G, cfg, [1, 2]).shape == (2, 3, 16, 16)
    out = tmp_path / "grid.png"
    assert main(["generate", "--checkpoint", str(run), "-n", "4", "--out", str(out), "--device", "cpu"]) == 0
    assert out.is_file()
    assert read_run(run).steps == 4
    sampler, _ = make_sampler(run, "dcgan")
    assert sampler(None, 3, 0).shape[0] == 3
    with pytest.raises(ConfigError, match="--parts-sentence applies to StackGAN"):
        make_sampler(run, "dcgan", parts_sentence="parts")

    # and it resumes, through the command line with the old spellings, to the uninterrupted run
    capsys.readouterr()
    assert main(["baseline-dcgan", "--data", str(photos), "--checkpoint-dir", str(run), "--image-size", "16",
                 "--batch-size", "4", "--ngf", "8", "--ndf", "8", "--z-dim", "16", "--epochs", "2", "--seed", "3",
                 "--checkpoint-every", "2", "--lr", "0.0002", "--device", "cpu", "--no-progress", "--resume"]) == 0
    said = capsys.readouterr()
    assert "resuming from ckpt-000004.pt" in said.out and "--checkpoint-dir is deprecated" in said.err
    a, b = read_jsonl(full / "log.jsonl"), read_jsonl(run / "log.jsonl")
    assert [(r["d_loss"], r["g_loss"]) for r in a] == [(r["d_loss"], r["g_loss"]) for r in b]
    assert "out" in json.loads((run / "config.json").read_text())  # written back under today's names
    assert {"opt_g", "opt_d"} <= set(load_checkpoint(run / "ckpt-000006.pt"))


def test_nan_loss_restores_last_good_state_and_lowers_lr(photos, tmp_path, capsys):
    """As `stackgan train`: a non-finite loss skips the step, brings back the last good state, halves
    the learning rates and writes a log record; it gives up after MAX_NAN_EVENTS."""
    from stackgan.train import dcgan as dc

    t = dc.DCGANTrainer(tiny(photos, tmp_path / "a", epochs=20), progress=False)
    t.prepare()
    assert t.train_step() is not None
    s = assert_a_nan_step_is_undone(t, tmp_path / "a" / "log.jsonl", capsys)
    assert all(math.isfinite(v) for v in s.values())
    assert all(g["lr"] == pytest.approx(1e-4) for g in t.opt_d.param_groups)
    # NaN weights in G are caught too (by D's loss on its fakes), and G comes back as well
    with torch.no_grad():
        for p in t.G.parameters():
            p.fill_(float("nan"))
    assert t.train_step() is None and t.nan_events == 2 and all(torch.isfinite(p).all() for p in t.G.parameters())
    # the checkpoint keeps the lowered rate, and a resumed run goes on with it
    t._checkpoint()
    ck = load_checkpoint(tmp_path / "a" / dc.ckpt_name(t.step))
    assert ck["lr_scale"] == 0.25 and ck["nan_events"] == 2
    # it gives up after repeated failures instead of looping
    with pytest.raises(dc.TrainingDiverged):
        for _ in range(dc.MAX_NAN_EVENTS + 1):
            with torch.no_grad():
                next(t.D.parameters()).fill_(float("inf"))
            t.train_step()


def test_ctrl_c_finishes_the_step_checkpoints_and_stops(photos, tmp_path, monkeypatch):
    """The first Ctrl-C (the handler shared with `stackgan train`) lets the step finish; the run then
    writes a checkpoint, its grid and timing.json and returns; --resume continues it."""
    import os
    import signal

    from stackgan.train import dcgan as dc

    real_step = dc.DCGANTrainer._step

    def step_then_ctrl_c(self, order, b):
        rec = real_step(self, order, b)
        if self.step == 1:  # during the second step
            os.kill(os.getpid(), signal.SIGINT)
        return rec

    monkeypatch.setattr(dc.DCGANTrainer, "_step", step_then_ctrl_c)
    run = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)
    train_dcgan(tiny(photos, run, epochs=3), progress=False)
    timing = json.loads((run / "timing.json").read_text())
    assert timing["step"] == 2 and timing["stopped_by"] == "interrupt"
    assert (run / "ckpt-000002.pt").is_file() and (run / "samples" / "000002.png").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    monkeypatch.setattr(dc.DCGANTrainer, "_step", real_step)
    train_dcgan(tiny(photos, run, epochs=3, resume=True), progress=False)
    assert [r["step"] for r in read_jsonl(run / "log.jsonl")] == list(range(1, 10))
