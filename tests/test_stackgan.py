"""StackGAN networks and training at tiny sizes (16-32 px, width 8, a few steps, random embeddings)."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from stackgan.errors import CheckpointError, ConfigError, DataError
from stackgan.models.init import init_weights
from stackgan.models.stackgan import (CondAugment, FusedUpBlock, ProjectionLogits, Stage1D, Stage1G, Stage2D, Stage2G,
                                     upsample2)
from stackgan.train import stackgan as tr
from stackgan.stackgan_config import STAGE_ONLY, StackGANConfig
from stackgan.text.parts import SentenceFit
from stackgan.utils.runlog import read_jsonl
from conftest import assert_a_nan_step_is_undone, use_hash_encoder  # noqa: E402

EMB = 12
NAMES = ["カツカレー", "きつねうどん", "ピリ辛サーモン丼", "味噌ラーメン"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: one thread is faster


def make_data(size: int = 16, n: int = 24, seed: int = 0, grid: list[str] | None = None) -> tr.TrainData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % len(NAMES)
    emb = torch.nn.functional.normalize(torch.randn(len(NAMES), EMB, generator=g), dim=1)
    grid = grid or NAMES[:3] + ["焦がし醤油ラーメン"]
    grid_emb = torch.cat([emb[:3], torch.nn.functional.normalize(torch.randn(1, EMB, generator=g), dim=1)])
    return tr.TrainData(images, labels, list(NAMES), emb, grid, grid_emb, source="synthetic")


def tiny_cfg(tmp_path: Path, **kw) -> StackGANConfig:
    base = dict(image_size=16, stage2_size=128, ngf=8, ndf=8, c_dim=16, z_dim=20, batch_size=8, max_steps=2,
                sample_every=100, ckpt_every=100, log_every=1, grid_rows=4, grid_cols=4, progress=False,
                device="cpu", out=str(tmp_path / "run"), lr_decay_epochs=0)
    base.update(kw)
    return StackGANConfig(**base).validate()


# -- networks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 32, 64])
def test_stage1_shapes(size):
    G = Stage1G(EMB, c_dim=16, z_dim=20, ngf=8, image_size=size)
    D = Stage1D(c_dim=16, ndf=8, image_size=size)
    img, mu, logvar = G(torch.randn(3, 20), torch.randn(3, EMB))
    assert img.shape == (3, 3, size, size)
    assert mu.shape == logvar.shape == (3, 16)
    assert img.min() >= -1 and img.max() <= 1
    feats = D.features(img)
    assert feats.shape[-2:] == (4, 4)
    cond, uncond = D(img, mu)
    assert cond.shape == uncond.shape == (3,)


@pytest.mark.parametrize("size,scale", [(16, 2), (16, 4), (32, 2)])
def test_stage2_shapes(size, scale):
    G = Stage2G(EMB, c_dim=16, ngf=8, image_size=size, scale=scale, r_num=3)
    D = Stage2D(c_dim=16, ndf=4, size=size * scale)
    low = torch.rand(2, 3, size, size) * 2 - 1
    img, mu, _ = G(low, torch.randn(2, EMB))
    assert img.shape == (2, 3, size * scale, size * scale)
    assert len(G.residual) == 3
    cond, uncond = D(img, mu)
    assert cond.shape == uncond.shape == (2,)


def test_paper_widths_shapes():
    # the paper's widths: 1024 channels at 4x4 in stage-I G, 64 -> 256 in stage II
    G1 = Stage1G(EMB, ngf=128)
    assert G1.fc[0].out_features == 128 * 8 * 16
    D2 = Stage2D(ndf=64, size=256)
    assert D2.feat_ch == 64 * 8
    G2 = Stage2G(EMB, ngf=128, image_size=64, scale=4)
    assert len(G2.ups) == 4


def test_fusion_generator_and_projection_discriminator():
    torch.manual_seed(0)
    G = init_weights(Stage1G(EMB, c_dim=16, z_dim=20, ngf=8, image_size=32, g_cond="fusion"))
    assert len(G.ups) == 3 and all(isinstance(b, FusedUpBlock) for b in G.ups)
    z, emb = torch.randn(4, 20), torch.randn(4, EMB)
    img, mu, _ = G(z, emb, torch.zeros(4, 16))
    assert img.shape == (4, 3, 32, 32)
    # the text reaches every up-block: with the first layer's input fixed, changing c still moves the picture
    G.eval()
    block = G.ups[1]
    h = torch.randn(4, block.conv[1].in_channels, 8, 8)
    cond_a, cond_b = torch.randn(4, 36), torch.randn(4, 36)
    with torch.no_grad():
        block.norm.affine.weight.normal_(0, 0.5)
        assert not torch.allclose(block(h, cond_a), block(h, cond_b))
    D = init_weights(Stage1D(c_dim=16, ndf=8, image_size=32, d_cond="projection"))
    assert isinstance(D.cond_head, ProjectionLogits)
    cond, uncond = D(img.detach(), mu.detach())
    assert cond.shape == uncond.shape == (4,)
    feats = D.features(img.detach())
    assert not torch.allclose(D.cond(feats, mu.detach()), D.cond(feats, -mu.detach()))
    G2 = Stage2G(EMB, c_dim=16, ngf=8, image_size=16, scale=2, g_cond="fusion")
    out, _, _ = G2(torch.rand(2, 3, 16, 16) * 2 - 1, torch.randn(2, EMB))
    assert out.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError):
        Stage1G(EMB, g_cond="late")
    with pytest.raises(ValueError):
        Stage1D(d_cond="cosine")


def test_residual_stage2_starts_as_an_upsample_of_stage1():
    torch.manual_seed(0)
    G = init_weights(Stage2G(EMB, c_dim=16, ngf=8, image_size=16, scale=2, residual=True)).eval()
    low = torch.rand(2, 3, 16, 16) * 1.6 - 0.8
    with torch.no_grad():
        G.to_rgb[0].weight.zero_()
        out, _, _ = G(low, torch.randn(2, EMB))
    up = torch.nn.functional.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
    assert out.shape == (2, 3, 32, 32) and torch.allclose(out, up, atol=1e-5)
    # the paper's form draws a new picture, and both share their weight names
    paper = Stage2G(EMB, c_dim=16, ngf=8, image_size=16, scale=2, residual=False)
    assert paper.state_dict().keys() == G.state_dict().keys()
    low.requires_grad_(True)
    G.train()
    img, _, _ = G(low, torch.randn(2, EMB))
    img.sum().backward()
    assert low.grad is None  # stage I stays frozen
    assert G.to_rgb[0].weight.grad is not None


@pytest.mark.parametrize("g_cond", ["input", "fusion"])
def test_stage2_skips_join_the_encoders_maps_to_the_up_path(g_cond):
    torch.manual_seed(0)
    kw = dict(c_dim=16, ngf=8, image_size=16, scale=4, g_cond=g_cond, residual=True)
    G = init_weights(Stage2G(EMB, skips=True, **kw)).eval()
    plain = Stage2G(EMB, **kw).eval()
    assert G.skips and not plain.skips
    conv = (lambda b: b.conv[1]) if g_cond == "fusion" else (lambda b: b[1])
    # up-block 1 (at S/2) takes the S/2 map's 2 ngf extra channels, up-block 2 (at S) the S map's ngf
    assert [conv(b).in_channels - conv(p).in_channels for b, p in zip(G.ups, plain.ups)] == [0, 16, 8, 0]
    low, emb, eps = torch.rand(2, 3, 16, 16) * 1.6 - 0.8, torch.randn(2, EMB), torch.zeros(2, 16)
    with torch.no_grad():
        out = G(low, emb, eps)[0]
        assert out.shape == (2, 3, 64, 64)
        # the plain network with the skip-free part of the weights: another picture while the skips carry weight,
        # the same one once their input weights are zero, so the extra inputs are the skips and nothing else
        plain.load_state_dict({k: (v[:, :conv(plain.ups[int(k.split('.')[1])]).in_channels]
                                   if k.startswith("ups.") and v.dim() == 4 else v) for k, v in G.state_dict().items()})
        assert not torch.allclose(out, plain(low, emb, eps)[0], atol=1e-4)
        for i in (1, 2):
            conv(G.ups[i]).weight[:, conv(plain.ups[i]).in_channels:] = 0
        assert torch.allclose(G(low, emb, eps)[0], plain(low, emb, eps)[0], atol=1e-5)
    # the skips carry gradient back to the encoder's first (full-size) conv
    G.train()
    G(low, emb)[0].square().mean().backward()
    assert G.encoder[0].weight.grad.abs().sum() > 0


def test_stage2_skips_and_consistency_train_resume_and_generate(tmp_path):
    data = make_data()
    s1 = tiny_cfg(tmp_path, out=str(tmp_path / "s1"), max_steps=1, precision="fp32")
    tr.train(s1, data=data)
    cfg = tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "s1"), stage2_skips=True, stage2_consistency=1.0, ndf=4,
                   max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data(size=32))
    assert all(r["cons"] > 0 for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r)
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["stage2_skips"] is True
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert pipe.g2.skips and pipe.info()["stage2_skips"] is True
    assert pipe.generate(NAMES[0], 2, seed=1).images.shape == (2, 3, 32, 32)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).stage2_skips is False  # old runs: no skips
    for bad in ({"stage2_skips": True}, {"stage2_consistency": 1.0}):
        with pytest.raises(ConfigError, match="only for --stage 2"):
            StackGANConfig(**bad).validate()


def g_phase_spy(monkeypatch, key: str) -> list:
    """What the trainer passes G's phase as ``key``, one entry per step (the real phase still runs)."""
    passed = []
    real_g_phase = tr.StackGANLoss.g_phase

    def spy(self, *args, **kwargs):
        passed.append(kwargs[key])
        return real_g_phase(self, *args, **kwargs)

    monkeypatch.setattr(tr.StackGANLoss, "g_phase", spy)
    return passed


def test_stage2_input_pool_reads_the_stage_one_picture_pooled_and_enlarged():
    torch.manual_seed(0)
    kw = dict(c_dim=16, ngf=8, image_size=16, scale=4, g_cond="fusion", residual=True)
    G = init_weights(Stage2G(EMB, input_pool=2, **kw)).eval()
    plain = Stage2G(EMB, **kw).eval()
    plain.load_state_dict(G.state_dict())  # the same network: the option adds no weights
    low, emb, eps = torch.rand(2, 3, 16, 16) * 1.6 - 0.8, torch.randn(2, EMB), torch.zeros(2, 16)
    seen = G.seen(low)
    assert seen.shape == low.shape and not torch.allclose(seen, low)
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.allclose(G.seen(flat), flat)  # what is plain over a cell passes as it is
    # detail inside a 2 x 2 cell (here: the cell's pixels swapped) does not reach the picture; the cells' means do
    swapped = low.clone()
    swapped[..., 0::2, :], swapped[..., 1::2, :] = low[..., 1::2, :], low[..., 0::2, :]
    with torch.no_grad():
        out = G(low, emb, eps)[0]
        assert torch.allclose(out, G(swapped, emb, eps)[0], atol=1e-6)
        assert not torch.allclose(plain(low, emb, eps)[0], plain(swapped, emb, eps)[0], atol=1e-4)
        assert torch.allclose(out, plain(seen, emb, eps)[0], atol=1e-6)
    assert Stage2G(EMB, **kw).seen(low) is low  # 1: the picture as drawn
    with pytest.raises(ValueError, match="input_pool must be one of"):
        Stage2G(EMB, input_pool=3, **kw)


def test_stage2_input_pool_trains_against_the_pooled_picture_resumes_and_generates(tmp_path, monkeypatch):
    tr.train(tiny_cfg(tmp_path, out=str(tmp_path / "s1"), max_steps=1, precision="fp32"), data=make_data())
    cfg = tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "s1"), ndf=4, max_steps=2, ckpt_every=1,
                   precision="fp32", stage2_consistency=1.0, stage2_input_pool=2)
    lows = g_phase_spy(monkeypatch, "low")
    tr.train(cfg, data=make_data(size=32))
    assert [tuple(x.shape[-2:]) for x in lows] == [(8, 8)] * 2  # the consistency term at the size stage II reads
    assert all(r["cons"] > 0 for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["stage2_input_pool"] == 2
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    lows.clear()
    tr.train(dataclasses.replace(cfg, stage2_input_pool=1, out=str(tmp_path / "off"), max_steps=1),
             data=make_data(size=32))
    assert [tuple(x.shape[-2:]) for x in lows] == [(16, 16)]  # 1: stage I's own size, as before
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert pipe.g2.input_pool == 2 and pipe.info()["stage2_input_pool"] == 2
    assert pipe.generate(NAMES[0], 2, seed=1).images.shape == (2, 3, 32, 32)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).stage2_input_pool == 1  # old runs: as drawn
    with pytest.raises(ConfigError, match=r"--stage2-input-pool 2 is only for --stage 2 \(how stage II reads"):
        StackGANConfig(stage2_input_pool=2).validate()
    with pytest.raises(ConfigError, match="--stage2-input-pool must be one of 1, 2, 4"):
        StackGANConfig(stage=2, stage1="s1", stage2_input_pool=3).validate()


def test_stage2_paired_by_default_redraws_real_photos_from_their_pooled_copies_and_resumes(tmp_path, monkeypatch):
    data = make_data()
    tr.train(tiny_cfg(tmp_path, out=str(tmp_path / "s1"), max_steps=1, precision="fp32"), data=data)
    cfg = tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "s1"), ndf=4, max_steps=2,  # the stage-II default
                   ckpt_every=1, precision="fp32")
    seen = g_phase_spy(monkeypatch, "paired")
    tr.train(cfg, data=make_data(size=32))
    rec, real = seen[0]
    assert rec.shape == real.shape == (cfg.batch_size, 3, 32, 32) and rec.requires_grad and not real.requires_grad
    logged = [r for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r]
    assert len(logged) == 2 and all(r["paired"] > 0 for r in logged)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["stage2_paired"] == 50.0
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    # off: G is not asked to redraw photos and nothing is logged
    seen.clear()
    off = dataclasses.replace(cfg, stage2_paired=0.0, out=str(tmp_path / "off"), max_steps=1)
    tr.train(off, data=make_data(size=32))
    assert seen == [None] and "paired" not in read_jsonl(tmp_path / "off" / "log.jsonl")[-1]
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).stage2_paired == 0.0  # old runs: off
    with pytest.raises(ConfigError, match="only for --stage 2"):
        StackGANConfig(stage2_paired=1.0).validate()


