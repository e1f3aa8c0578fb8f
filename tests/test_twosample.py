"""The classifier two-sample test: it cannot tell a set from another draw of itself, it can tell blur."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import one_thread
from stackgan.metrics.twosample import ProbeConfig, probe_net, roc_auc, two_sample_test


def squares(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Pictures of a random-coloured square on a random-coloured background, and pixel noise (grain)."""
    g = torch.Generator().manual_seed(seed)
    img = (torch.rand(n, 3, 1, 1, generator=g) * 2 - 1).expand(n, 3, size, size).clone()
    for i in range(n):
        s = int(torch.randint(size // 4, size // 2, (1,), generator=g))
        x, y = torch.randint(0, size - s, (2,), generator=g).tolist()
        img[i, :, y:y + s, x:x + s] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return (img + 0.2 * torch.randn(img.shape, generator=g)).clamp(-1, 1)


def soften(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear", align_corners=False)


def test_the_probe_cannot_tell_two_draws_apart_and_can_tell_a_softened_draw():
    cfg = ProbeConfig(steps=300, width=8)
    with one_thread():
        same = two_sample_test(squares(160, 0), squares(160, 1), cfg)
        soft = two_sample_test(squares(160, 0), soften(squares(160, 1)), cfg)
    assert (same["n_train"], same["n_test"], same["steps"], same["size"]) == (160, 160, 300, 32)
    assert 0.3 <= same["accuracy"] <= 0.7
    assert soft["accuracy"] > 0.9 and soft["train_accuracy"] > 0.9
    # the held-out cross-entropy: near ln 2 when the probe cannot tell, far under it when it can; the AUC with it
    assert same["log_loss"] > 0.6 and soft["log_loss"] < 0.45
    assert 0.3 <= same["auc"] <= 0.7 and soft["auc"] > 0.95
    # given too few steps the probe has learnt nothing yet, and reads the softened draw as indistinguishable
    early = two_sample_test(squares(160, 0), soften(squares(160, 1)), ProbeConfig(steps=20, width=8))
    assert early["accuracy"] < 0.7


def test_the_probe_is_seeded_reads_uint8_and_leaves_the_global_rng_alone():
    real, fake = squares(24, 0), soften(squares(24, 1))
    as_u8 = ((real + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    state = torch.get_rng_state()
    with one_thread():
        a = two_sample_test(real, fake, ProbeConfig(steps=4, width=4))
        b = two_sample_test(real, fake, ProbeConfig(steps=4, width=4))
        c = two_sample_test(as_u8, fake, ProbeConfig(steps=4, width=4))
    assert a == b
    assert c["n_test"] == a["n_test"] == 24
    assert torch.equal(torch.get_rng_state(), state)


def test_the_probe_refuses_sets_of_other_sizes_or_too_few_pictures():
    with pytest.raises(ValueError, match="differ in shape"):
        two_sample_test(squares(8, 0, 32), squares(8, 1, 16))
    with pytest.raises(ValueError, match="at least 4 pictures"):
        two_sample_test(squares(3, 0), squares(8, 1))


@pytest.mark.parametrize("size,layers", [(16, 1), (32, 2), (64, 3), (128, 4)])
def test_the_probe_strides_down_to_8_px(size, layers):
    net = probe_net(size, 4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net) == layers
    assert net(torch.zeros(2, 3, size, size)).shape == (2, 1)


def test_the_auc_counts_pairs_ranked_right_and_ties_as_half():
    y = torch.tensor([1.0, 1.0, 0.0, 0.0])
    assert roc_auc(torch.tensor([3.0, 2.0, 1.0, 0.0]), y) == 1.0
    assert roc_auc(torch.tensor([0.0, 1.0, 2.0, 3.0]), y) == 0.0
    assert roc_auc(torch.tensor([2.0, 0.0, 1.0, -1.0]), y) == 0.75  # 3 of 4 pairs right
    assert roc_auc(torch.zeros(4), y) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        roc_auc(torch.zeros(2), torch.ones(2))


def test_a_surer_probe_has_a_lower_cross_entropy_at_the_same_accuracy():
    """What the log-loss adds: two sets the probe tells apart every time, one far more plainly than the other."""
    real = squares(160, 0)
    with one_thread():
        slight = two_sample_test(real, soften(squares(160, 1)), ProbeConfig(steps=300, width=8))
        plain = two_sample_test(real, squares(160, 1).mul(0.2), ProbeConfig(steps=300, width=8))
    assert slight["accuracy"] > 0.9 and plain["accuracy"] > 0.9
    assert plain["log_loss"] < slight["log_loss"]
