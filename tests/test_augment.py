"""DiffAugment: ops, per-sample randomness, gradient flow, ADA controller."""

import pytest
import torch
from torch import nn

from stackgan.augment import AdaController, DiffAugment, elastic_warp, parse_policy
from stackgan.errors import ConfigError


def test_parse_policy():
    assert parse_policy("none") == ()
    assert parse_policy("") == ()
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    with pytest.raises(ConfigError, match="unknown DiffAugment policy"):
        parse_policy("color,flip")
    with pytest.raises(ConfigError, match="twice"):
        parse_policy("color,color")


def test_none_is_identity():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert DiffAugment("none")(x) is x
    aug = DiffAugment("color,translation,cutout", p=0.0)
    assert torch.equal(aug(x), x)


def test_color_brightness_per_sample_on_constant_image():
    # A constant gray image: saturation and contrast leave it alone, brightness shifts it by
    # U(-0.5, 0.5) on the [-1, 1] scale, with its own draw per sample.
    x = torch.full((64, 3, 8, 8), 0.2)
    torch.manual_seed(0)
    y = DiffAugment("color")(x)
    shift = (y - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
    s = shift[:, 0]
    assert s.min() >= -0.5 - 1e-5 and s.max() <= 0.5 + 1e-5
    assert s.std() > 0.15  # spread over the range, not one value for the batch
    assert len(set(s.round(decimals=4).tolist())) > 50


def test_color_does_not_clamp():
    x = torch.full((32, 3, 8, 8), 0.95)
    torch.manual_seed(1)
    y = DiffAugment("color")(x)
    assert y.max() > 1.0  # brightened past white instead of clipped


def test_translation_zero_pads_and_shifts_per_sample():
    torch.manual_seed(0)
    x = torch.rand(32, 3, 16, 16) + 1.0  # strictly positive, so padding zeros are visible
    y = DiffAugment("translation")(x)
    shifted = [(yi == 0).any().item() for yi in y]
    assert any(shifted) and not all(shifted)  # some samples shifted, some by (0, 0)
    for xi, yi in zip(x, y):
        zero_cols = (yi[0] == 0).all(dim=0).sum().item()
        zero_rows = (yi[0] == 0).all(dim=1).sum().item()
        assert zero_cols <= 2 and zero_rows <= 2  # at most 16 // 8 pixels
        # the surviving pixels are the original ones, moved
        vals = set(yi[yi != 0].tolist())
        assert vals <= set(xi.flatten().tolist())


def test_cutout_half_side_square_per_sample():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 16, 16) + 1.0
    y = DiffAugment("cutout")(x)
    masks = (y == 0).all(dim=1)  # [B, H, W]
    assert torch.all(masks.flatten(1).sum(1) == 64)  # 8x8 square
    for m in masks:
        rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
        assert rows.numel() == 8 and cols.numel() == 8
    assert len({tuple(m.nonzero()[0].tolist()) for m in masks}) > 1  # different places


def test_gradient_reaches_generator_params():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(8, 3 * 16 * 16), nn.Tanh(), nn.Unflatten(1, (3, 16, 16)))
    d = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1))
    aug = DiffAugment("color,translation,cutout")
    with torch.no_grad():  # push the generator into saturation: bright, near-white pictures
        g[0].bias.fill_(3.0)
    fake = g(torch.randn(8, 8))
    loss = d(aug(fake)).mean()
    loss.backward()
    grad = g[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert grad.abs().sum() > 0
    # every sample's parameters get gradient even though brightness pushes them past 1
    assert (g[0].bias.grad.view(3, 16, 16).abs() > 0).float().mean() > 0.5


def test_seeded_is_reproducible():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    aug = DiffAugment()
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    b = aug(x)
    assert torch.equal(a, b)
    assert not torch.equal(aug(x), a)


def test_partial_probability_leaves_some_samples_alone():
    torch.manual_seed(0)
    x = torch.rand(200, 3, 8, 8) * 2 - 1
    y = DiffAugment("color", p=0.3)(x)
    same = torch.isclose(y, x, atol=1e-6).flatten(1).all(1).float().mean().item()
    assert 0.55 < same < 0.85  # ~70% untouched


def test_ada_controller_moves_p_towards_target():
    aug = DiffAugment()
    ada = AdaController(aug, target=0.6, interval=2, speed_imgs=400)
    for _ in range(10):
        ada.update(torch.ones(10))  # D is sure of every real: overfitting
    assert aug.p == pytest.approx(5 * 20 / 400)  # 5 adjustments of +20 images / 400
    state = ada.state_dict()
    for _ in range(4):
        ada.update(-torch.ones(10))
    assert aug.p < state["p"]
    ada.load_state_dict(state)
    assert aug.p == state["p"]
    for _ in range(200):
        ada.update(torch.ones(10))
    assert aug.p == 1.0


def test_elastic_warp_bends_each_picture_smoothly_and_zero_is_identity():
    # a white disc on black, as a bowl on a table: the warp moves its rim, keeps its size and colours
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    disc = (((yy - 31.5) ** 2 + (xx - 31.5) ** 2) < 20 ** 2).float() * 2 - 1
    x = disc.expand(4, 3, 64, 64).clone()
    assert elastic_warp(x, 0.0) is x
    torch.manual_seed(0)
    bent = elastic_warp(x, 0.25)
    assert bent.shape == x.shape and bent.dtype == x.dtype
    moved = (bent - x).abs().mean(dim=(1, 2, 3))
    assert (moved > 0.005).all() and (moved < 0.2).all()  # the rim moves, the disc stays a disc
    assert not torch.allclose(bent[0], bent[1])  # a field per picture
    assert (bent[:, :, 31, 31] > 0.9).all() and (bent[:, :, 0, 0] < -0.9).all()  # centre and corner unchanged
    assert (elastic_warp(x, 0.5) - x).abs().mean() > moved.mean()  # stronger bends more
    torch.manual_seed(0)
    assert torch.equal(elastic_warp(x, 0.25), bent)  # from torch's global RNG: seeded runs repeat
    assert elastic_warp(x.bfloat16(), 0.25).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="alpha"):
        elastic_warp(x, -0.1)