def test_stage2_paired_warp_bends_the_pooled_copies_stage_two_redraws_and_resumes(tmp_path, monkeypatch):
    tr.train(tiny_cfg(tmp_path, out=str(tmp_path / "s1"), max_steps=1, precision="fp32"), data=make_data())
    cfg = tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "s1"), ndf=4, max_steps=2, ckpt_every=1,
                   precision="fp32", stage2_paired_warp=0.25)
    bent = []
    real_warp = tr.elastic_warp

    def spy(x, alpha):
        out = real_warp(x, alpha)
        bent.append((x, alpha, out))
        return out

    monkeypatch.setattr(tr, "elastic_warp", spy)
    tr.train(cfg, data=make_data(size=32))
    assert [a for _, a, _ in bent] == [0.25, 0.25]  # once per step, on the pooled copies
    x, _, out = bent[0]
    assert x.shape == out.shape == (cfg.batch_size, 3, 16, 16) and not torch.allclose(x, out)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["stage2_paired_warp"] == 0.25
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    bent.clear()
    tr.train(dataclasses.replace(cfg, stage2_paired_warp=0.0, out=str(tmp_path / "off"), max_steps=1),
             data=make_data(size=32))
    assert [a for _, a, _ in bent] == [0.0]  # off: the copies pass unbent (elastic_warp returns them)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).stage2_paired_warp == 0.0  # old runs: off
    for bad in ({"stage2_paired_warp": 0.25},  # stage I has no paired term
                {"stage": 2, "stage1": "s1", "stage2_paired": 0.0, "stage2_paired_warp": 0.25}):
        with pytest.raises(ConfigError, match="--stage2-paired-warp 0.25 bends"):
            StackGANConfig(**bad).validate()


def test_stage2_paired_inverted_redraws_photos_from_stage_one_pictures_kept_in_the_run(tmp_path, monkeypatch):
    tr.train(tiny_cfg(tmp_path, out=str(tmp_path / "s1"), max_steps=1, precision="fp32", g_noise=True,
                      g_cond="fusion"), data=make_data())
    cfg = tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "s1"), ndf=4, max_steps=2, ckpt_every=1,
                   precision="fp32", stage2_paired_inverted=5)
    fits, seen = [], []
    real_g = tr.StackGANLoss.g_phase
    import stackgan.train.invert as inv

    def spy_fit(G, photos, emb, n, seed, **kw):  # the trainer's fit, at 3 Adam steps
        fits.append(n)
        assert photos.shape[2:] == (16, 16) and emb.shape[0] == photos.shape[0]
        return real_fit(G, photos, emb, n, seed, **{**kw, "steps": 3})

    def spy_g(self, *a, paired=None, **kw):
        seen.append(paired)
        return real_g(self, *a, paired=paired, **kw)

    real_fit = inv.inverted_bank
    monkeypatch.setattr(inv, "inverted_bank", spy_fit)
    monkeypatch.setattr(tr.StackGANLoss, "g_phase", spy_g)
    tr.train(cfg, data=make_data(size=32))
    assert fits == [5]  # fitted once, for both steps
    bank = torch.load(tmp_path / "run" / "paired_inverted.pt", weights_only=True)
    assert bank["idx"].shape == (5,) and bank["low"].shape == (5, 3, 16, 16) and int(bank["n"]) == 5
    assert len(bank["idx"].unique()) == 5 and torch.isfinite(bank["low"].float()).all()
    rec, real = seen[0]
    assert rec.shape == real.shape == (cfg.batch_size, 3, 32, 32) and rec.requires_grad
    photos = {tuple(p.flatten().tolist()) for p in tr.to_float(make_data(size=32).images[bank["idx"]])}
    assert all(tuple(r.flatten().tolist()) in photos or tuple(r.flip(2).flatten().tolist()) in photos for r in real)
    logged = read_jsonl(tmp_path / "run" / "log.jsonl")
    assert [r["photos"] for r in logged if r.get("event") == "paired_inverted"] == [5]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["stage2_paired_inverted"] == 5
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert fits == [5]  # the resumed run read the bank from its folder
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).stage2_paired_inverted == 0  # old runs: off
    for bad, match in (({"stage2_paired_inverted": 5}, "--stage2-paired-inverted 5 gives"),
                       ({"stage": 2, "stage1": "s1", "stage2_paired": 0.0, "stage2_paired_inverted": 5},
                        "--stage2-paired-inverted 5 gives"),
                       ({"stage": 2, "stage1": "s1", "stage2_paired_inverted": 5, "stage2_paired_warp": 0.25},
                        "give one of the two")):
        with pytest.raises(ConfigError, match=match):
            StackGANConfig(**bad).validate()


@pytest.mark.parametrize("name", ["stage2_consistency", "stage2_paired"])
def test_the_stage_two_terms_are_on_by_default_for_stage_two_only(name):
    from stackgan.model_card import train_command
    from stackgan.stackgan_config import STAGE2_CONSISTENCY, STAGE2_PAIRED, STAGE_DEFAULTS

    assert STAGE_DEFAULTS == {"stage2_consistency": STAGE2_CONSISTENCY, "stage2_paired": STAGE2_PAIRED}
    default = {"stage2_consistency": 150.0, "stage2_paired": 50.0}[name]  # the menu's measured best (README)
    assert STAGE_DEFAULTS[name] == default
    flag = "--" + name.replace("_", "-")
    assert getattr(StackGANConfig().validate(), name) == 0.0
    two = StackGANConfig(stage=2, stage1="s1").validate()
    assert getattr(two, name) == default and two.stage_default(name) == default
    assert getattr(StackGANConfig(stage=2, stage1="s1", **{name: 0.0}).validate(), name) == 0.0
    # a stage-II run folder from before the option: trained without it, and so it stays
    old = two.to_dict()
    old.pop(name)
    assert getattr(StackGANConfig.from_dict(old), name) == 0.0
    assert StackGANConfig.from_dict(two.to_dict()) == two
    # resuming that old run without the option is not "asking" for the new default
    assert tr.ignored_on_resume(two, StackGANConfig.from_dict(old)) == []
    asked = StackGANConfig(stage=2, stage1="s1", **{name: 5.0}).validate()
    assert tr.ignored_on_resume(asked, StackGANConfig.from_dict(old)) == [f"{flag} 5.0 (the run's: 0.0)"]
    # the model card's command line names it only where it differs from the stage's default
    assert flag not in train_command(two) and flag not in train_command(StackGANConfig().validate())
    assert f"{flag} 0" in train_command(StackGANConfig.from_dict(old))


def test_skip_layer_excitation_gates_the_fine_maps_from_the_coarse_ones():
    from stackgan.models.stackgan import SkipExcitation

    torch.manual_seed(0)
    plain = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=64, g_cond="fusion")
    G = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=64, g_cond="fusion", sle=True)
    assert plain.sle is None and sorted(G.sle) == ["3", "4"]  # 4x4 -> 32x32 and 8x8 -> 64x64
    assert all(isinstance(m, SkipExcitation) for m in G.sle.values())
    z, emb = torch.randn(4, 10), torch.randn(4, EMB)
    img, _, _ = G(z, emb)
    assert img.shape == (4, 3, 64, 64) and img.abs().max() <= 1
    img.square().mean().backward()
    for key in ("3", "4"):
        assert G.sle[key].net[1].weight.grad.abs().sum() > 0  # the gates learn
    # the same weights without the gates draw another picture: the gates act (here a constant 0.5)
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if not k.startswith("sle.")})
    for m in G.sle.values():
        torch.nn.init.zeros_(m.net[3].weight)  # sigmoid(0) = 0.5: a constant gate
    G.eval(), plain.eval()
    with torch.no_grad():
        eps = torch.zeros(4, 8)
        assert not torch.allclose(G(z, emb, eps)[0], plain(z, emb, eps)[0])
    # at 16 px there is no map 8x above another: nothing to gate
    assert not Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=16, sle=True).sle


def test_sle_trains_and_resumes(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, sle=True, max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data(size=32))
    again = tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))
    assert again["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["sle"] is True
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert pipe.g1.sle is not None and pipe.generate(NAMES[0], 2, seed=1).stage1.shape == (2, 3, 32, 32)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).sle is False  # old runs: no SLE


def test_noise_inputs_start_silent_learn_their_strength_and_follow_the_seed():
    torch.manual_seed(0)
    plain = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=32, g_cond="fusion", ca=False)
    G = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=32, g_cond="fusion", ca=False, noise=True)
    assert plain.draw_noise([0]) is None and G.noise_sides == [8, 16, 32]
    assert all(not b.noise_strength.detach().any() for b in G.ups)  # zero at the start (StyleGAN)
    z, emb = torch.randn(4, 10), torch.randn(4, EMB)
    img, _, _ = G(z, emb)
    img.square().mean().backward()
    assert all(b.noise_strength.grad.abs().sum() > 0 for b in G.ups)  # the strengths learn
    # zero strength: the plain network's picture, whatever the maps
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if "noise_strength" not in k})
    G.eval(), plain.eval()
    with torch.no_grad():
        assert torch.allclose(G(z, emb)[0], plain(z, emb)[0])
        for b in G.ups:
            b.noise_strength.fill_(0.5)
        maps = G.draw_noise([3, 4, 5, 6])
        assert [tuple(m.shape) for m in maps] == [(4, 1, 8, 8), (4, 1, 16, 16), (4, 1, 32, 32)]
        assert all(torch.equal(a, b) for a, b in zip(maps, G.draw_noise([3, 4, 5, 6])))  # a seed's maps
        assert torch.equal(G.draw_noise([4])[0][0], maps[0][1])  # per seed, whatever the batch
        assert torch.equal(G(z, emb, noise=maps)[0], G(z, emb, noise=maps)[0])
        assert not torch.allclose(G(z, emb, noise=maps)[0], G(z, emb, noise=G.draw_noise([7, 8, 9, 10]))[0])
        assert not torch.allclose(G(z, emb)[0], plain(z, emb)[0])  # unseeded: drawn anew, and it acts
        # the gain: a stored strength of 0.05 at gain 10 is a strength of 0.5 (and Adam moves it 10x as fast)
        fast = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=32, g_cond="fusion", ca=False, noise=True,
                       noise_gain=10).eval()
        fast.load_state_dict({k: v / 10 if "noise_strength" in k else v for k, v in G.state_dict().items()})
        assert torch.allclose(fast(z, emb, noise=maps)[0], G(z, emb, noise=maps)[0], atol=1e-6)
    with pytest.raises(ValueError, match="fusion"):
        Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=32, g_cond="input", noise=True)


def test_g_noise_trains_resumes_and_draws_a_seed_the_same_every_time(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, g_noise=True, max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data(size=32))
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["g_noise"] is True
    ckpt = torch.load(sorted((tmp_path / "run").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    strengths = [v for k, v in ckpt["G"].items() if k.endswith("noise_strength")]
    assert len(strengths) == 3 and all(v.abs().sum() > 0 for v in strengths)  # trained, saved, resumed
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert all(b.noise_strength is not None for b in pipe.g1.ups)
    a, b = pipe.generate(NAMES[0], 2, seed=1), pipe.generate(NAMES[0], 2, seed=1)
    assert torch.equal(a.stage1, b.stage1)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).g_noise is False  # old runs: no noise inputs
    with pytest.raises(ConfigError, match="--g-cond fusion"):
        tiny_cfg(tmp_path, g_noise=True, g_cond="input")
    with pytest.raises(ConfigError, match="give --g-noise too"):
        tiny_cfg(tmp_path, g_noise_gain=10.0)
    gained = tiny_cfg(tmp_path / "gain", image_size=32, g_noise=True, g_noise_gain=10.0, max_steps=1)
    tr.train(gained, data=make_data(size=32))
    assert load_pipeline(tmp_path / "gain" / "run").g1.ups[0].noise_gain == 10.0  # the run folder keeps it


def test_stage2_noise_inputs_start_silent_and_follow_their_own_seeded_stream():
    torch.manual_seed(0)
    kw = dict(c_dim=8, ngf=8, image_size=16, scale=2, g_cond="fusion", ca=False)
    plain, G = Stage2G(EMB, **kw), Stage2G(EMB, **kw, noise=True)
    assert plain.draw_noise([0]) is None and G.noise_sides == [8, 16, 32]  # the up path from 16 / 4 to 32
    low, emb = torch.rand(3, 3, 16, 16) * 2 - 1, torch.randn(3, EMB)
    G(low, emb)[0].square().mean().backward()
    assert all(b.noise_strength.grad.abs().sum() > 0 for b in G.ups)
    plain.load_state_dict({k: v for k, v in G.state_dict().items() if "noise_strength" not in k})
    G.eval(), plain.eval()
    with torch.no_grad():
        assert torch.allclose(G(low, emb)[0], plain(low, emb)[0])  # zero strength: the plain network
        for b in G.ups:
            b.noise_strength.fill_(0.5)
        maps = G.draw_noise([3, 4, 5])
        assert [tuple(m.shape) for m in maps] == [(3, 1, 8, 8), (3, 1, 16, 16), (3, 1, 32, 32)]
        assert torch.equal(G(low, emb, noise=maps)[0], G(low, emb, noise=G.draw_noise([3, 4, 5]))[0])
        assert not torch.allclose(G(low, emb, noise=maps)[0], plain(low, emb)[0])
        # not stage I's stream: a stage-I model with maps of the same side draws other numbers for a seed
        s1 = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=16, g_cond="fusion", ca=False, noise=True)
        assert s1.noise_sides[0] == 8 and not torch.equal(s1.draw_noise([3])[0], G.draw_noise([3])[0])
    with pytest.raises(ValueError, match="fusion"):
        Stage2G(EMB, c_dim=8, ngf=8, image_size=16, scale=2, g_cond="input", noise=True)


