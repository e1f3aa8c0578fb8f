"""The loss module: every term against its formula on small hand-made inputs, and StackGAN's two phases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stackgan.errors import ConfigError
from stackgan.models.stackgan import Stage1D
from stackgan.stackgan_config import StackGANConfig
from stackgan.train import losses as L

LN2 = math.log(2.0)


@pytest.mark.parametrize("kind", ["bce", "hinge", "wgan-gp"])
def test_adversarial_terms_at_zero_logits_and_their_signs(kind):
    z = torch.zeros(4)
    want_d = {"bce": 2 * LN2, "hinge": 2.0, "wgan-gp": 0.0}[kind]
    want_g = {"bce": LN2, "hinge": 0.0, "wgan-gp": 0.0}[kind]
    assert L.d_adv(kind, z, z).item() == pytest.approx(want_d)
    assert L.g_adv(kind, z).item() == pytest.approx(want_g)
    # D's loss falls as reals score higher and fakes lower; G's falls as fakes score higher
    assert L.d_adv(kind, z + 0.5, z - 0.5) < L.d_adv(kind, z, z)
    assert L.g_adv(kind, z + 0.5) < L.g_adv(kind, z)


def test_bce_targets_smooth_the_labels():
    z = torch.zeros(3)
    soft = L.d_adv("bce", z + 2, z - 2, real_target=torch.full((3,), 0.9))
    want = F.binary_cross_entropy_with_logits(z + 2, torch.full((3,), 0.9)) + F.softplus(z - 2).mean()
    assert soft.item() == pytest.approx(want.item(), rel=1e-6)


def test_unknown_loss_kinds_are_refused():
    z = torch.zeros(2)
    for fn, args in ((L.d_adv, (z, z)), (L.g_adv, (z,)), (L.matching_aware_d, (z, z, z, z, z)),
                     (L.matching_aware_g, (z, z))):
        with pytest.raises(ValueError, match="unknown loss"):
            fn("lsgan", *args)
    with pytest.raises(ValueError, match="unknown loss"):
        L.matching_aware_d("wgan-gp", z, z, z, z, z)  # StackGAN has no WGAN loss


def test_matching_aware_terms_average_the_real_and_the_fake_sides():
    z = torch.zeros(5)
    assert L.matching_aware_d("bce", z, z, z, z, z).item() == pytest.approx(2 * LN2)
    assert L.matching_aware_d("hinge", z, z, z, z, z).item() == pytest.approx(2.0)
    # a photo with the wrong name is one of three fake-side terms
    wrong = L.matching_aware_d("hinge", z, z, z + 1, z, z) - L.matching_aware_d("hinge", z, z, z, z, z)
    assert wrong.item() == pytest.approx(1 / 3)
    assert L.matching_aware_g("bce", z, z).item() == pytest.approx(2 * LN2)
    assert L.matching_aware_g("hinge", z + 1, z + 2).item() == pytest.approx(-3.0)


def test_penalties_of_a_linear_critic_are_its_weight_norm():
    torch.manual_seed(0)
    w = torch.randn(1, 3, 4, 4)
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731  gradient w everywhere
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    norm = w.norm().item()
    assert L.wgan_gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    x = real.clone().requires_grad_(True)
    assert L.r1_penalty(critic(x), x).item() == pytest.approx(norm ** 2, rel=1e-5)
    v = torch.randn(1, 5)
    c = torch.randn(6, 5).requires_grad_(True)
    x = real.clone().requires_grad_(True)
    joint = (norm ** 2 + v.norm().item() ** 2) ** 0.5
    got = L.matching_aware_gp(critic(x) + (c * v).sum(1), x, c, power=6.0)
    assert got.item() == pytest.approx(joint ** 6, rel=1e-4)


def test_name_classification_is_cross_entropy_over_the_names():
    logits, y = torch.randn(4, 7), torch.tensor([0, 3, 6, 2])
    assert torch.allclose(L.name_classification(logits.bfloat16(), y), F.cross_entropy(logits.bfloat16().float(), y))


def test_low_res_consistency_compares_the_pooled_picture_with_stage_one():
    low = torch.rand(2, 3, 8, 8) * 2 - 1
    up = low.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)  # 32 px, each pixel a 4x4 block
    assert L.low_res_consistency(up, low).item() == pytest.approx(0.0, abs=1e-7)
    # detail that averages out within each block is free; a shift of the block's mean is not
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 0.2 - 0.1
    assert L.low_res_consistency(up + checker, low).item() == pytest.approx(0.0, abs=1e-6)
    assert L.low_res_consistency(up + 0.3, low).item() == pytest.approx(0.3, rel=1e-5)


def test_stage2_consistency_is_added_to_gs_phase_only_when_on_and_given_stage_one():
    base = dict(stage=2, stage1="s1", image_size=16, stage2_size=128, ngf=8, ndf=8, c_dim=8, name_loss=0.0,
                stage2_paired=0.0)
    off = StackGANConfig(**base, stage2_consistency=0.0).validate()
    D, _, fake, y, codes = _phase_inputs(off)
    low = torch.rand(4, 3, 8, 8) * 2 - 1
    mu, logvar, z = torch.randn(4, 8), torch.zeros(4, 8), torch.randn(4, 3)
    g0, q0 = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2, low=low)
    assert q0["cons"].item() == 0.0
    on = StackGANConfig(**{**base, "stage2_consistency": 2.0}).validate()
    g1, q1 = L.StackGANLoss(on, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2, low=low)
    assert q1["cons"].item() > 0
    assert q1["cons"].item() == pytest.approx(L.low_res_consistency(fake, low).item(), rel=1e-6)
    assert g1.item() == pytest.approx((g0 + 2.0 * q1["cons"]).item(), rel=1e-5)
    _, q2 = L.StackGANLoss(on, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2)
    assert q2["cons"].item() == 0.0  # no stage-I picture (stage I): nothing to compare


def test_stage2_paired_adds_the_redrawn_photos_distance_to_gs_phase_when_on():
    real = torch.rand(2, 3, 8, 8) * 2 - 1
    assert L.paired_reconstruction(real, real).item() == 0.0
    assert L.paired_reconstruction(real + 0.25, real).item() == pytest.approx(0.25, rel=1e-5)
    assert L.paired_reconstruction(-real, real).item() == pytest.approx(2 * real.abs().mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        L.paired_reconstruction(real[:, :, :4], real)
    base = dict(stage=2, stage1="s1", image_size=16, stage2_size=128, ngf=8, ndf=8, c_dim=8, name_loss=0.0,
                stage2_consistency=0.0, stage2_paired=0.0)
    off = StackGANConfig(**base).validate()
    D, photos, fake, y, codes = _phase_inputs(off)
    mu, logvar, z = torch.randn(4, 8), torch.zeros(4, 8), torch.randn(4, 3)
    redrawn = photos + 0.1 * torch.randn_like(photos)
    g0, q0 = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2,
                                                         paired=(redrawn, photos))
    assert q0["paired"].item() == 0.0  # off: given or not, nothing is added
    on = StackGANConfig(**{**base, "stage2_paired": 3.0}).validate()
    g1, q1 = L.StackGANLoss(on, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2,
                                                        paired=(redrawn, photos))
    assert q1["paired"].item() == pytest.approx((redrawn - photos).abs().mean().item(), rel=1e-5)
    assert g1.item() == pytest.approx((g0 + 3.0 * q1["paired"]).item(), rel=1e-5)
    with pytest.raises(ValueError, match="needs the redrawn real photos"):
        L.StackGANLoss(on, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2)


def _phase_inputs(cfg, b=4, names=5):
    torch.manual_seed(1)
    D = Stage1D(c_dim=cfg.c_dim, ndf=8, image_size=16, d_cond=cfg.d_cond)
    real, fake = torch.rand(b, 3, 16, 16) * 2 - 1, torch.rand(b, 3, 16, 16) * 2 - 1
    codes = torch.randn(names, cfg.c_dim)
    y = torch.arange(b) % names
    return D, real, fake, y, codes


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_stackgan_phases_add_each_term_only_when_it_is_on(loss):
    base = dict(image_size=16, ngf=8, ndf=8, c_dim=8, loss=loss, gp_weight=0.0, d_cond="projection", name_loss=0.0)
    off = StackGANConfig(**base).validate()
    D, real, fake, y, codes = _phase_inputs(off)
    c, c_w, c_r = codes[y], codes[(y + 1) % 5], codes[y]
    d0, p0 = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c_r, None, step=0)
    assert p0["gp"].item() == p0["r1"].item() == p0["name_d"].item() == 0.0
    on = StackGANConfig(**{**base, "gp_weight": 2.0 if loss == "hinge" else 0.0, "r1": 1.0, "r1_every": 4,
                           "name_loss": 0.5}).validate()
    phase = L.StackGANLoss(on, D, lambda x: x)
    d1, p1 = phase.d_phase(real, fake, y, c, c_w, c_r, codes, step=4)
    assert p1["r1"].item() > 0 and p1["name_d"].item() > 0 and (p1["gp"].item() > 0) == (loss == "hinge")
    extra = p1["gp"] + (1.0 / 2 * 4) * p1["r1"] + 0.5 * p1["name_d"]
    assert d1.item() == pytest.approx((d0 + extra).item(), rel=1e-5)
    _, p2 = phase.d_phase(real, fake, y, c, c_w, c_r, codes, step=5)  # lazy R1: not due at step 5
    assert p2["r1"].item() == 0.0 and phase.r1_due(8) and not phase.r1_due(9)
    mu, logvar = torch.randn(4, 8), torch.zeros(4, 8)
    g0, q0 = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y, c, mu, logvar, None, torch.randn(4, 3), pairs=2)
    assert g0.item() == pytest.approx((q0["g_adv"] + off.kl * q0["kl"]).item(), rel=1e-6)
    assert q0["name_g"].item() == q0["ms"].item() == 0.0
    ms_cfg = StackGANConfig(**{**base, "name_loss": 0.5, "mode_seeking": 1.0}).validate()
    g1, q1 = L.StackGANLoss(ms_cfg, D, lambda x: x).g_phase(fake, y, c, mu, logvar, codes, torch.randn(4, 3),
                                                             pairs=2)
    assert q1["name_g"].item() > 0 and q1["ms"].item() > 0
    assert g1.item() == pytest.approx((g0 + 0.5 * q1["name_g"] + q1["ms"]).item(), rel=1e-5)


def test_mode_seeking_term_grows_as_the_generator_collapses():
    za, zb = torch.zeros(3, 5), torch.ones(3, 5)
    a = torch.zeros(3, 3, 8, 8)
    far = L.mode_seeking_term(a, a + 1.0, za, zb)
    near = L.mode_seeking_term(a, a + 0.1, za, zb)
    assert far.item() == pytest.approx(1.0, rel=1e-3)
    assert near.item() == pytest.approx(10.0, rel=1e-3)
    assert L.mode_seeking_term(a, a, za, zb).item() > 1e4  # identical pictures: collapse



def _stripes(n=4, size=16, seed=0):
    """Pictures of vertical stripes of random grey levels: every 8 px patch is constant down its columns."""
    g = torch.Generator().manual_seed(seed)
    cols = torch.rand(n, 1, 1, size, generator=g) * 2 - 1
    return cols.expand(n, 3, size, size).contiguous()


def test_patch_prior_costs_nothing_for_the_photos_own_patches_and_presses_on_strokes():
    photos = _stripes()
    prior = L.PatchPrior(photos, patch=8, n=10_000)  # the bank holds every patch of these 4 small pictures
    assert prior.bank.shape == (4 * 3 * 3, 3 * 64) and prior.radii.shape == (36,)
    assert prior(photos).item() == 0.0  # each patch is a bank patch: inside its ball
    # a horizontal stroke across the stripes: patches no photo has
    stroked = photos.clone()
    stroked[:, :, 7:9, :] = 1.0
    fake = stroked.clone().requires_grad_(True)
    cost = prior(fake)
    assert cost.item() > 0
    cost.backward()
    assert fake.grad[:, :, 7:9].abs().sum() > 0  # the stroke's pixels are pressed on
    moved = (fake - 20.0 * fake.grad).detach()  # a step downhill lowers the cost
    assert prior(moved).item() < cost.item()
    # which patches are read follows the seed; the same seed reads the same ones
    few = L.PatchPrior(photos, patch=8, n=5)
    assert few(stroked, seed=3).item() == few(stroked, seed=3).item()
    with pytest.raises(ValueError, match="channels"):
        prior(stroked[:, :1])
    # uint8 photos read as [-1, 1]; a set larger than a chunk gives the bank's size from every chunk's share
    as_u8 = ((photos + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(L.PatchPrior(as_u8, patch=8, n=10_000).bank, prior.bank, atol=1e-2)
    many = _stripes(n=10, seed=1)
    chunked = L.PatchPrior(many, patch=8, bank=50, chunk=3)
    assert chunked.bank.shape == (50, 192)
    every = L.PatchPrior(many, patch=8, bank=90).bank  # all 90 patches of the 10 pictures
    assert (chunked.bank[:, None] - every[None]).abs().amax(2).min(1).values.max() == 0  # each one of them


def test_patch_prior_joins_gs_phase_only_when_on():
    base = dict(image_size=16, ngf=8, ndf=8, c_dim=8, name_loss=0.0)
    off = StackGANConfig(**base).validate()
    D, real, fake, y, codes = _phase_inputs(off)
    mu, logvar, z = torch.randn(4, 8), torch.zeros(4, 8), torch.randn(4, 3)
    g0, q0 = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y, codes[y], mu, logvar, None, z, pairs=2)
    assert q0["patch_prior"].item() == 0.0
    on = StackGANConfig(**base, patch_prior=50.0).validate()
    prior = L.PatchPrior(_stripes(), patch=8)
    g1, q1 = L.StackGANLoss(on, D, lambda x: x, patch_prior=prior).g_phase(fake, y, codes[y], mu, logvar, None, z,
                                                                             pairs=2, step=7)
    assert q1["patch_prior"].item() == pytest.approx(prior(fake, seed=7).item()) and q1["patch_prior"].item() > 0
    assert g1.item() == pytest.approx((g0 + 50.0 * q1["patch_prior"]).item(), rel=1e-5)
    with pytest.raises(ValueError, match="patch manifold"):
        L.StackGANLoss(on, D, lambda x: x)
    with pytest.raises(ConfigError):
        StackGANConfig(**base, patch_prior=-1.0).validate()

def test_kl_is_zero_at_prior_and_averaged_per_element():
    assert L.kl_divergence(torch.zeros(5, 7), torch.zeros(5, 7)).item() == 0.0
    mu = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    per = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    assert L.kl_divergence(mu, logvar).item() == pytest.approx(per.mean().item())
    # doubling the batch with copies leaves a per-element average unchanged
    assert L.kl_divergence(mu.repeat(2, 1), logvar.repeat(2, 1)).item() == pytest.approx(per.mean().item())
    assert L.kl_divergence(mu, logvar) > 0


def test_matching_aware_terms_take_fewer_conditional_fakes_or_none():
    z = torch.zeros(4)
    for kind in ("bce", "hinge"):
        full = L.matching_aware_d(kind, z, z, z, z, z)
        # the fake-side conditional term is a mean: half the rows of equal logits give the same loss
        assert L.matching_aware_d(kind, z, z, z, z[:2], z).item() == pytest.approx(full.item())
        none = L.matching_aware_d(kind, z, z, z, z[:0], z)
        assert torch.isfinite(none) and none.item() < full.item()  # an empty term adds nothing
        assert torch.isfinite(L.matching_aware_g(kind, z[:0], z))
    assert L.matching_aware_g("hinge", z[:0], z + 2).item() == pytest.approx(-2.0)


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_no_part_mix_cond_keeps_the_mixed_fakes_from_the_conditional_term(loss):
    base = dict(image_size=16, ngf=8, ndf=8, c_dim=8, loss=loss, gp_weight=0.0, d_cond="projection", name_loss=0.0,
                parts=True, part_mix=0.5)
    on = StackGANConfig(**base).validate()
    off = StackGANConfig(**base, part_mix_cond=False).validate()
    D, real, fake, y, codes = _phase_inputs(on)
    c, c_w, c_r = codes[y], codes[(y + 1) % 5], codes[y]
    y_fake = torch.tensor([0, -1, 2, -1])  # fakes 1 and 3 were drawn for mixed parts
    named = y_fake >= 0
    _, p_on = L.StackGANLoss(on, D, lambda x: x).d_phase(real, fake, y, c, c_w, c_r, None, step=1)
    _, p_off = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c_r, None, step=1,
                                                           cond_fakes=named)
    assert p_on["fake_c"].shape[0] == 4 and torch.allclose(p_off["fake_c"], p_on["fake_c"][named])
    mu, logvar, z = torch.randn(4, 8), torch.zeros(4, 8), torch.randn(4, 3)
    g_on, q_on = L.StackGANLoss(on, D, lambda x: x).g_phase(fake, y_fake, c, mu, logvar, None, z, pairs=0)
    g_off, q_off = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y_fake, c, mu, logvar, None, z, pairs=0)
    ff = D.features(fake)
    fc, fu = D.cond(ff, c), D.uncond(ff)
    assert q_on["g_adv"].item() == pytest.approx(L.matching_aware_g(loss, fc, fu).item(), rel=1e-5)
    assert q_off["g_adv"].item() == pytest.approx(L.matching_aware_g(loss, fc[named], fu).item(), rel=1e-5)
    assert q_off["g_adv"].item() != pytest.approx(q_on["g_adv"].item(), rel=1e-5)
    with pytest.raises(ConfigError, match="give --part-mix"):
        StackGANConfig(**{**base, "part_mix": 0.0}, part_mix_cond=False).validate()


def test_part_twin_trains_a_second_parts_head_on_the_fakes_and_g_subtracts_its_term():
    sizes = (3, 2)
    base = dict(image_size=16, ngf=8, ndf=8, c_dim=8, loss="hinge", gp_weight=0.0, d_cond="projection",
                name_loss=0.0, parts=True, part_loss=2.0, part_dim=5)
    plain = StackGANConfig(**base).validate()
    twin = StackGANConfig(**base, part_twin=True).validate()
    torch.manual_seed(1)
    D = Stage1D(c_dim=8, ndf=8, image_size=16, d_cond="projection", part_dim=5, part_twin=True)
    assert isinstance(D.twin_head, torch.nn.Linear) and D.twin_head.out_features == 5
    assert Stage1D(c_dim=8, ndf=8, image_size=16, part_dim=5).twin_head is None  # off by default
    real, fake = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    codes = torch.randn(5, 8)
    y = torch.arange(4) % 5
    c, c_w, c_r = codes[y], codes[(y + 1) % 5], codes[y]
    one_hot = lambda i, j: torch.cat([torch.eye(3)[i], torch.eye(2)[j]])  # noqa: E731
    parts_real = torch.stack([one_hot(0, 1), one_hot(1, 0), one_hot(2, 1), one_hot(0, 0)])
    parts_fake = torch.stack([one_hot(2, 0), one_hot(1, 1), one_hot(0, 1), one_hot(2, 1)])
    d0, p0 = L.StackGANLoss(plain, D, lambda x: x, sizes).d_phase(real, fake, y, c, c_w, c_r, None, step=1,
                                                                   parts_real=parts_real, parts_fake=parts_fake)
    d1, p1 = L.StackGANLoss(twin, D, lambda x: x, sizes).d_phase(real, fake, y, c, c_w, c_r, None, step=1,
                                                                  parts_real=parts_real, parts_fake=parts_fake)
    # D: the twin head reads the fakes as the parts they were drawn for; the real-photo head is unchanged
    want_d = L.part_classification(D.part_logits(D.features(fake), twin=True), parts_fake, sizes)
    assert p0["twin_d"].item() == 0.0 and p1["twin_d"].item() == pytest.approx(want_d.item(), rel=1e-5)
    assert p1["part_d"].item() == pytest.approx(p0["part_d"].item(), rel=1e-6)
    assert d1.item() == pytest.approx((d0 + 2.0 * want_d).item(), rel=1e-5)
    # only the twin head (and the shared features) learn from the twin term; the real-photo head does not
    D.zero_grad()
    p1["twin_d"].backward()
    assert D.twin_head.weight.grad.abs().sum() > 0 and D.part_head.weight.grad is None
    # G: its own parts term less the twin's, both read on its pictures
    mu, logvar, z = torch.randn(4, 8), torch.zeros(4, 8), torch.randn(4, 3)
    g0, q0 = L.StackGANLoss(plain, D, lambda x: x, sizes).g_phase(fake, y, c, mu, logvar, None, z, pairs=0,
                                                                   parts_fake=parts_fake)
    g1, q1 = L.StackGANLoss(twin, D, lambda x: x, sizes).g_phase(fake, y, c, mu, logvar, None, z, pairs=0,
                                                                  parts_fake=parts_fake)
    assert q0["twin_g"].item() == 0.0 and q1["twin_g"].item() == pytest.approx(want_d.item(), rel=1e-5)
    assert g1.item() == pytest.approx((g0 - 2.0 * q1["twin_g"]).item(), rel=1e-5)
    with pytest.raises(ConfigError, match="give --part-loss too"):
        StackGANConfig(parts=True, part_twin=True).validate()
    with pytest.raises(ValueError, match="twin parts head"):
        Stage1D(c_dim=8, ndf=8, image_size=16, part_dim=5).part_logits(torch.zeros(1, 16, 4, 4), twin=True)


def test_stackgan_loss_needs_a_validated_config():
    # the stage-dependent options are None until validate() gives them the stage's default
    raw = StackGANConfig(stage=2, stage1="s1", image_size=16, stage2_size=128, ngf=8, ndf=8, c_dim=8, name_loss=0.0)
    assert raw.stage2_paired is None and raw.stage2_consistency is None
    D = _phase_inputs(raw)[0]
    with pytest.raises(ValueError, match="validated config"):
        L.StackGANLoss(raw, D, lambda x: x)
    cfg = raw.validate()
    assert L.StackGANLoss(cfg, D, lambda x: x).cfg.stage2_consistency == cfg.stage_default("stage2_consistency") > 0


def test_d_reconstruction_compares_the_half_size_picture_and_one_quarter_at_full_size():
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    whole = F.avg_pool2d(real, 2)
    quarters = [real[..., :8, :8], real[..., :8, 8:], real[..., 8:, :8], real[..., 8:, 8:]]
    for q, part in enumerate(quarters):
        assert L.d_reconstruction(whole, part, real, q).item() == pytest.approx(0.0, abs=1e-7)
    # the wrong quarter costs its squared distance; an offset of the whole costs its square
    want = F.mse_loss(quarters[1], quarters[0]).item()
    assert L.d_reconstruction(whole, quarters[1], real, 0).item() == pytest.approx(want, rel=1e-5)
    assert L.d_reconstruction(whole + 0.5, quarters[3], real, 3).item() == pytest.approx(0.25, rel=1e-5)
    with pytest.raises(ValueError, match="half the 16 px"):
        L.d_reconstruction(real, quarters[0], real, 0)


TINY_D = dict(image_size=32, ngf=8, ndf=8, c_dim=8, d_cond="projection", name_loss=0.0)


def tiny_d_and_batch(**extra):
    """A seeded 32 px stage-I D with ``extra`` (recon=, patch=), one without, and a batch: real and fake
    pictures, labels, and the codes of their names and of wrong names."""
    torch.manual_seed(0)
    D = Stage1D(c_dim=8, ndf=8, image_size=32, d_cond="projection", **extra)
    plain = Stage1D(c_dim=8, ndf=8, image_size=32, d_cond="projection")
    real, fake = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    y, codes = torch.arange(4) % 2, torch.randn(2, 8)
    return D, plain, real, fake, y, codes[y], codes[(y + 1) % 2]


def test_d_recon_adds_ds_redrawing_of_the_real_pictures_to_ds_phase_when_on():
    base = TINY_D
    on = StackGANConfig(**{**base, "d_recon": 2.0}).validate()
    D, plain, real, fake, y, c, c_w = tiny_d_and_batch(recon=True)
    assert plain.recon_whole is None and D.recon_whole is not None
    feats, maps = D.features_with_maps(real)
    assert torch.equal(feats, D.features(real)) and [m.shape[-1] for m in maps] == [16, 8, 4]
    whole, part = D.reconstruct(maps, 2)
    assert whole.shape == part.shape == (4, 3, 16, 16)
    d1, p1 = L.StackGANLoss(on, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=6)  # quarter 2
    assert p1["d_recon"].item() == pytest.approx(L.d_reconstruction(whole, part, real, 2).item(), rel=1e-5)
    off = StackGANConfig(**base).validate()
    d0, p0 = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=6)
    assert p0["d_recon"].item() == 0.0
    assert d1.item() == pytest.approx((d0 + 2.0 * p1["d_recon"]).item(), rel=1e-5)
    d1.backward()  # the decoders learn with D, and so does D's down path through them
    assert D.recon_part[0][1].weight.grad.abs().sum() > 0 and D.recon_whole[-2].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no decoders"):
        plain.reconstruct(maps, 0)
    with pytest.raises(ValueError, match="32 or 64 px"):
        Stage1D(c_dim=8, ndf=8, image_size=16, recon=True)
    with pytest.raises(ConfigError, match="--image-size 32 or 64"):
        StackGANConfig(**{**base, "image_size": 16, "d_recon": 1.0}).validate()
    with pytest.raises(ConfigError, match="only for --stage 1"):
        StackGANConfig(**{**base, "stage": 2, "stage1": "s1", "d_recon": 1.0}).validate()


def test_d_patch_adds_a_verdict_per_place_of_the_16x16_map_to_both_phases_when_on():
    base = TINY_D
    on = StackGANConfig(**{**base, "d_patch": 0.5}).validate()
    D, plain, real, fake, y, c, c_w = tiny_d_and_batch(patch=True)
    assert plain.patch_head is None and D.patch_head is not None
    pr, pf = D.patch_logits(D.features_with_maps(real)[1]), D.patch_logits(D.features_with_maps(fake)[1])
    assert pr.shape == pf.shape == (4, 1, 16, 16)
    d1, p1 = L.StackGANLoss(on, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert p1["d_patch"].item() == pytest.approx(L.d_adv("bce", pr, pf).item(), rel=1e-5)
    off = StackGANConfig(**base).validate()
    d0, p0 = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert p0["d_patch"].item() == 0.0 and d1.item() == pytest.approx((d0 + 0.5 * p1["d_patch"]).item(), rel=1e-5)
    d1.backward()  # the head learns with D
    assert D.patch_head.weight.grad.abs().sum() > 0
    # G: every place of its picture must pass, through D to G's picture
    z, mu = torch.randn(4, 4), c.clone()
    g_fake = fake.clone().requires_grad_(True)
    g1, q1 = L.StackGANLoss(on, D, lambda x: x).g_phase(g_fake, y, c, mu, None, None, z, 2)
    g0, q0 = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y, c, mu, None, None, z, 2)
    assert q1["g_patch"].item() == pytest.approx(L.g_adv("bce", pf).item(), rel=1e-5) and q0["g_patch"].item() == 0.0
    assert g1.item() == pytest.approx((g0 + 0.5 * q1["g_patch"]).item(), rel=1e-5)
    (0.5 * q1["g_patch"]).backward()
    assert g_fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="no patch head"):
        plain.patch_logits(D.features_with_maps(real)[1])
    with pytest.raises(ValueError, match="32 or 64 px"):
        Stage1D(c_dim=8, ndf=8, image_size=16, patch=True)
    with pytest.raises(ConfigError, match="--image-size 32 or 64"):
        StackGANConfig(**{**base, "image_size": 16, "d_patch": 1.0}).validate()
    with pytest.raises(ConfigError, match="only for --stage 1"):
        StackGANConfig(**{**base, "stage": 2, "stage1": "s1", "d_patch": 1.0}).validate()


def test_balanced_consistency_sums_the_squared_differences_of_each_pair():
    a, b = torch.zeros(4, 1), torch.full((4, 1), 0.5)
    assert L.balanced_consistency([(a, a)]).item() == 0.0
    assert L.balanced_consistency([(a, b)]).item() == pytest.approx(0.25)
    assert L.balanced_consistency([(a, b), (b, b), (b, a + 1.5)]).item() == pytest.approx(0.25 + 0.0 + 1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        L.balanced_consistency([(a, b[:2])])
    with pytest.raises(ValueError, match="at least one"):
        L.balanced_consistency([])


def test_bcr_adds_the_two_views_disagreement_to_ds_phase_when_on():
    base = dict(image_size=16, ngf=8, ndf=8, c_dim=8, d_cond="projection", name_loss=0.0, diffaugment="translation")
    on = StackGANConfig(**{**base, "bcr": 3.0}).validate()
    torch.manual_seed(0)
    D = Stage1D(c_dim=8, ndf=8, image_size=16, d_cond="projection")
    real, fake = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    y, codes = torch.arange(4) % 2, torch.randn(2, 8)
    c, c_w = codes[y], codes[(y + 1) % 2]
    # an identity "augmentation": both views are the same pictures, so the term is 0 and the loss is unchanged
    same, p_same = L.StackGANLoss(on, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert p_same["bcr"].item() == pytest.approx(0.0, abs=1e-6)
    off = StackGANConfig(**base).validate()
    d0, p0 = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert p0["bcr"].item() == 0.0 and same.item() == pytest.approx(d0.item(), rel=1e-5)
    # views that differ: the term is the logits' disagreement, weighted by --bcr, and D learns from it
    calls = iter([0.0, 0.0, 0.5, -0.5])  # real, fake (the adversarial views), then the second real and fake views
    shift = lambda x: x + next(calls)  # noqa: E731
    D.eval()  # BatchNorm on running statistics: the logits depend only on each picture
    d1, p1 = L.StackGANLoss(on, D, shift).d_phase(real, fake, y, c, c_w, c, None, step=1)
    fr, fr2, ff, ff2 = D.features(real), D.features(real + 0.5), D.features(fake), D.features(fake - 0.5)
    want = (F.mse_loss(D.uncond(fr), D.uncond(fr2)) + F.mse_loss(D.cond(fr, c), D.cond(fr2, c))
            + F.mse_loss(D.uncond(ff), D.uncond(ff2)) + F.mse_loss(D.cond(ff, c), D.cond(ff2, c)))
    assert p1["bcr"].item() == pytest.approx(want.item(), rel=1e-4) and want.item() > 0
    d_plain, _ = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert d1.item() == pytest.approx((d_plain + 3.0 * p1["bcr"]).item(), rel=1e-4)
    D.zero_grad()
    (3.0 * p1["bcr"]).backward()
    assert sum(p.grad.abs().sum() for p in D.parameters() if p.grad is not None) > 0
    with pytest.raises(ConfigError, match="--diffaugment"):
        StackGANConfig(**{**base, "diffaugment": "none", "bcr": 1.0}).validate()


def test_d_vision_adds_the_frozen_networks_matching_aware_verdicts_to_both_phases_when_on():
    base = TINY_D
    on = StackGANConfig(**{**base, "d_vision": 0.5}).validate()
    D, plain, real, fake, y, c, c_w = tiny_d_and_batch(vision=True)
    D.eval()  # the heads' spectral norms hold still (no power iteration), so the verdicts can be compared
    V = D.vision_heads
    hr, hf = D.vision_features(real), D.vision_features(fake)
    want = L.matching_aware_d("bce", V(hr, c), V(hr), V(hr, c_w), V(hf, c), V(hf))
    d1, p1 = L.StackGANLoss(on, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert p1["d_vision"].item() == pytest.approx(want.item(), rel=1e-5)
    off = StackGANConfig(**base).validate()
    d0, p0 = L.StackGANLoss(off, D, lambda x: x).d_phase(real, fake, y, c, c_w, c, None, step=1)
    assert p0["d_vision"].item() == 0.0 and d1.item() == pytest.approx((d0 + 0.5 * p1["d_vision"]).item(), rel=1e-5)
    D.zero_grad()
    p1["d_vision"].backward()  # D's phase trains the heads only
    assert V.trunks[0][0].parametrizations.weight.original.grad.abs().sum() > 0
    assert all(p.grad is None for p in D.vision_net.net.parameters()) and D.encode[0][0].weight.grad is None
    # G: its picture must pass the heads too, with gradients through the frozen network to the picture
    z, mu = torch.randn(4, 4), c.clone()
    g_fake = fake.clone().requires_grad_(True)
    g1, q1 = L.StackGANLoss(on, D, lambda x: x).g_phase(g_fake, y, c, mu, None, None, z, 2)
    g0, q0 = L.StackGANLoss(off, D, lambda x: x).g_phase(fake, y, c, mu, None, None, z, 2)
    assert q1["g_vision"].item() == pytest.approx(L.matching_aware_g("bce", V(hf, c), V(hf)).item(), rel=1e-5)
    assert q0["g_vision"].item() == 0.0 and g1.item() == pytest.approx((g0 + 0.5 * q1["g_vision"]).item(), rel=1e-5)
    q1["g_vision"].backward()
    assert g_fake.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="only for --stage 1"):
        StackGANConfig(**{**base, "stage": 2, "stage1": "s1", "d_vision": 1.0}).validate()


def test_d_vision_every_computes_the_verdicts_on_one_step_in_n_scaled_up_by_n():
    base = TINY_D
    D, plain, real, fake, y, c, c_w = tiny_d_and_batch(vision=True)
    D.eval()
    every = L.StackGANLoss(StackGANConfig(**{**base, "d_vision": 0.5, "d_vision_every": 4}).validate(), D, lambda x: x)
    each = L.StackGANLoss(StackGANConfig(**{**base, "d_vision": 0.5}).validate(), D, lambda x: x)
    off = L.StackGANLoss(StackGANConfig(**base).validate(), D, lambda x: x)
    assert [every.vision_due(s) for s in range(6)] == [True, False, False, False, True, False]
    assert every.vision_due(None) and not off.vision_due(None)
    d_off, _ = off.d_phase(real, fake, y, c, c_w, c, None, step=1)
    d_skip, p_skip = every.d_phase(real, fake, y, c, c_w, c, None, step=1)  # not due: no term, no network read
    assert p_skip["d_vision"].item() == 0.0 and d_skip.item() == pytest.approx(d_off.item(), rel=1e-6)
    d_due, p_due = every.d_phase(real, fake, y, c, c_w, c, None, step=4)
    _, p_each = each.d_phase(real, fake, y, c, c_w, c, None, step=4)
    assert p_due["d_vision"].item() == pytest.approx(p_each["d_vision"].item(), rel=1e-5) != 0.0
    assert d_due.item() == pytest.approx((d_off + 0.5 * 4 * p_due["d_vision"]).item(), rel=1e-5)
    z, mu = torch.randn(4, 4), c.clone()
    g_off, _ = off.g_phase(fake, y, c, mu, None, None, z, 2)
    g_skip, q_skip = every.g_phase(fake, y, c, mu, None, None, z, 2, step=3)
    assert q_skip["g_vision"].item() == 0.0 and g_skip.item() == pytest.approx(g_off.item(), rel=1e-6)
    g_due, q_due = every.g_phase(fake, y, c, mu, None, None, z, 2, step=8)
    assert g_due.item() == pytest.approx((g_off + 0.5 * 4 * q_due["g_vision"]).item(), rel=1e-5)
    g_plain, q_plain = every.g_phase(fake, y, c, mu, None, None, z, 2)  # no step: the plain weight
    assert g_plain.item() == pytest.approx((g_off + 0.5 * q_plain["g_vision"]).item(), rel=1e-5)
    with pytest.raises(ConfigError, match="--d-vision-every 4 spaces"):
        StackGANConfig(**{**base, "d_vision_every": 4}).validate()
    with pytest.raises(ConfigError):
        StackGANConfig(**{**base, "d_vision": 0.5, "d_vision_every": 0}).validate()