def test_g_noise_at_stage2_trains_resumes_and_draws_a_seed_the_same_every_time(tmp_path):
    tr.train(tiny_cfg(tmp_path, out=str(tmp_path / "s1"), max_steps=1, g_noise=True, precision="fp32"),
             data=make_data())
    cfg = tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "s1"), ndf=4, max_steps=2, ckpt_every=1,
                   precision="fp32", g_noise=True, g_noise_gain=10.0)
    tr.train(cfg, data=make_data(size=32))
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    ckpt = torch.load(sorted((tmp_path / "run").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    strengths = [v for k, v in ckpt["G"].items() if k.endswith("noise_strength")]
    assert len(strengths) == 3 and all(v.abs().sum() > 0 for v in strengths)
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert all(b.noise_strength is not None and b.noise_gain == 10.0 for b in pipe.g2.ups)
    a, b = pipe.generate(NAMES[0], 2, seed=1), pipe.generate(NAMES[0], 2, seed=1)
    assert torch.equal(a.images, b.images)
    assert torch.allclose(a.images[1], pipe.generate(NAMES[0], 1, seed=2).images[0], atol=1e-5)  # whatever n


def test_sampling_a_grid_with_noise_inputs_leaves_trainings_random_stream_alone(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, g_noise=True, max_steps=1, precision="fp32")
    trainer = tr.StackGANTrainer(cfg, make_data(size=32), tmp_path / "run")
    torch.manual_seed(5)
    before = torch.get_rng_state()
    first, _ = trainer.sample_grid()
    assert torch.equal(torch.get_rng_state(), before)  # the grid's maps and BN batches come from their own streams
    with torch.no_grad():
        for b in trainer.G_ema.ups:
            b.noise_strength.fill_(0.5)
    trainer._bn_fresh_step = -1
    again, _ = trainer.sample_grid()
    assert torch.equal(torch.get_rng_state(), before) and torch.equal(again, trainer.sample_grid()[0])


def test_g_depth_draws_each_size_with_more_convolutions_and_noise_per_convolution():
    torch.manual_seed(0)
    kw = dict(c_dim=8, z_dim=10, ngf=8, image_size=32, ca=False)
    one, two = Stage1G(EMB, g_cond="fusion", **kw), Stage1G(EMB, g_cond="fusion", **kw, depth=2)
    assert all(len(b.more) == 0 for b in one.ups) and all(len(b.more) == 1 for b in two.ups)
    # the first convolution of each block keeps the depth-1 names: a second layer is added, nothing renamed
    assert set(one.state_dict()) < set(two.state_dict())
    assert sum(p.numel() for p in two.parameters()) > sum(p.numel() for p in one.parameters())
    plain = Stage1G(EMB, g_cond="input", **kw, depth=2)
    assert len(plain.ups[0]) == 7  # upsample, conv, BN, ReLU and a second conv, BN, ReLU
    G = Stage1G(EMB, g_cond="fusion", **kw, noise=True, depth=2)
    z, emb = torch.randn(4, 10), torch.randn(4, EMB)
    G(z, emb)[0].square().mean().backward()
    assert all(b.noise_strength.grad.abs().sum() > 0 and b.more[0].noise_strength.grad.abs().sum() > 0
               for b in G.ups)  # every convolution's noise strength learns
    G.eval()
    with torch.no_grad():
        for b in G.ups:
            b.noise_strength.fill_(0.5)
            b.more[0].noise_strength.fill_(0.5)
        maps = G.draw_noise([3, 4, 5, 6])
        assert [tuple(m.shape) for m in maps] == [(4, 2, 8, 8), (4, 2, 16, 16), (4, 2, 32, 32)]
        assert torch.equal(G(z, emb, noise=maps)[0], G(z, emb, noise=G.draw_noise([3, 4, 5, 6]))[0])
        # the second convolution reads its own channel of the block's map
        other = [torch.cat([m[:, :1], torch.randn_like(m[:, 1:])], dim=1) for m in maps]
        assert not torch.allclose(G(z, emb, noise=maps)[0], G(z, emb, noise=other)[0])
        # depth 1 draws the maps it drew before depth existed: channel 0 of a seed's stream
        flat = Stage1G(EMB, g_cond="fusion", **kw, noise=True)
        assert torch.equal(flat.draw_noise([3])[0], maps[0][:1, :1])
        gen = torch.Generator().manual_seed(1)
        assert [tuple(m.shape) for m in G.random_noise(2, gen)] == [(2, 2, 8, 8), (2, 2, 16, 16), (2, 2, 32, 32)]
    with pytest.raises(ValueError, match="at least 1"):
        Stage1G(EMB, g_cond="fusion", **kw, depth=0)


def test_g_depth_trains_resumes_and_loads(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, g_depth=2, g_noise=True, max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data(size=32))
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["g_depth"] == 2
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert all(len(b.more) == 1 for b in pipe.g1.ups)
    a, b = pipe.generate(NAMES[0], 2, seed=1), pipe.generate(NAMES[0], 2, seed=1)
    assert torch.equal(a.stage1, b.stage1)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).g_depth == 1  # old runs: one convolution
    with pytest.raises(ConfigError, match="only for --stage 1"):
        tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "run"), g_depth=2)
    with pytest.raises(ConfigError):
        tiny_cfg(tmp_path, g_depth=0)


def test_g_upsample_bilinear_interpolates_every_up_block_with_the_same_weights():
    torch.manual_seed(0)
    kw = dict(c_dim=8, z_dim=10, ngf=8, image_size=32, ca=False)
    for cond in ("fusion", "input"):
        near, bil = Stage1G(EMB, g_cond=cond, **kw), Stage1G(EMB, g_cond=cond, **kw, upsample="bilinear")
        ups = [m for m in bil.modules() if isinstance(m, torch.nn.Upsample)]
        assert len(ups) == 3 and all(m.mode == "bilinear" for m in ups)
        assert all(m.mode == "nearest" for m in near.modules() if isinstance(m, torch.nn.Upsample))
        bil.load_state_dict(near.state_dict())  # the same parameters: only how the size doubles differs
        near.eval(), bil.eval()
        z, emb = torch.randn(3, 10), torch.randn(3, EMB)
        with torch.no_grad():
            a, b = near(z, emb)[0], bil(z, emb)[0]
        assert a.shape == b.shape == (3, 3, 32, 32) and not torch.allclose(a, b, atol=1e-4)
    # a single feature: nearest copies it to a 2 x 2 cell, bilinear spreads it over a 4 x 4 one, falling off
    impulse = torch.zeros(1, 1, 4, 4)
    impulse[0, 0, 1, 1] = 1.0
    n, b = upsample2("nearest")(impulse)[0, 0], upsample2("bilinear")(impulse)[0, 0]
    assert torch.count_nonzero(n) == 4 and n.max() == 1
    assert torch.count_nonzero(b) == 16 and b.max() < 1 and torch.isclose(b.sum(), torch.tensor(4.0))
    with pytest.raises(ValueError, match="upsample mode"):
        Stage1G(EMB, g_cond="fusion", **kw, upsample="bicubic")


def test_g_upsample_trains_resumes_and_loads(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, g_upsample="bilinear", max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data(size=32))
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["g_upsample"] == "bilinear"
    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp_path / "run")
    assert {m.mode for m in pipe.g1.modules() if isinstance(m, torch.nn.Upsample)} == {"bilinear"}
    a, b = pipe.generate(NAMES[0], 2, seed=1), pipe.generate(NAMES[0], 2, seed=1)
    assert torch.equal(a.stage1, b.stage1)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).g_upsample == "nearest"  # old runs
    with pytest.raises(ConfigError, match="only for --stage 1"):
        tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "run"), g_upsample="bilinear")
    with pytest.raises(ConfigError):
        tiny_cfg(tmp_path, g_upsample="bicubic")


def test_d_recon_trains_and_resumes(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, d_recon=1.0, max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data(size=32))
    again = tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))
    assert again["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["d_recon"] == 1.0
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["d_recon"] > 0 for r in logs if "d_recon" in r] == [True] * 3
    ckpt = torch.load(sorted((tmp_path / "run").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    assert any(k.startswith("recon_part.") for k in ckpt["D"])  # the decoders are saved and resumed
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).d_recon == 0.0  # old runs: no decoders


def train_resume_and_read(tmp_path: Path, option: str, value: float, **extra) -> tuple[list[dict], dict]:
    """A 32 px stage-I run with ``option`` at ``value`` (and the ``extra`` options): 2 steps, resumed to 3; (its
    step logs, its last checkpoint), after checking the option was saved beside the run."""
    cfg = tiny_cfg(tmp_path, image_size=32, max_steps=2, ckpt_every=1, precision="fp32", **{option: value}, **extra)
    tr.train(cfg, data=make_data(size=32))
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())[option] == value
    logs = [r for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r]
    ckpt = torch.load(sorted((tmp_path / "run").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    return logs, ckpt


def test_d_patch_trains_and_resumes(tmp_path):
    logs, ckpt = train_resume_and_read(tmp_path, "d_patch", 1.0)
    assert len(logs) == 3 and all(r["d_patch"] > 0 and r["g_patch"] > 0 for r in logs)
    assert any(k.startswith("patch_head.") for k in ckpt["D"])  # the head is saved and resumed
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).d_patch == 0.0  # old runs: no patch head


def flat_data(size: int = 32) -> tr.TrainData:
    """make_data's names with each photo one flat colour: every patch of a photo is alike (k-NN radii 0)."""
    d = make_data(size=size)
    return dataclasses.replace(d, images=d.images[:, :, :1, :1].expand(-1, -1, size, size).contiguous())


def test_patch_prior_trains_and_resumes(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, max_steps=2, ckpt_every=1, precision="fp32", patch_prior=30.0)
    tr.train(cfg, data=flat_data())
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=flat_data())["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["patch_prior"] == 30.0
    logs = [r for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r]
    # a fresh G's patches are not flat: outside every ball of the flat photos' patches, so on at every step
    assert len(logs) == 3 and all(r["patch_prior"] > 0 for r in logs)
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).patch_prior == 0.0  # old runs: off
    plain = tr.train(tiny_cfg(tmp_path / "plain", image_size=32, precision="fp32"), data=flat_data())
    assert plain["step"] == 2
    assert all("patch_prior" not in r for r in read_jsonl(tmp_path / "plain" / "run" / "log.jsonl"))


def _sn_layers(D):
    return [m for part in (D.encode, D.cond_head, D.uncond_head, D.patch_head) for m in part.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def test_d_norm_spectral_drops_batchnorm_and_holds_every_layer_at_spectral_norm_one():
    from torch.nn.utils import parametrize

    plain = Stage1D(c_dim=16, ndf=8, image_size=32, d_cond="projection", patch=True)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.encode.modules())  # the default is DCGAN's
    assert not any(parametrize.is_parametrized(m) for m in _sn_layers(plain))
    D = init_weights(Stage1D(c_dim=16, ndf=8, image_size=32, d_cond="projection", patch=True, norm="spectral"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.encode.modules())
    layers = _sn_layers(D)
    assert len(layers) >= 6 and all(parametrize.is_parametrized(m, "weight") for m in layers)
    # the DCGAN init reached the stored weights (N(0, 0.02)), not a copy computed from them
    first = D.encode[0][0].parametrizations.weight.original
    assert 0.01 < first.std().item() < 0.03
    img, c = torch.randn(8, 3, 32, 32), torch.randn(8, 16)
    for _ in range(30):  # a power iteration per training forward
        D(img, c)
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05), m
    cond, uncond = D.eval()(img, c)
    assert cond.shape == uncond.shape == (8,) and torch.isfinite(cond).all()
    with pytest.raises(ValueError, match="norm must be one of"):
        Stage1D(c_dim=16, ndf=8, image_size=32, norm="layer")


def test_d_norm_spectral_trunk_leaves_the_verdict_heads_plain(tmp_path):
    from torch.nn.utils import parametrize

    D = init_weights(Stage1D(c_dim=16, ndf=8, image_size=32, d_cond="projection", patch=True,
                             norm="spectral-trunk"))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.encode.modules())
    trunk = [m for part in (D.encode, D.patch_head) for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    heads = [m for part in (D.cond_head, D.uncond_head) for m in part.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(trunk) >= 4 and all(parametrize.is_parametrized(m, "weight") for m in trunk)
    assert heads and not any(parametrize.is_parametrized(m) for m in heads)
    cfg = tiny_cfg(tmp_path, image_size=32, d_norm="spectral-trunk", max_steps=2, ckpt_every=1)
    assert tr.train(cfg, data=make_data(size=32))["step"] == 2
    ckpt = torch.load(sorted((tmp_path / "run").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    assert any(k.startswith("encode.") and ".parametrizations.weight.original" in k for k in ckpt["D"])
    assert "cond_head.embed.weight" in ckpt["D"]  # the name's projection: a plain, free weight


def test_d_norm_spectral_trains_and_resumes(tmp_path):
    cfg = tiny_cfg(tmp_path, image_size=32, d_norm="spectral", max_steps=2, ckpt_every=1)
    tr.train(cfg, data=make_data(size=32))
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data(size=32))["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["d_norm"] == "spectral"
    ckpt = torch.load(sorted((tmp_path / "run").glob("ckpt-*.pt"))[-1], map_location="cpu", weights_only=False)
    assert any(".parametrizations.weight.original" in k for k in ckpt["D"])  # the normalised D is what resumes
    assert not any("running_mean" in k for k in ckpt["D"])
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).d_norm == "batch"  # old runs: BatchNorm
    with pytest.raises(ConfigError, match="only for --stage 1"):
        tiny_cfg(tmp_path, stage=2, stage1="s1", d_norm="spectral")
    with pytest.raises(ConfigError):
        tiny_cfg(tmp_path, d_norm="layer")


def test_bcr_trains_and_resumes(tmp_path):
    cfg = tiny_cfg(tmp_path, bcr=10.0, diffaugment="translation", max_steps=2, ckpt_every=1, precision="fp32")
    tr.train(cfg, data=make_data())
    again = tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=make_data())
    assert again["step"] == 3
    assert json.loads((tmp_path / "run" / "config.json").read_text())["bcr"] == 10.0
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["bcr"] > 0 for r in logs if "bcr" in r] == [True] * 3
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).bcr == 0.0  # old runs: off


def test_bad_sizes_refused():
    with pytest.raises(ValueError):
        Stage1G(EMB, image_size=48)
    with pytest.raises(ValueError):
        Stage2G(EMB, image_size=64, scale=3)


def test_ca_statistics_and_negative_logvar():
    torch.manual_seed(0)
    ca = CondAugment(EMB, c_dim=4)
    with torch.no_grad():
        ca.fc.weight.zero_()
        ca.fc.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0] + [-2.0, 0.0, 1.0, -4.0]))
    emb = torch.randn(20000, EMB)
    c, mu, logvar = ca(emb)
    assert torch.allclose(mu[0], torch.tensor([0.5, -1.0, 2.0, 0.0]))
    # no ReLU before the split: log sigma^2 can be negative
    assert torch.allclose(logvar[0], torch.tensor([-2.0, 0.0, 1.0, -4.0]))
    assert torch.allclose(c.mean(0), mu[0], atol=0.05)
    assert torch.allclose(c.std(0), torch.exp(0.5 * logvar[0]), rtol=0.05)
    # given eps, c is deterministic
    eps = torch.ones(2, 4)
    c2, _, _ = ca(emb[:2], eps)
    assert torch.allclose(c2[0], mu[0] + torch.exp(0.5 * logvar[0]))


def test_ca_standardises_alike_sentence_vectors():
    torch.manual_seed(0)
    common = torch.randn(EMB)
    emb = torch.nn.functional.normalize(common + 0.1 * torch.randn(6, EMB), dim=1)  # cosines ~0.99
    ca = CondAugment(EMB, c_dim=4)
    ca.set_normalization(emb)
    x = (emb - ca.emb_shift) * ca.emb_scale
    assert torch.allclose(x.mean(0), torch.zeros(EMB), atol=1e-5)
    assert x.pow(2).mean().item() == pytest.approx(1.0, rel=1e-4)
    state = ca.state_dict()
    assert "emb_shift" in state and "emb_scale" in state  # saved with G, applied to new names too
    other = CondAugment(EMB, c_dim=4)
    other.load_state_dict(state)
    assert torch.equal(other.encode(emb)[0], ca.encode(emb)[0])


def test_wrong_names_never_the_true_name():
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (5000,))
    wrong = tr.wrong_labels(labels, 5)
    assert not torch.any(wrong == labels)
    assert wrong.min() >= 0 and wrong.max() < 5
    # drawn among all the other names, not shifted by one
    for lab in range(5):
        got = set(wrong[labels == lab].tolist())
        assert got == set(range(5)) - {lab}
    assert torch.all(tr.wrong_labels(torch.zeros(100, dtype=torch.long), 2) == 1)
    with pytest.raises(DataError):
        tr.wrong_labels(labels, 1)


def test_hard_wrong_names_come_from_the_nearest_names():
    torch.manual_seed(0)
    base = torch.randn(3, 8)
    # names 0-2 and 3-5 are two close families (same bowl, other topping)
    emb = torch.cat([base[0] + 0.1 * torch.randn(3, 8), base[1] + 0.1 * torch.randn(3, 8)])
    near = tr.nearest_names(emb, k=2)
    assert near.shape == (6, 2)
    assert all(set(near[i].tolist()) == ({0, 1, 2} if i < 3 else {3, 4, 5}) - {i} for i in range(6))
    labels = torch.randint(0, 6, (4000,))
    wrong = tr.wrong_labels(labels, 6, near=near, p_near=1.0)
    assert not torch.any(wrong == labels)
    assert torch.all((wrong < 3) == (labels < 3))  # always the same family
    half = tr.wrong_labels(labels, 6, near=near, p_near=0.5)
    same = ((half < 3) == (labels < 3)).float().mean().item()
    assert 0.6 < same < 0.8  # half near + half uniform (2 of 5 others are in the family)


def test_train_data_validation():
    d = make_data()
    with pytest.raises(DataError, match="at least 2 different names"):
        tr.TrainData(d.images, torch.zeros(len(d.images), dtype=torch.long), ["x"], d.emb[:1])
    with pytest.raises(DataError, match="sentence vectors"):
        tr.TrainData(d.images, d.labels, list(NAMES), d.emb[:3])
    with pytest.raises(DataError, match="uint8"):
        tr.TrainData(d.images.float(), d.labels, list(NAMES), d.emb)


# -- grid names -------------------------------------------------------------------------------------
def test_invented_names_and_grid_choice(tmp_path):
    (tmp_path / "invented.tsv").write_text("name\tbase\n焦がし醤油ラーメン\tラーメン\n\n#x\nﾋﾟﾘ辛ｻｰﾓﾝ丼\t丼\n",
                                           encoding="utf-8")
    inv = tr.read_invented(tmp_path)
    assert inv == ["焦がし醤油ラーメン", "ピリ辛サーモン丼"]
    assert tr.read_invented(tmp_path / "nowhere") == []
    names = [f"n{i}" for i in range(10)]
    grid = tr.choose_grid_names(names, None, inv, 6)
    assert len(grid) == 6 and grid[-2:] == inv and len(set(grid)) == 6
    assert tr.choose_grid_names(names, None, [], 4) == ["n0", "n2", "n5", "n7"]
    # with sentence vectors: far-apart names first, not near-duplicates
    a, b, c = torch.eye(3)
    emb = torch.stack([a, a + 0.01 * b, a + 0.02 * c, b, b + 0.01 * a, c])
    six = [f"m{i}" for i in range(6)]
    assert tr.choose_grid_names(six, emb, [], 3) == ["m0", "m3", "m5"]
    assert tr.choose_grid_names(six, emb, [], 3, counts=[1, 1, 1, 1, 5, 1])[0] == "m4"  # most photos first
    assert tr.choose_grid_names(six, emb, inv, 4) == ["m0", "m3", "焦がし醤油ラーメン", "ピリ辛サーモン丼"]


# -- training ---------------------------------------------------------------------------------------
def _finite(stats):
    return all(torch.isfinite(torch.tensor(v)) for v in stats.values())


def test_one_step_stage1_bce_and_hinge(tmp_path):
    data = make_data()
    t = tr.StackGANTrainer(tiny_cfg(tmp_path), data, tmp_path / "a")
    s = t.train_step()
    assert s is not None and _finite(s) and t.step == 1
    assert 0 < s["d_real"] < 1 and s["kl"] >= 0
    t2 = tr.StackGANTrainer(tiny_cfg(tmp_path, loss="hinge", ada=True), data, tmp_path / "b")
    s2 = t2.train_step()
    assert s2 is not None and _finite(s2) and s2["gp"] > 0


def test_one_step_with_fusion_projection_and_mode_seeking(tmp_path):
    data = make_data()
    for loss in ("bce", "hinge"):
        cfg = tiny_cfg(tmp_path, g_cond="fusion", d_cond="projection", mode_seeking=1.0, loss=loss)
        t = tr.StackGANTrainer(cfg, data, tmp_path / loss)
        before = [p.detach().clone() for p in t.G.parameters()]
        s = t.train_step()
        assert s is not None and _finite(s) and s["ms"] > 0
        assert all(not torch.equal(b, p) for b, p in zip(before, t.G.parameters()))
    # the paper's settings log no mode-seeking term
    s = tr.StackGANTrainer(tiny_cfg(tmp_path), data, tmp_path / "paper").train_step()
    assert s["ms"] == 0.0


def test_name_logits_are_the_projection_logits_less_their_name_free_part():
    head = ProjectionLogits(feat_ch=8, c_dim=4)
    feats, c_all = torch.randn(3, 8, 4, 4), torch.randn(5, 4)
    logits = head.name_logits(feats, c_all)
    assert logits.shape == (3, 5)
    free = head.linear(feats.sum(dim=(2, 3))).view(-1)
    for k in range(5):
        torch.testing.assert_close(logits[:, k], head(feats, c_all[k].expand(3, 4)) - free)


def test_name_loss_and_lazy_r1_train_and_resume(tmp_path):
    data = make_data()
    cfg = tiny_cfg(tmp_path, name_loss=1.0, r1=1.0, r1_every=2, max_steps=4, ckpt_every=2)
    t = tr.StackGANTrainer(cfg, data, tmp_path / "t")
    first, second = t.train_step(), t.train_step()
    assert _finite(first) and _finite(second)
    assert first["r1"] > 0 and second["r1"] == 0.0  # lazy: steps 0, 2, 4, ...
    assert first["name_d"] > 0 and first["name_g"] > 0
    off = tr.StackGANTrainer(dataclasses.replace(cfg, name_loss=0.0, r1=0.0), data, tmp_path / "off").train_step()
    assert off["name_d"] == 0.0 and off["r1"] == 0.0
    summary = tr.train(cfg, data=data)
    assert summary["step"] == 4
    again = tr.train(dataclasses.replace(cfg, resume=True, max_steps=6), data=data)
    assert again["step"] == 6
    assert json.loads((tmp_path / "run" / "config.json").read_text())["name_loss"] == 1.0
    with pytest.raises(ConfigError, match="name-loss 1 .* needs --d-cond projection"):
        StackGANConfig(name_loss=1.0, d_cond="concat").validate()
    with pytest.raises(ConfigError, match="r1"):
        StackGANConfig(r1=-1.0).validate()


def test_no_ca_ablation_uses_mu_and_no_kl(tmp_path):
    ca = CondAugment(EMB, c_dim=4, stochastic=False)
    assert ca.fc.out_features == 4
    emb = torch.randn(3, EMB)
    c, mu, logvar = ca(emb, torch.randn(3, 4))
    assert logvar is None and torch.equal(c, mu)
    t = tr.StackGANTrainer(tiny_cfg(tmp_path, ca=False), make_data(), tmp_path / "a")
    s = t.train_step()
    assert s is not None and _finite(s) and s["kl"] == 0.0 and s["sigma"] == 0.0


def test_batches_draw_every_name_equally_often(tmp_path):
    data = make_data(n=40)
    data.labels = torch.tensor([0] * 28 + [1] * 6 + [2] * 4 + [3] * 2)  # 14x more photos of one name
    torch.manual_seed(0)
    t = tr.StackGANTrainer(tiny_cfg(tmp_path, batch_size=64), data, tmp_path / "a")
    seen = torch.cat([t._batch()[1] for _ in range(50)])
    share = torch.bincount(seen, minlength=4).float() / seen.numel()
    assert torch.allclose(share, torch.full((4,), 0.25), atol=0.03)
    t2 = tr.StackGANTrainer(tiny_cfg(tmp_path, batch_size=64, balance_names=False), data, tmp_path / "b")
    seen2 = torch.cat([t2._batch()[1] for _ in range(50)])
    assert (seen2 == 0).float().mean() > 0.6  # photo-uniform: the big name dominates


def test_generator_gets_gradient_through_diffaugment(tmp_path):
    t = tr.StackGANTrainer(tiny_cfg(tmp_path), make_data(), tmp_path / "a")
    before = [p.detach().clone() for p in t.G.parameters()]
    t.train_step()
    changed = [not torch.equal(b, p) for b, p in zip(before, t.G.parameters())]
    assert all(changed)  # every G parameter (CA included) moved through D(augment(fake))


def test_fit_writes_run_folder_stage1_then_stage2(tmp_path):
    data = make_data()
    cfg = tiny_cfg(tmp_path, max_steps=2, sample_every=1, ckpt_every=1, keep_ckpts=1)
    out = tmp_path / "s1"
    summary = tr.StackGANTrainer(cfg, data, out).fit()
    assert summary["step"] == 2
    for f in ("config.json", "G_ema.safetensors", "names.json", "embeddings.safetensors", "log.jsonl",
              "losses.png", "progress.gif", "samples/000000.png", "samples/000002.png"):
        assert (out / f).is_file(), f
    assert sorted(p.name for p in out.glob("ckpt-*.pt")) == ["ckpt-000002.pt"]
    saved = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert saved["emb_dim"] == EMB and saved["_kind"] == "StackGANConfig"
    recs = read_jsonl(out / "log.jsonl")
    assert [r["step"] for r in recs if "d_loss" in r] == [1, 2]
    assert all("img_s" in r and "sec_step" in r for r in recs if "d_loss" in r)
    div = [r for r in recs if "div_gen" in r]
    assert div and div[-1]["div_real"] > 0 and div[-1]["div_gen"] >= 0
    assert summary["diversity"]["div_ratio"] == pytest.approx(div[-1]["div_gen"] / div[-1]["div_real"])
    from PIL import Image

    with Image.open(out / "samples/000002.png") as im:  # 4 rows x 4 cols of 16 px + 2 px padding
        assert im.size == (4 * 18 + 2, 4 * 18 + 2)

    # stage II on the stage-I run (scale 2: 16 -> 32 px)
    ref = tr.load_stage1(out)
    assert ref.cfg.image_size == 16 and not ref.G.training
    cfg2 = tiny_cfg(tmp_path, stage=2, stage1=str(out), ndf=4, max_steps=1, sample_every=1, ckpt_every=1)
    out2 = tmp_path / "s2"
    t2 = tr.StackGANTrainer(cfg2, make_data(size=32), out2, stage1=ref)
    s1_before = [p.clone() for p in ref.G.parameters()]
    assert t2.fit()["step"] == 1
    assert all(torch.equal(a, b) for a, b in zip(s1_before, ref.G.parameters()))  # stage I stays frozen
    assert (out2 / "stage1" / "G_ema.safetensors").is_file() and (out2 / "stage1" / "config.json").is_file()
    with Image.open(out2 / "samples/000001.png") as im:  # 4 rows x (2 pairs of stage I | stage II) of 32 px
        assert im.size == (4 * 34 + 2, 4 * 34 + 2)
    recs2 = read_jsonl(out2 / "log.jsonl")
    assert _finite({k: v for k, v in recs2[-2].items() if isinstance(v, float)})


def test_stage2_refuses_mismatched_stage1(tmp_path):
    data = make_data()
    out = tmp_path / "s1"
    tr.StackGANTrainer(tiny_cfg(tmp_path, max_steps=1), data, out).fit()
    ref = tr.load_stage1(out)
    base = tiny_cfg(tmp_path, stage=2, stage1=str(out), emb_dim=EMB)
    with pytest.raises(CheckpointError, match="text encoder"):
        tr.check_stage1_matches(dataclasses.replace(base, text_encoder="scratch:elsewhere"), ref)
    with pytest.raises(CheckpointError, match="embedding size 12 vs 32"):
        tr.check_stage1_matches(dataclasses.replace(base, emb_dim=32), ref)
    with pytest.raises(CheckpointError, match="image size 16 vs --image-size 32"):
        tr.check_stage1_matches(dataclasses.replace(base, image_size=32), ref)
    # the trainer checks too, before building anything
    with pytest.raises(CheckpointError, match="image size"):
        tr.StackGANTrainer(dataclasses.replace(base, image_size=32), make_data(size=64), tmp_path / "x", stage1=ref)
    # not a stage-I run: a stage-II run, a DCGAN-like config, a missing path, a folder without config
    s2 = tmp_path / "s2"
    s2.mkdir()
    (s2 / "config.json").write_text(json.dumps({**base.to_dict(), "emb_dim": EMB}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="stage-2 run"):
        tr.load_stage1(s2)
    dc = tmp_path / "dcgan"
    dc.mkdir()
    (dc / "config.json").write_text(json.dumps({"_kind": "DCGANConfig"}), encoding="utf-8")
    with pytest.raises(CheckpointError, match="DCGANConfig"):
        tr.load_stage1(dc)
    with pytest.raises(CheckpointError, match="not found"):
        tr.load_stage1(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        tr.load_stage1(tmp_path / "empty")
    # a checkpoint file works as --stage1 too
    assert tr.load_stage1(next(out.glob("ckpt-*.pt"))).cfg.stage == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_continues_and_reproduces_next_step_bit_for_bit(tmp_path, precision):
    data = make_data()
    full = tiny_cfg(tmp_path, out=str(tmp_path / "full"), max_steps=3, ckpt_every=2, sample_every=2,
                    loss="hinge", ada=True, precision=precision)
    tr.train(full, data=data)
    ref = {r["step"]: r for r in read_jsonl(tmp_path / "full" / "log.jsonl") if "d_loss" in r}

    # the same run, stopped after the checkpoint at step 2, then resumed to step 3
    part = dataclasses.replace(full, out=str(tmp_path / "part"), max_steps=2)
    tr.train(part, data=data)
    with pytest.raises(ConfigError, match="--resume"):
        tr.train(part, data=data)  # never silently overwrite a run
    summary = tr.train(dataclasses.replace(part, max_steps=3, resume=True), data=data)
    assert summary["step"] == 3 and summary["steps_this_run"] == 1
    got = {r["step"]: r for r in read_jsonl(tmp_path / "part" / "log.jsonl") if "d_loss" in r}
    assert sorted(got) == [1, 2, 3]
    for key in ("d_loss", "g_loss", "kl", "gp", "aug_p"):
        assert got[3][key] == ref[3][key], key  # bit for bit
    with pytest.raises(CheckpointError, match="no checkpoint"):
        tr.train(dataclasses.replace(part, out=str(tmp_path / "fresh"), resume=True), data=data)


def test_the_default_recipe_has_the_name_term_and_trains_and_resumes_bit_for_bit(tmp_path):
    """`stackgan train`'s defaults (only sizes and budget made tiny): the name term at 0.2 through the
    projection D; a run stopped at its checkpoint and resumed gives the uninterrupted run's next step."""
    assert StackGANConfig().name_loss == 0.2 and StackGANConfig().d_cond == "projection"
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).name_loss == 0.0  # an old run keeps its recipe
    data = make_data()
    small = dict(image_size=16, ngf=8, ndf=8, c_dim=8, z_dim=8, batch_size=8, grid_rows=2, grid_cols=2,
                 progress=False, device="cpu", precision="fp32", ckpt_every=2, sample_every=2, log_every=1)
    full = StackGANConfig(out=str(tmp_path / "full"), max_steps=3, **small).validate()
    tr.train(full, data=data)
    ref = {r["step"]: r for r in read_jsonl(tmp_path / "full" / "log.jsonl") if "d_loss" in r}
    assert all(ref[k]["name_d"] > 0 and ref[k]["name_g"] > 0 for k in ref)
    part = dataclasses.replace(full, out=str(tmp_path / "part"), max_steps=2)
    tr.train(part, data=data)
    tr.train(dataclasses.replace(part, max_steps=3, resume=True), data=data)
    got = {r["step"]: r for r in read_jsonl(tmp_path / "part" / "log.jsonl") if "d_loss" in r}
    for key in ("d_loss", "g_loss", "name_d", "name_g", "kl"):
        assert got[3][key] == ref[3][key], key
    with pytest.raises(ConfigError, match="with --d-cond concat give --name-loss 0"):
        StackGANConfig(d_cond="concat", **small).validate()


def test_nan_loss_restores_last_good_state_and_lowers_lr(tmp_path, capsys):
    t = tr.StackGANTrainer(tiny_cfg(tmp_path), make_data(), tmp_path / "a")
    assert t.train_step() is not None
    s = assert_a_nan_step_is_undone(t, tmp_path / "a" / "log.jsonl", capsys)
    assert _finite(s)
    # it gives up after repeated failures instead of looping
    with pytest.raises(tr.TrainingDiverged):
        for _ in range(tr.MAX_NAN_EVENTS + 1):
            with torch.no_grad():
                next(t.D.parameters()).fill_(float("inf"))
            t.train_step()


def test_ema_warms_up_then_follows_the_target_decay(tmp_path):
    assert tr.ema_decay(0.999, 0) == pytest.approx(0.1)
    assert tr.ema_decay(0.999, 90) == pytest.approx(0.91)
    assert tr.ema_decay(0.999, 100_000) == 0.999
    t = tr.StackGANTrainer(tiny_cfg(tmp_path), make_data(), tmp_path / "a")
    init = [p.clone() for p in t.G_ema.parameters()]
    t.train_step()
    # after one step the EMA is 90% of G already, not 99.9% of the random initialisation
    for e, g, i in zip(t.G_ema.parameters(), t.G.parameters(), init):
        assert torch.allclose(e, 0.1 * i + 0.9 * g, atol=1e-6)


def test_lr_halves_every_decay_epochs(tmp_path):
    t = tr.StackGANTrainer(tiny_cfg(tmp_path, lr_decay_epochs=2), make_data(n=16), tmp_path / "a")
    assert t.current_lr() == (2e-4, 2e-4)
    t.step = 4  # 16 photos / batch 8 = 2 steps an epoch -> epoch 2
    assert t.current_lr() == (1e-4, 1e-4)
    t.step = 8
    assert t.current_lr() == (5e-5, 5e-5)


def test_stage_only_options_are_refused_for_the_other_stage_and_kept_for_their_own():
    values = dict(stage1="s1", stage2_skips=True, stage2_consistency=1.0, stage2_paired=1.5, stage2_input_pool=2,
                  g_depth=2, g_upsample="bilinear", d_norm="spectral", d_patch=0.5, d_vision=1.0, d_recon=1.0,
                  part_layer=8)
    assert set(values) == set(STAGE_ONLY)  # a new entry of the table gets a value here
    stage_args = {1: {}, 2: dict(stage1="s1")}
    for name, value in values.items():
        own, _why = STAGE_ONLY[name]
        extra = dict(parts=True) if name == "part_layer" else {}
        kept = StackGANConfig(stage=own, **{**stage_args[own], **extra, name: value}).validate()
        assert getattr(kept, name) == value
        other = 3 - own
        with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')}.* is only for --stage {own} ") as e:
            StackGANConfig(stage=other, **{**stage_args[other], **extra, name: value}).validate()
        if not isinstance(value, bool) and name != "stage1":
            assert f" {value:g} " in str(e.value) if isinstance(value, float) else f" {value} " in str(e.value)
    # the field's default, or a false value, is not "given" (stage II's 0 turns its terms off on stage I too)
    assert StackGANConfig(stage2_consistency=0.0, stage2_paired=0.0, d_norm="batch", g_depth=1).validate()
    assert StackGANConfig(stage=2, stage1="s1", g_upsample="nearest", d_patch=0.0).validate()


def test_config_checks():
    with pytest.raises(ConfigError, match="--stage1"):
        StackGANConfig(stage=2).validate()
    with pytest.raises(ConfigError, match="only for --stage 2"):
        StackGANConfig(stage1="x").validate()
    with pytest.raises(ConfigError, match="budget"):
        StackGANConfig(max_steps=0, epochs=0).validate()
    with pytest.raises(ConfigError, match="DiffAugment"):
        StackGANConfig(diffaugment="color,zoom").validate()
    with pytest.raises(ConfigError, match="image_size|image-size"):
        StackGANConfig(image_size=48).validate()
    assert StackGANConfig(stage=2, stage1="x", image_size=32, stage2_size=128).out_size == 64
    with pytest.raises(ConfigError, match="g.cond"):
        StackGANConfig(g_cond="late").validate()
    with pytest.raises(ConfigError, match="mode.seeking"):
        StackGANConfig(mode_seeking=-1.0).validate()
    cfg = StackGANConfig().validate()
    assert (cfg.g_cond, cfg.d_cond, cfg.mode_seeking, cfg.ca) == ("fusion", "projection", 0.0, True)
    # a run folder written before these options existed loads with the settings it was trained with
    old = cfg.to_dict()
    for k in ("g_cond", "d_cond", "balance_names", "stage2_residual", "name_loss", "r1"):  # newer than that folder
        old.pop(k)
    back = StackGANConfig.from_dict(old)
    assert (back.g_cond, back.d_cond, back.balance_names, back.stage2_residual) == ("input", "concat", False, False)
    assert StackGANConfig.from_dict(cfg.to_dict()) == cfg


def test_cli_train_on_a_photo_folder(tmp_path, monkeypatch, capsys):
    """`stackgan train` end to end: a real photo folder through the data loader; the text encoder is
    replaced by a fixed hash embedding so the test needs no model."""
    from PIL import Image

    from stackgan.cli import main

    data = tmp_path / "photos"
    rng = torch.Generator().manual_seed(0)
    for name in ("カツカレー", "きつねうどん", "塩ラーメン"):
        (data / name).mkdir(parents=True)
        for i in range(4):
            arr = torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8, generator=rng).numpy()
            Image.fromarray(arr).save(data / name / f"{i}.png")
    (data / "invented.tsv").write_text("name\n焦がし醤油ラーメン\n", encoding="utf-8")

    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--image-size", "16", "--ngf", "8", "--ndf", "8",
            "--c-dim", "8", "--batch-size", "4", "--max-steps", "2", "--no-progress", "--grid-rows", "4",
            "--grid-cols", "2", "--device", "cpu"]
    assert main(args) == 0
    assert "done:" in capsys.readouterr().out
    names = json.loads((out / "names.json").read_text(encoding="utf-8"))
    assert names["names"] == sorted(["カツカレー", "きつねうどん", "塩ラーメン"])
    assert names["encoder_id"] == f"hash-{EMB}"  # the exact encoder, checked when the model encodes a new name
    assert "焦がし醤油ラーメン" in names["grid_names"]
    assert main(args) == 2  # the run exists: a clear error, not an overwrite
    assert "--resume" in capsys.readouterr().err
    # a resumed run keeps its grid rows (even if the grid choice would differ now)
    kept = list(reversed(names["grid_names"]))
    (out / "names.json").write_text(json.dumps({**names, "grid_names": kept}), encoding="utf-8")
    assert main(args + ["--max-steps", "3", "--resume"]) == 0  # the later --max-steps wins
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["max_steps"] == 3
    assert json.loads((out / "names.json").read_text(encoding="utf-8"))["grid_names"] == kept
    # stage 2 with a stage-I run of another text encoder: refused with a message, exit 2
    shutil.copytree(out, tmp_path / "other")
    cfg = json.loads((tmp_path / "other" / "config.json").read_text(encoding="utf-8"))
    cfg["text_encoder"] = "scratch:enc"
    (tmp_path / "other" / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    rc = main(["train", "--stage", "2", "--stage1", str(tmp_path / "other"), "--data", str(data), "--out",
               str(tmp_path / "s2"), "--image-size", "16", "--stage2-size", "128", "--no-progress"])
    assert rc == 2 and "text encoder" in capsys.readouterr().err


# -- precision and time budgets ------------------------------------------------------------------------
def test_precision_resolution_and_legacy_runs():
    from stackgan.utils.device import cpu_has_native_bf16, resolve_precision

    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(ConfigError, match="--precision"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="--precision"):
        StackGANConfig(precision="fp16").validate()
    # a run folder written before --precision trained in fp32 on the CPU, and resumes so
    legacy = StackGANConfig().to_dict()
    del legacy["precision"]
    assert StackGANConfig.from_dict(legacy).precision == "fp32"


def test_bf16_path_runs_channels_last_under_autocast_with_fp32_weights(tmp_path):
    cfg = tiny_cfg(tmp_path, precision="bf16", g_cond="fusion", d_cond="projection")
    t = tr.StackGANTrainer(cfg, make_data(), tmp_path / "run", device="cpu")
    assert t.precision == "bf16" and t.use_amp
    conv = next(m for m in t.G.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in [*t.G.parameters(), *t.D.parameters(), *t.G_ema.parameters()])
    seen = []
    hook = t.D.encode.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    stats = t.train_step()
    hook.remove()
    assert _finite(stats) and seen and all(d == torch.bfloat16 for d in seen)
    assert t.checkpoint_state()["precision"] == "bf16"
    fp = tr.StackGANTrainer(tiny_cfg(tmp_path, precision="fp32"), make_data(), tmp_path / "run32", device="cpu")
    assert not fp.use_amp
    assert all(p.is_contiguous() for p in fp.G.parameters())  # the exact path is today's


def test_fused_ema_update_matches_a_loop_of_lerps():
    torch.manual_seed(0)
    model = Stage1G(EMB, 16, 20, 8, 16, "fusion")
    ema = Stage1G(EMB, 16, 20, 8, 16, "fusion")
    ref = Stage1G(EMB, 16, 20, 8, 16, "fusion")
    ref.load_state_dict(ema.state_dict())
    model(torch.randn(4, 20), torch.randn(4, EMB))  # move BN statistics
    tr.ema_update(ema, model, 0.9)
    with torch.no_grad():
        for pr, pm in zip(ref.parameters(), model.parameters()):
            pr.lerp_(pm, 0.1)
    assert all(torch.equal(a, b) for a, b in zip(ema.parameters(), ref.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ema.buffers(), model.buffers()))


def test_max_minutes_stops_checkpoints_and_records_the_time(tmp_path, capsys):
    data = make_data()
    # a budget smaller than one step: the run stops after its first step, with a checkpoint and a grid
    cfg = tiny_cfg(tmp_path, max_steps=0, max_minutes=1e-6, sample_every=50, ckpt_every=50)
    summary = tr.train(cfg, data=data)
    run = tmp_path / "run"
    assert summary["step"] == 1 and summary["stopped_by"] == "max_minutes"
    assert (run / "ckpt-000001.pt").is_file() and (run / "samples" / "000001.png").is_file()
    assert (run / "G_ema.safetensors").is_file()
    timing = json.loads((run / "timing.json").read_text())
    assert timing["step"] == 1 and timing["stopped_by"] == "max_minutes" and timing["train_seconds"] > 0
    assert timing["max_minutes"] == 1e-6 and timing["precision"] in ("fp32", "bf16")
    assert [r for r in read_jsonl(run / "log.jsonl") if r.get("event") == "stop"][-1]["stopped_by"] == "max_minutes"
    spent = tr.io.load_checkpoint(run / "ckpt-000001.pt")["train_seconds"]
    assert spent > 0
    # resumed with the same budget: nothing to do; with a step budget beside it, it goes on
    capsys.readouterr()
    again = tr.train(dataclasses.replace(cfg, resume=True), data=data)
    assert again["step"] == 1 and "nothing to do" in capsys.readouterr().out
    more = tr.train(dataclasses.replace(cfg, resume=True, max_minutes=0.0, max_steps=3), data=data)
    assert more["step"] == 3 and more["stopped_by"] == "max_steps" and more["train_seconds"] > spent
    assert json.loads((run / "timing.json").read_text())["step"] == 3
    with pytest.raises(ConfigError, match="give a budget"):
        tiny_cfg(tmp_path, max_steps=0, max_minutes=0.0)


def test_a_damaged_newest_checkpoint_does_not_block_resume(tmp_path):
    data = make_data()
    cfg = tiny_cfg(tmp_path, max_steps=4, ckpt_every=2, keep_ckpts=5)
    tr.train(cfg, data=data)
    ref = {r["step"]: r["d_loss"] for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r}
    newest = tmp_path / "run" / "ckpt-000004.pt"
    newest.write_bytes(newest.read_bytes()[:100])  # cut short, as by a full disk
    said = []
    summary = tr.train(dataclasses.replace(cfg, resume=True), data=data, printer=said.append)
    assert any("ckpt-000004.pt" in m and "cannot read" in m for m in said)
    assert any("resuming from ckpt-000002.pt" in m for m in said)
    assert summary["step"] == 4 and summary["steps_this_run"] == 2
    got = {r["step"]: r["d_loss"] for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r}
    assert got == ref  # steps 3 and 4 again, the same as the first time
    for p in (tmp_path / "run").glob("ckpt-*.pt"):
        p.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="every checkpoint"):
        tr.train(dataclasses.replace(cfg, resume=True), data=data, printer=said.append)


def test_resume_names_the_options_it_ignores(tmp_path):
    data = make_data()
    cfg = tiny_cfg(tmp_path, max_steps=1, ckpt_every=1)
    tr.train(cfg, data=data)
    said = []
    summary = tr.train(dataclasses.replace(cfg, resume=True, max_steps=2, kl=0.5, ngf=16), data=data,
                       printer=said.append)
    assert summary["step"] == 2  # resumed with the run's own model, not a wider one
    note = next(m for m in said if m.startswith("--resume keeps the run's own settings"))
    assert "--kl 0.5 (the run's: 2.0)" in note and "--ngf 16 (the run's: 8)" in note
    assert "--max-steps" not in note  # a budget is taken from the command line, not ignored
    said.clear()
    tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=data, printer=said.append)
    assert not [m for m in said if "ignored" in m]


def test_resume_without_a_budget_keeps_the_runs_budget(tmp_path):
    data = make_data()
    cfg = tiny_cfg(tmp_path, max_steps=3, ckpt_every=1)
    run = tmp_path / "run"
    tr.train(dataclasses.replace(cfg, max_steps=1), data=data)
    saved = json.loads((run / "config.json").read_text())
    saved.update(max_steps=3, max_minutes=60.0)  # as a run started with --max-steps 3 --max-minutes 60
    (run / "config.json").write_text(json.dumps(saved))
    defaults = {f.name: f.default for f in dataclasses.fields(tr.StackGANConfig)}
    plain = dataclasses.replace(cfg, resume=True, **{f: defaults[f] for f in tr.BUDGET_FIELDS})
    assert tr.resumed_config(plain, run).max_minutes == 60.0  # not the command line's default budget
    summary = tr.train(plain, data=data)
    assert summary["step"] == 3 and summary["stopped_by"] == "max_steps"


def test_resume_keeps_the_runs_checkpoint_and_sample_intervals_unless_given(tmp_path):
    data = make_data()
    cfg = tiny_cfg(tmp_path, max_steps=1, ckpt_every=7, keep_ckpts=5, sample_every=9, log_every=2)
    run = tmp_path / "run"
    tr.train(cfg, data=data)
    defaults = {f.name: f.default for f in dataclasses.fields(tr.StackGANConfig)}
    plain = dataclasses.replace(cfg, resume=True, **{f: defaults[f] for f in tr.RUN_FOLDER_FIELDS})
    got = tr.resumed_config(plain, run)  # `stackgan train --resume` without those options
    assert (got.ckpt_every, got.keep_ckpts, got.sample_every, got.log_every) == (7, 5, 9, 2)
    asked = tr.resumed_config(dataclasses.replace(plain, ckpt_every=3), run)
    assert asked.ckpt_every == 3 and asked.sample_every == 9


# -- SIGKILL: a killed run resumes to the run it would have been ------------------------------------------
_KILL_DRIVER = r'''
import hashlib, os, signal, sys
import torch
import stackgan.text

def fake_embed(names, spec="e5", cache_path=None, device="cpu"):
    return torch.stack([torch.randn(12, generator=torch.Generator().manual_seed(
        int(hashlib.sha1(n.encode()).hexdigest()[:8], 16))) for n in names])

stackgan.text.embed_names = fake_embed  # no text model in a test
kill_at, nth = os.environ.get("KILL_AT"), int(os.environ.get("KILL_NTH", "1"))
if kill_at:  # SIGKILL ourselves with the file fully written to its temporary name, before it is published
    real_replace, seen = os.replace, []
    def replace(src, dst):
        if os.path.basename(dst) == kill_at:
            seen.append(dst)
            if len(seen) == nth:
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)
    os.replace = replace
from stackgan.cli import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.mark.slow  # five fresh interpreters importing torch: about a minute on 2 cores
def test_sigkill_during_training_and_checkpoint_writes_loses_at_most_one_interval(tmp_path):
    """A real `stackgan train` (fp32) killed with SIGKILL three times: while a checkpoint is being
    written, while the EMA weights are, and at a random step from outside. Each time the newest intact
    checkpoint is at most one --ckpt-every behind the last logged step; resuming after each kill ends in
    exactly the run an uninterrupted one gives: the same weights, the same log, the same grids, and no
    temporary files left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from PIL import Image
    from safetensors.torch import load_file

    from stackgan.utils import io

    data = tmp_path / "photos"
    rng = torch.Generator().manual_seed(0)
    for name in NAMES[:3]:
        (data / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8, generator=rng).numpy()).save(
                data / name / f"{i}.png")
    driver = tmp_path / "driver.py"
    driver.write_text(_KILL_DRIVER, encoding="utf-8")
    every, steps = 20, 120
    env = dict(os.environ, OMP_NUM_THREADS="1", STACKGAN_CACHE=str(tmp_path / "cache"))

    def train(out: Path, *extra: str, kill_at: str | None = None, nth: int = 1, background: bool = False):
        args = [sys.executable, str(driver), "train", "--data", str(data), "--out", str(out), "--image-size", "16",
                "--ngf", "8", "--ndf", "8", "--c-dim", "8", "--batch-size", "4", "--max-steps", str(steps),
                "--ckpt-every", str(every), "--sample-every", str(every), "--log-every", "1", "--keep-ckpts", "2",
                "--grid-rows", "3", "--grid-cols", "2", "--precision", "fp32", "--device", "cpu", "--no-progress",
                *extra]
        e = dict(env, KILL_AT=kill_at or "", KILL_NTH=str(nth))
        if background:
            return subprocess.Popen(args, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return subprocess.run(args, env=e, capture_output=True, text=True, timeout=300)

    def logged(out: Path) -> int:
        recs = [r for r in read_jsonl(out / "log.jsonl") if "d_loss" in r] if (out / "log.jsonl").exists() else []
        return recs[-1]["step"] if recs else 0

    def check_loss(out: Path) -> None:
        kept = io.latest_intact_checkpoint(out)[1]["step"]
        assert 0 <= logged(out) - kept <= every, (logged(out), kept)

    ref = tmp_path / "ref"
    done = train(ref)
    assert done.returncode == 0, done.stderr

    run = tmp_path / "run"
    r = train(run, kill_at="ckpt-000040.pt")  # killed while writing the step-40 checkpoint
    assert r.returncode == -signal.SIGKILL and list(run.glob(".ckpt-000040.pt.*.tmp")) and logged(run) == 40
    check_loss(run)
    r = train(run, "--resume", kill_at="G_ema.safetensors", nth=2)  # resumes at 20; killed writing G_ema at 60
    assert r.returncode == -signal.SIGKILL and (run / "ckpt-000060.pt").is_file(), r.stderr
    check_loss(run)
    proc = train(run, "--resume", background=True)  # killed from outside, between checkpoints
    deadline = time.monotonic() + 240
    while logged(run) < 85 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    check_loss(run)
    done = train(run, "--resume")
    assert done.returncode == 0, done.stderr

    def losses(out: Path) -> list[dict]:
        drop = {"sec_step", "train_seconds", "img_s", "epoch"}
        return [{k: v for k, v in rec.items() if k not in drop} for rec in read_jsonl(out / "log.jsonl")]

    got, want = losses(run), losses(ref)
    assert [r["step"] for r in got] == [r["step"] for r in want]  # no step twice, none missing
    assert got == want
    a, b = load_file(run / "G_ema.safetensors"), load_file(ref / "G_ema.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    grids = sorted(p.name for p in (ref / "samples").glob("*.png"))
    assert grids == sorted(p.name for p in (run / "samples").glob("*.png")) and len(grids) == steps // every + 1
    for g in grids:
        assert (run / "samples" / g).read_bytes() == (ref / "samples" / g).read_bytes(), g
    assert not list(run.glob(".*.tmp")) and len(list(run.glob("ckpt-*.pt"))) == 2


# -- the run-folder rules shared with `stackgan baseline-dcgan` ----------------------------------------
def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path, monkeypatch):
    """The Ctrl-C handler shared with the DCGAN (stackgan.train.interrupt): the first one lets the step
    finish, then the run checkpoints and stops; a second one interrupts at once."""
    import os
    import signal

    from stackgan.train.interrupt import MESSAGE, graceful_interrupt

    real_step = tr.StackGANTrainer.train_step

    def step_then_ctrl_c(self):
        stats = real_step(self)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(tr.StackGANTrainer, "train_step", step_then_ctrl_c)
    said: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    summary = tr.train(tiny_cfg(tmp_path, max_steps=5), data=make_data(), printer=said.append)
    assert summary["stopped_by"] == "interrupt" and summary["step"] == 1 and MESSAGE in said
    assert (tmp_path / "run" / "ckpt-000001.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is before
    # the second Ctrl-C does not wait for the step
    with pytest.raises(KeyboardInterrupt):
        with graceful_interrupt(said.append) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGINT) is before


def test_lr_sets_both_rates_as_in_the_dcgan(capsys):
    import argparse

    p = argparse.ArgumentParser()
    StackGANConfig.add_arguments(p)
    cfg = StackGANConfig.from_args(p.parse_args(["--lr", "0.001"]))
    assert (cfg.lr_g, cfg.lr_d) == (0.001, 0.001)
    assert "note: --lr is deprecated; use --lr-g and --lr-d" in capsys.readouterr().err
    assert StackGANConfig.from_args(p.parse_args(["--lr-g", "0.003"])).lr_g == 0.003


# -- --parts: the name's parts beside its sentence vector ---------------------------------------------
PARTS = {"カツカレー": ("カレー", "カツ", "-"), "きつねうどん": ("うどん", "きつね", "-"),
         "ピリ辛サーモン丼": ("丼", "サーモン", "ピリ辛"), "味噌ラーメン": ("味噌ラーメン", "-", "-")}


def parts_folder(root: Path, attributes: bool = True) -> Path:
    """Three photos of each of NAMES with names.tsv, attributes.tsv and invented.tsv (サーモンうどん)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    names, attrs = ["file\tname"], ["file\tname\tbase\ttopping\tmodifier"]
    for k, name in enumerate(NAMES):
        for i in range(3):
            Image.new("RGB", (20, 20), (60 * k, 40 * i, 90)).save(root / f"{k}-{i}.png")
            names.append(f"{k}-{i}.png\t{name}")
            attrs.append(f"{k}-{i}.png\t{name}\t" + "\t".join(PARTS[name]))
    (root / "names.tsv").write_text("\n".join(names) + "\n", encoding="utf-8")
    if attributes:
        (root / "attributes.tsv").write_text("\n".join(attrs) + "\n", encoding="utf-8")
    (root / "invented.tsv").write_text("name\tbase\ttopping\tmodifier\nサーモンうどん\tうどん\tサーモン\t-\n",
                                       encoding="utf-8")
    return root


def test_ca_with_parts_standardises_the_sentence_block_only():
    text, codes = torch.randn(6, EMB) * 0.1 + 0.5, torch.eye(6)[:, :5]
    emb = torch.cat([text, codes], dim=1)
    ca = CondAugment(EMB + 5, 8, part_dim=5)
    ca.set_normalization(emb)
    x = ca.standardise(emb)
    plain = CondAugment(EMB, 8)
    plain.set_normalization(text)
    assert torch.allclose(x[:, :EMB], plain.standardise(text), atol=1e-6)
    assert torch.allclose(x[:, EMB:], codes * ca.part_scale)
    # the code weighs as much as the standardised sentence vectors
    assert x[:, EMB:].norm(dim=1).mean() == pytest.approx(EMB ** 0.5, rel=1e-5)
    assert "part_scale" not in plain.state_dict()  # models without parts keep their weight files' keys
    with pytest.raises(ValueError, match="part_dim"):
        CondAugment(EMB, 8, part_dim=EMB)


def test_parts_train_resume_and_compose_a_new_name(tmp_path, monkeypatch, capsys):
    from conftest import use_hash_encoder

    from stackgan.inference import load_pipeline

    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    data_dir = parts_folder(tmp_path / "menu")
    cfg = tiny_cfg(tmp_path, data=str(data_dir), parts=True, ckpt_every=1, precision="fp32")
    data = tr.load_training_data(cfg, progress=False)
    vocab = data.parts
    assert vocab.slots == ("base", "topping", "modifier") and vocab.sizes == (5, 4, 2)
    assert data.emb.shape == (4, EMB + vocab.dim)
    assert torch.equal(data.emb[:, EMB:], vocab.codes(data.names, {n: dict(zip(vocab.slots, PARTS[n]))
                                                                   for n in data.names}))
    # the invented grid row is coded from its parts: うどん from きつねうどん, サーモン from ピリ辛サーモン丼
    row = data.grid_names.index("サーモンうどん")
    assert torch.equal(data.grid_emb[row, EMB:], vocab.code(vocab.parse("サーモンうどん")))
    tr.train(cfg, data=data)
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    assert saved["parts"] is True and saved["part_dim"] == vocab.dim and saved["emb_dim"] == EMB + vocab.dim
    assert json.loads((run / "names.json").read_text(encoding="utf-8"))["parts"] == vocab.to_json()
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3))["step"] == 3  # reloads the data itself
    pipe = load_pipeline(run)
    assert torch.equal(pipe.embed("サーモンうどん")[EMB:], vocab.code(vocab.parse("サーモンうどん")))
    assert pipe.embed("サーモンうどん")[:EMB].shape == (EMB,)
    assert pipe.generate("サーモンうどん", 2, seed=3).images.shape == (2, 3, 16, 16)
    assert pipe.neighbours("カツカレー", 1)[0] == ("カツカレー", pytest.approx(1.0))  # by the sentence vectors
    assert pipe.info()["parts"] == ["base", "topping", "modifier"] and pipe.info()["part_dim"] == vocab.dim
    # how the model reads a name: known parts only means not far, whatever the cosine
    fam = pipe.familiarity("サーモンうどん")
    assert fam["parts"] == {"base": "うどん", "topping": "サーモン", "modifier": None} and fam["far"] is False
    odd = pipe.familiarity("抹茶チーズケーキ")
    assert set(odd["parts"].values()) == {"?"}
    assert odd["far"] == (odd["similarity"] < odd["threshold"])
    from stackgan.web.app import create_app

    web = create_app(run).test_client()
    said = web.post("/api/generate", json={"name": "サーモンうどん", "n": 1, "seed": 1}).get_json()
    assert said["familiarity"]["parts"]["topping"] == "サーモン"
    card = pipe.model_card()
    assert f"{EMB}-d sentence vectors" in card and f"{vocab.dim}-value code of the name's parts" in card
    assert "base, topping, modifier" in card
    # stage II reads the names as its stage I does
    cfg2 = tiny_cfg(tmp_path, data=str(data_dir), stage=2, stage1=str(run), out=str(tmp_path / "s2"), ndf=4,
                    max_steps=1, precision="fp32")
    tr.train(cfg2)
    assert "stage II takes --parts from its stage I" in capsys.readouterr().out
    assert json.loads((tmp_path / "s2" / "config.json").read_text())["part_dim"] == vocab.dim
    assert load_pipeline(tmp_path / "s2").generate("サーモンうどん", 1, seed=0).images.shape == (1, 3, 32, 32)


def test_parts_hide_the_sentence_vector_or_a_part_at_random(tmp_path, monkeypatch):
    from conftest import use_hash_encoder

    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, data=str(parts_folder(tmp_path / "menu")), parts=True, name_drop=1.0, parts_drop=1.0)
    data = tr.load_training_data(cfg, progress=False)
    trainer = tr.StackGANTrainer(cfg, data, tmp_path / "run", device="cpu")
    hidden = trainer.hide(trainer.emb)
    assert torch.equal(hidden[:, :EMB], trainer.G.ca.emb_shift[:EMB].expand(4, -1))  # standardises to 0
    assert hidden[:, EMB:].abs().sum() == 0
    assert trainer.G.ca.standardise(hidden).abs().max() < 1e-5
    keep = tr.StackGANTrainer(dataclasses.replace(cfg, name_drop=0.0, parts_drop=0.0), data, tmp_path / "r2",
                              device="cpu")
    assert torch.equal(keep.hide(keep.emb), keep.emb)
    torch.manual_seed(0)
    some = tr.StackGANTrainer(dataclasses.replace(cfg, name_drop=0.5, parts_drop=0.5), data, tmp_path / "r3",
                              device="cpu").hide(data.emb.repeat(50, 1))
    hidden_share = (some[:, EMB:EMB + 5].abs().sum(1) == 0).float().mean()
    assert 0.3 < hidden_share < 0.7


def test_parts_need_an_attributes_table(tmp_path, monkeypatch):
    from conftest import use_hash_encoder

    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, data=str(parts_folder(tmp_path / "menu", attributes=False)), parts=True)
    with pytest.raises(DataError, match="--parts needs .*attributes.tsv"):
        tr.load_training_data(cfg, progress=False)
    with pytest.raises(ConfigError, match="--parts needs name vectors"):
        tr.StackGANTrainer(cfg, make_data(), tmp_path / "run", device="cpu")
    with pytest.raises(ConfigError, match="--parts needs name vectors"):  # parts coded, but the config is off
        data = tr.load_training_data(dataclasses.replace(cfg, data=str(parts_folder(tmp_path / "m2"))),
                                     progress=False)
        tr.StackGANTrainer(dataclasses.replace(cfg, parts=False), data, tmp_path / "run", device="cpu")


def test_part_classification_reads_each_known_part():
    from stackgan.train.losses import part_classification

    sizes = (3, 2)
    codes = torch.tensor([[0., 1., 0., 1., 0.], [1., 0., 0., 0., 0.]])  # row 1: second part unknown
    sure = (codes * 20 - 10)
    assert part_classification(sure, codes, sizes) < 1e-3
    flat = torch.zeros(2, 5)
    expected = (2 * torch.log(torch.tensor(3.0)) + torch.log(torch.tensor(2.0))) / 3  # three known parts
    assert part_classification(flat, codes, sizes) == pytest.approx(float(expected))
    assert part_classification(flat, torch.zeros(2, 5), sizes) == 0


def test_part_loss_and_part_mix_train_resume_and_load(tmp_path, monkeypatch):
    from conftest import use_hash_encoder

    from stackgan.inference import load_pipeline

    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, data=str(parts_folder(tmp_path / "menu")), parts=True, part_loss=1.0, part_mix=0.5,
                   name_loss=0.2, d_cond="projection", ckpt_every=1, precision="fp32")
    data = tr.load_training_data(cfg, progress=False)
    trainer = tr.StackGANTrainer(cfg, data, tmp_path / "run", device="cpu")
    assert trainer.D.part_head.out_features == data.parts.dim
    torch.manual_seed(0)
    mixed, mask = trainer.mix_parts(trainer.emb.repeat(16, 1))
    assert 0 < int(mask.sum()) < 64
    t = EMB
    assert torch.equal(mixed[~mask], trainer.emb.repeat(16, 1)[~mask])
    assert torch.equal(mixed[mask, :t], trainer.G.ca.emb_shift[:t].expand(int(mask.sum()), -1))
    # one value per part, and only values the training names have (every name has a base: never "none")
    blocks = mixed[mask, t:].split(list(data.parts.sizes), dim=1)
    assert all(torch.equal(b.sum(1), torch.ones(len(b))) for b in blocks)
    assert blocks[0][:, -1].sum() == 0
    tr.train(cfg, data=data)
    rows = [r for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r]
    assert rows and all(r["part_d"] > 0 and r["part_g"] > 0 for r in rows)
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3))["step"] == 3
    assert load_pipeline(tmp_path / "run").generate("サーモンうどん", 1, seed=0).images.shape == (1, 3, 16, 16)
    # --no-part-mix-cond: every draw mixed, so no fake meets the conditional term; training still runs
    uncond = dataclasses.replace(cfg, out=str(tmp_path / "uncond"), part_mix=0.9, part_mix_cond=False, max_steps=2)
    torch.manual_seed(0)
    assert tr.train(uncond, data=data)["step"] == 2
    rows = [r for r in read_jsonl(tmp_path / "uncond" / "log.jsonl") if "d_loss" in r]
    assert rows and all(math.isfinite(r["d_loss"]) and 0 < r["d_fake"] < 1 for r in rows)
    # --part-mix-add: the mixed draws come on top of a full batch of training names
    add = tr.StackGANTrainer(dataclasses.replace(cfg, out=str(tmp_path / "add"), part_mix_add=True), data,
                             tmp_path / "add", device="cpu")
    seen = {}
    g_phase = add.loss.g_phase

    def spy(fake, y_fake, *a, **k):
        seen.update(fake=fake.shape[0], y_fake=y_fake.clone())
        return g_phase(fake, y_fake, *a, **k)

    add.loss.g_phase = spy
    assert add.train_step() is not None
    b, extra = cfg.batch_size, round(0.5 * cfg.batch_size)
    assert extra > 0 and seen["fake"] == b + extra
    assert (seen["y_fake"][:b] >= 0).all() and (seen["y_fake"][b:] == -1).all()
    # --wrong-parts: a wrong name that is the photo's own parts with exactly one part changed
    wp = tr.StackGANTrainer(dataclasses.replace(cfg, out=str(tmp_path / "wp"), wrong_parts=1.0), data,
                            tmp_path / "wp", device="cpu")
    own = wp.emb.repeat(4, 1)
    swapped = wp.swap_a_part(own, torch.zeros_like(own))
    assert torch.equal(swapped[:, :t], wp.G.ca.emb_shift[:t].expand(len(own), -1))
    known = [share > 0 for share in wp.part_shares()]
    for row, mine in zip(swapped, own):
        new, old_ = row[t:].split(list(data.parts.sizes)), mine[t:].split(list(data.parts.sizes))
        changed = [j for j in range(len(new)) if not torch.equal(new[j], old_[j])]
        assert len(changed) == 1 and all(float(b.sum()) == 1 for b in new)
        assert known[changed[0]][int(new[changed[0]].argmax())]  # a value the training names have
    assert wp.train_step() is not None
    # --mode-seeking with --part-mix: a pair is one draw (the same mixed combination, the same hidden
    # sentence vector), so the term compares two pictures of one name; the pairs differ in z only
    ms = tr.StackGANTrainer(dataclasses.replace(cfg, out=str(tmp_path / "ms"), mode_seeking=1.0, part_mix=0.9,
                                                batch_size=8), data, tmp_path / "ms", device="cpu")
    drawn = {}
    generate, g_phase_ms = ms._generate, ms.loss.g_phase

    def spy_generate(G, z, emb, *a):
        drawn.update(z=z.clone(), emb=emb.clone())
        return generate(G, z, emb, *a)

    def spy_ms(fake, y_fake, *a, **k):
        drawn.update(y_fake=y_fake.clone())
        return g_phase_ms(fake, y_fake, *a, **k)

    ms._generate, ms.loss.g_phase = spy_generate, spy_ms
    torch.manual_seed(1)
    step = ms.train_step()
    assert step is not None and step["ms"] > 0
    e, yf = drawn["emb"], drawn["y_fake"]
    assert torch.equal(e[:4], e[4:8]) and torch.equal(yf[:4], yf[4:8]) and (yf == -1).any()
    assert not torch.equal(drawn["z"][:4], drawn["z"][4:8])
    # --part-mix-draw uniform: each part of a mixed draw alike among the values the training names have
    # (the default draws it by its share among them, which is uneven here)
    un = tr.StackGANTrainer(dataclasses.replace(cfg, out=str(tmp_path / "un"), part_mix_draw="uniform"), data,
                            tmp_path / "un", device="cpu")
    torch.manual_seed(0)
    drawn_rows, mask = un.mix_parts(un.emb.repeat(400, 1), share=1.0)
    assert bool(mask.all())
    shares = un.part_shares()
    assert any(float(s[s > 0].max() - s[s > 0].min()) > 0.1 for s in shares)
    for block, share in zip(drawn_rows[:, t:].split(list(data.parts.sizes), dim=1), shares):
        seen_share = block.float().mean(0)
        assert float(seen_share[share == 0].sum()) == 0  # never a value no training name has
        known = seen_share[share > 0]
        assert float((known - 1 / len(known)).abs().max()) < 0.05, (known, share)
    assert un.train_step() is not None
    # --part-mix-sentence parts: the mixed draws take the sentence vector their parts predict
    assert cfg.parts_sentence == "parts"  # the default
    ps_cfg = dataclasses.replace(cfg, out=str(tmp_path / "ps"), part_mix_sentence="parts", max_steps=2)
    ps = tr.StackGANTrainer(ps_cfg, data, tmp_path / "ps", device="cpu")
    torch.manual_seed(0)
    mixed, mask = ps.mix_parts(ps.emb.repeat(16, 1))
    fit = SentenceFit(ps.emb, t)
    assert int(mask.sum()) > 0 and torch.allclose(mixed[mask, :t], fit(mixed[mask, t:]), atol=1e-6)
    assert not torch.allclose(mixed[mask, :t], ps.G.ca.emb_shift[:t].expand(int(mask.sum()), -1))
    assert torch.equal(mixed[~mask], ps.emb.repeat(16, 1)[~mask])
    assert tr.train(ps_cfg, data=data)["step"] == 2
    # --part-mix-sentence nearest: the mixed draws take the sentence vector of a training name that shares
    # the most parts with them (any of the ties), so their parts code differs from that name's where they do
    nn_cfg = dataclasses.replace(cfg, out=str(tmp_path / "nn"), part_mix_sentence="nearest", max_steps=2)
    nn_tr = tr.StackGANTrainer(nn_cfg, data, tmp_path / "nn", device="cpu")
    torch.manual_seed(0)
    rows, mask = nn_tr.mix_parts(nn_tr.emb.repeat(100, 1), share=1.0)
    own_codes = nn_tr.emb[:, t:]
    picked_names, other_parts = set(), 0
    for row in rows[mask]:
        same = (nn_tr.emb[:, :t] == row[:t]).all(1).nonzero().flatten().tolist()
        assert len(same) >= 1  # a training name's own sentence vector
        shared = own_codes @ row[t:]
        assert all(float(shared[i]) == float(shared.max()) for i in same)
        picked_names.update(same)
        other_parts += all(not torch.equal(own_codes[i], row[t:]) for i in same)
    assert len(picked_names) > 1 and other_parts > 0
    torch.manual_seed(0)
    code = own_codes[:1].repeat(200, 1)  # a training name's own code: its nearest is itself or a name alike
    picks = nn_tr.nearest_by_parts(code)
    alike = ((own_codes == own_codes[0]).all(1)).nonzero().flatten()
    assert set(picks.tolist()) == set(alike.tolist())
    assert tr.train(nn_cfg, data=data)["step"] == 2
    # --parts-sentence parts: the pipeline reads a new name made of known parts the same way; training
    # names, and names with a word the vocabulary does not know, keep their own vector
    pipe = load_pipeline(tmp_path / "ps")
    assert pipe.parts_sentence == "parts"
    new = pipe.embed("サーモンうどん")
    assert torch.allclose(new[:t], fit(new[None, t:])[0], atol=1e-6)
    assert torch.equal(pipe.embed(data.names[0]), pipe.emb[0])
    odd = pipe.embed("抹茶サーモンうどん")
    pipe.parts_sentence = "own"  # an override (evaluate / generate --parts-sentence) drops the cached reading
    assert torch.equal(pipe.embed("抹茶サーモンうどん"), odd)
    own = pipe.embed("サーモンうどん")
    assert torch.equal(own[t:], new[t:]) and not torch.allclose(own[:t], new[:t])
    assert json.loads((tmp_path / "ps" / "config.json").read_text())["parts_sentence"] == "parts"
    own_cfg = dataclasses.replace(cfg, out=str(tmp_path / "own"), parts_sentence="own", max_steps=1)
    tr.train(own_cfg, data=data)
    assert load_pipeline(tmp_path / "own").parts_sentence == "own"
    assert "`--parts-sentence parts`" in pipe.model_card()
    assert "`--parts-sentence own`" in load_pipeline(tmp_path / "own").model_card()
    for bad, msg in (({"part_loss": 1.0}, "need --parts"), ({"part_mix": 0.2}, "need --parts"),
                     ({"parts": True, "parts_sentence": "mean"}, "must be one of"),
                     ({"parts": True, "part_mix_sentence": "parts"}, "give --part-mix too"),
                     ({"parts": True, "part_mix_add": True}, "give --part-mix too"),
                     ({"parts": True, "part_mix_draw": "uniform"}, "give --part-mix too"),
                     ({"parts": True, "part_mix": 0.5, "part_mix_draw": "even"}, "must be one of"),
                     ({"parts": True, "part_head": "spatial"}, "applies to the parts head of --part-loss"),
                     ({"parts": True, "part_loss": 1.0, "part_head": "max"}, "must be one of"),
                     ({"wrong_parts": 0.5}, "need --parts")):
        with pytest.raises(ConfigError, match=msg):
            StackGANConfig(**bad).validate()


def test_spatial_part_head_reads_each_place_then_takes_a_soft_maximum(tmp_path, monkeypatch):
    from conftest import use_hash_encoder

    torch.manual_seed(0)
    D = Stage1D(c_dim=16, ndf=8, image_size=16, part_dim=5, part_head="spatial")
    assert isinstance(D.part_head, torch.nn.Conv2d) and D.part_head.out_channels == 5
    assert isinstance(Stage1D(c_dim=16, ndf=8, image_size=16, part_dim=5).part_head, torch.nn.Linear)  # the default
    assert isinstance(Stage2D(c_dim=16, ndf=8, size=32, part_dim=5, part_head="spatial").part_head, torch.nn.Conv2d)
    feats = torch.zeros(2, D.feat_ch, 4, 4)
    feats[0, :, 1, 2] = 3.0  # one place shows something, the rest nothing
    feats[1] = torch.randn(D.feat_ch, 4, 4)
    w, b = D.part_head.weight[:, :, 0, 0], D.part_head.bias
    per_place = torch.einsum("pc,bchw->bphw", w, feats).flatten(2) + b[None, :, None]  # [B, 5, 16]
    want = torch.log(per_place.exp().mean(2))
    got = D.part_logits(feats)
    assert got.shape == (2, 5) and torch.allclose(got, want, atol=1e-5)
    # not the read of the averaged features: a linear head on the mean gives w . mean + b
    assert not torch.allclose(got, feats.mean((2, 3)) @ w.T + b, atol=1e-3)
    # where the place is does not matter, that it is there does
    moved = torch.zeros_like(feats[:1])
    moved[0, :, 3, 0] = 3.0
    assert torch.allclose(D.part_logits(moved), got[:1], atol=1e-5)
    with pytest.raises(ValueError, match="part_head must be one of"):
        Stage1D(c_dim=16, ndf=8, image_size=16, part_dim=5, part_head="max")
    # a run with it trains (the parts terms see the spatial head), resumes, and its config says so
    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, data=str(parts_folder(tmp_path / "menu")), parts=True, part_loss=1.0, part_mix=0.5,
                   part_head="spatial", d_cond="projection", ckpt_every=1, precision="fp32")
    data = tr.load_training_data(cfg, progress=False)
    assert tr.train(cfg, data=data)["step"] == 2
    rows = [r for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r]
    assert rows and all(r["part_d"] > 0 and r["part_g"] > 0 for r in rows)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["part_head"] == "spatial"
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3))["step"] == 3


def test_part_layer_adds_one_learnt_map_per_part_value_to_g_features(tmp_path, monkeypatch):
    from conftest import use_hash_encoder
    from stackgan.inference import load_pipeline
    from stackgan.models.stackgan import PartMaps

    torch.manual_seed(0)
    G = Stage1G(EMB + 5, c_dim=16, z_dim=20, ngf=8, image_size=32, g_cond="fusion", part_dim=5, part_layer=16)
    assert isinstance(G.part_maps, PartMaps) and G.part_at == 2  # the output of the second up-block is 16 x 16
    # one map per value: a code's map is the sum of its values' maps, an unknown (all-zero) code adds nothing
    a, b = torch.eye(5)[[0]], torch.eye(5)[[3]]
    assert G.part_maps(a).shape == (1, G.part_maps.ch, 16, 16)
    assert torch.allclose(G.part_maps(a + b), G.part_maps(a) + G.part_maps(b), atol=1e-6)
    assert torch.count_nonzero(G.part_maps(torch.zeros(1, 5))) == 0
    # the map joins G's features: only through it does the parts code reach the picture once CA ignores it
    G.eval()
    with torch.no_grad():
        G.ca.fc.weight[:, EMB:] = 0
        z, text = torch.randn(1, 20), torch.randn(1, EMB)
        eps = torch.zeros(1, 16)
        one, other = (G(z, torch.cat([text, code], 1), eps)[0] for code in (a, b))
        assert not torch.allclose(one, other)
        G.part_maps.maps.weight.zero_()
        one, other = (G(z, torch.cat([text, code], 1), eps)[0] for code in (a, b))
        assert torch.allclose(one, other)
    for bad in (dict(part_dim=0, part_layer=16), dict(part_dim=5, part_layer=32), dict(part_dim=5, part_layer=4),
                dict(part_dim=5, part_layer=12)):
        with pytest.raises(ValueError, match="part_layer|part layer"):
            Stage1G(EMB + 5, c_dim=16, z_dim=20, ngf=8, image_size=32, **bad)
    # the config refuses it without --parts, on stage II and at the picture's own size
    for bad, msg in ((dict(part_layer=8), "needs --parts"), (dict(parts=True, part_layer=16), "smaller than"),
                     (dict(parts=True, part_layer=8, stage=2, stage1="s1"), "only for --stage 1")):
        with pytest.raises(ConfigError, match=msg):
            StackGANConfig(image_size=16, max_steps=1, **bad).validate()
    with pytest.raises(ConfigError, match="must be one of"):
        StackGANConfig(parts=True, part_layer=12, max_steps=1).validate()
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).part_layer == 0  # old runs: no maps
    # a run with it trains, resumes (the maps learn: a step changes them), and a pipeline built from its folder
    # draws with them
    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, data=str(parts_folder(tmp_path / "menu")), parts=True, part_loss=1.0, part_mix=0.5,
                   part_layer=8, d_cond="projection", ckpt_every=1, precision="fp32")
    data = tr.load_training_data(cfg, progress=False)
    assert tr.train(cfg, data=data)["step"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["part_layer"] == 8
    before = load_pipeline(tmp_path / "run").g1.part_maps.maps.weight.detach().clone()
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3))["step"] == 3
    pipe = load_pipeline(tmp_path / "run")
    assert pipe.g1.part_maps is not None and pipe.g1.part_maps.side == 8
    assert not torch.allclose(pipe.g1.part_maps.maps.weight, before)
    assert pipe.generate("サーモンうどん", 2, seed=1).images.shape == (2, 3, 16, 16)


def test_part_twin_trains_logs_its_terms_and_resumes(tmp_path, monkeypatch):
    from conftest import use_hash_encoder

    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, data=str(parts_folder(tmp_path / "menu")), parts=True, part_loss=1.0, part_mix=0.5,
                   part_twin=True, d_cond="projection", ckpt_every=1, precision="fp32")
    data = tr.load_training_data(cfg, progress=False)
    assert tr.train(cfg, data=data)["step"] == 2
    rows = [r for r in read_jsonl(tmp_path / "run" / "log.jsonl") if "d_loss" in r]
    assert rows and all(r["twin_d"] > 0 and r["twin_g"] > 0 and r["part_d"] > 0 for r in rows)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["part_twin"] is True
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=data)["step"] == 3
    d_state = torch.load(tmp_path / "run" / "ckpt-000003.pt", map_location="cpu", weights_only=False)["D"]
    assert d_state["twin_head.weight"].shape[0] == data.parts.dim  # the twin head is saved and resumed


def test_mbstd_gives_d_one_more_feature_the_spread_of_each_group_of_pictures(tmp_path, monkeypatch):
    from conftest import use_hash_encoder
    from stackgan.models.stackgan import MinibatchStd

    torch.manual_seed(0)
    layer = MinibatchStd(4)
    x = torch.randn(8, 3, 2, 2)
    out = layer(x)
    assert out.shape == (8, 4, 2, 2) and torch.equal(out[:, :3], x)
    # groups are pictures {k, k + 2, k + 4, k + 6}: the mean over features of the spread over the group
    for k in range(2):
        grp = x[k::2]
        want = (grp.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[k::2, 3], want.expand(4, 2, 2), atol=1e-6)
    same = layer(x[:1].expand(8, -1, -1, -1).contiguous())  # every picture alike: no spread at all
    assert same[:, 3].max().item() < 1e-3 < out[:, 3].min().item()
    assert layer(x[:6]).shape == (6, 4, 2, 2)  # a batch of 6: groups of 3, the largest divisor up to 4
    with pytest.raises(ValueError, match="at least 2"):
        MinibatchStd(1)
    D = Stage1D(c_dim=16, ndf=8, image_size=16, mbstd=4)
    assert D.feat_ch == Stage1D(c_dim=16, ndf=8, image_size=16).feat_ch + 1
    assert D.features(torch.randn(8, 3, 16, 16)).shape[1] == D.feat_ch
    D2 = Stage2D(c_dim=16, ndf=8, size=32, mbstd=4)
    assert D2.feat_ch == Stage2D(c_dim=16, ndf=8, size=32).feat_ch + 1
    assert D2.features(torch.randn(4, 3, 32, 32)).shape[1] == D2.feat_ch
    with pytest.raises(ConfigError, match="2 or more"):
        StackGANConfig(mbstd=1).validate()
    # a run with it trains, resumes, and its config says so
    use_hash_encoder(monkeypatch, tmp_path / "cache", dim=EMB)
    cfg = tiny_cfg(tmp_path, mbstd=4, ckpt_every=1, precision="fp32")
    data = tr.load_training_data(cfg, progress=False)
    assert tr.train(cfg, data=data)["step"] == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mbstd"] == 4
    assert tr.train(dataclasses.replace(cfg, resume=True, max_steps=3), data=data)["step"] == 3


def test_d_vision_trains_and_resumes_and_keeps_the_frozen_network_out_of_the_checkpoint(tmp_path):
    logs, ckpt = train_resume_and_read(tmp_path, "d_vision", 1.0)
    assert len(logs) == 3 and all(r["d_vision"] > 0 and r["g_vision"] != 0 for r in logs)
    assert any(k.startswith("vision_heads.") for k in ckpt["D"])  # the heads are saved and resumed
    assert not any("_blocks" in k or "_conv_stem" in k for k in ckpt["D"])  # the frozen network is not
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).d_vision == 0.0  # old runs: no vision heads
    with pytest.raises(ConfigError, match="only for --stage 1"):
        tiny_cfg(tmp_path, stage=2, stage1=str(tmp_path / "run"), d_vision=1.0)


def test_d_vision_every_trains_and_resumes_and_logs_the_latest_verdicts(tmp_path):
    logs, _ = train_resume_and_read(tmp_path, "d_vision_every", 2, d_vision=1.0)
    # steps 0 and 2 read the network (logged after them as 1 and 3); step 1 logs step 0's terms again
    assert [r["step"] for r in logs] == [1, 2, 3] and all(r["d_vision"] > 0 for r in logs)
    assert logs[1]["d_vision"] == logs[0]["d_vision"] and logs[2]["d_vision"] != logs[0]["d_vision"]
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).d_vision_every == 1


def test_d_vision_size_trains_and_resumes_with_heads_for_the_enlarged_picture(tmp_path):
    logs, ckpt = train_resume_and_read(tmp_path, "d_vision_size", 64, d_vision=1.0)
    assert len(logs) == 3 and all(r["d_vision"] > 0 for r in logs)
    # 32 px pictures read at 64 px: the last map is 4x4, so its head has a stride-2 convolution a 32 px read lacks
    plain = Stage1D(c_dim=16, ndf=8, image_size=32, d_cond="projection", vision=True).state_dict()
    assert {k for k in ckpt["D"] if k.startswith("vision_heads.")} > {k for k in plain if k.startswith("vision_heads.")}
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).d_vision_size == 0


def test_init_from_starts_a_new_run_from_another_runs_weights_with_a_new_d_head(tmp_path):
    data = make_data(size=32)
    src = tiny_cfg(tmp_path, image_size=32, max_steps=2, ckpt_every=1, out=str(tmp_path / "src"))
    tr.train(src, data=data)
    ck = torch.load(tmp_path / "src" / "ckpt-000002.pt", map_location="cpu", weights_only=False)
    # the same model with a patch verdict added to D: G, its EMA and D's trunk copied, the patch head fresh
    cfg = tiny_cfg(tmp_path, image_size=32, max_steps=1, ckpt_every=1, d_patch=1.0, init_from=str(tmp_path / "src"),
                   out=str(tmp_path / "new"))
    t = tr.StackGANTrainer(cfg, data, tmp_path / "new")
    notes = t.init_from(tmp_path / "src" / "ckpt-000002.pt", ck)
    assert notes == ["D's new patch_head start fresh"] and t.step == 0
    for mine, theirs in ((t.G, ck["G"]), (t.G_ema, ck["G_ema"])):
        assert all(torch.equal(v, theirs[k]) for k, v in mine.state_dict().items())
    own = t.D.state_dict()
    assert all(torch.equal(own[k], v) for k, v in ck["D"].items())
    assert any(k.startswith("patch_head.") for k in own) and not any(k.startswith("patch_head.") for k in ck["D"])
    # through `train`: the folder's newest checkpoint, a fresh step count, the option saved beside the run
    said = []
    summary = tr.train(cfg, data=data, printer=said.append)
    assert summary["step"] == 1
    assert any(m.startswith(f"started from {tmp_path / 'src' / 'ckpt-000002.pt'} (step 2); D's new patch_head")
               for m in said)
    assert json.loads((tmp_path / "new" / "config.json").read_text())["init_from"] == str(tmp_path / "src")
    # and back: a run without the head leaves the source's head out
    back = tiny_cfg(tmp_path, image_size=32, max_steps=1, init_from=str(tmp_path / "new"), out=str(tmp_path / "back"))
    said.clear()
    tr.train(back, data=data, printer=said.append)
    assert any("the source's D patch_head left out" in m for m in said)


def test_init_from_refuses_weights_without_d_another_model_or_stage(tmp_path):
    data = make_data()
    tr.train(tiny_cfg(tmp_path, max_steps=1, ckpt_every=1, out=str(tmp_path / "src")), data=data)
    with pytest.raises(CheckpointError, match="exported weights carry no discriminator"):
        tr.train(tiny_cfg(tmp_path, init_from=str(tmp_path / "src" / "G_ema.safetensors")), data=data)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        tr.train(tiny_cfg(tmp_path, ngf=16, init_from=str(tmp_path / "src"), out=str(tmp_path / "wide")), data=data)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        tr.train(tiny_cfg(tmp_path, init_from=str(tmp_path / "nowhere"), out=str(tmp_path / "x")), data=data)
    ck = torch.load(tmp_path / "src" / "ckpt-000001.pt", map_location="cpu", weights_only=False)
    t = tr.StackGANTrainer(tiny_cfg(tmp_path), data, tmp_path / "y")
    with pytest.raises(CheckpointError, match="not stackgan"):
        t.init_from("x.pt", {**ck, "kind": "dcgan"})
    # a discriminator with none of this one's parts (another design's names) is refused, not silently left fresh
    alien = {**ck, "D": {"other." + k: v for k, v in ck["D"].items()}}
    with pytest.raises(CheckpointError, match="x.pt: its discriminator has no part in common with this one"):
        t.init_from("x.pt", alien)
    with pytest.raises(ConfigError, match="--init-from needs"):
        tiny_cfg(tmp_path, init_from=" ")
    assert StackGANConfig.from_dict({"_kind": "StackGANConfig"}).init_from is None  # old runs
