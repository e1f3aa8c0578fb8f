"""GAN inversion through a frozen stage I (stackgan/train/invert.py), on a tiny generator."""

import pytest
import torch

from stackgan.models.stackgan import Stage1G
from stackgan.train.invert import invert, inverted_bank

EMB = 12


def tiny_g(noise: bool = True) -> Stage1G:
    torch.manual_seed(0)
    G = Stage1G(EMB, c_dim=8, z_dim=10, ngf=8, image_size=16, g_cond="fusion", ca=False, noise=noise)
    G.train()
    for _ in range(3):  # BatchNorm statistics of G's own pictures, as after training
        G(torch.randn(8, 10), torch.randn(8, EMB))
    return G.eval()


@pytest.mark.parametrize("noise", [True, False])
def test_invert_draws_nearer_the_targets_and_leaves_g_as_it_was(noise):
    G = tiny_g(noise)
    G.train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    emb = torch.randn(4, EMB)
    with torch.no_grad():  # targets G can draw: other z (and noise maps)
        target = G.eval()(torch.randn(4, 10), emb, torch.zeros(4, 8),
                          noise=G.random_noise(4, torch.Generator().manual_seed(5)))[0]
    G.train()
    start, l1_start = invert(G, target, emb, steps=0)
    fitted, l1 = invert(G, target, emb, steps=60)
    assert fitted.shape == target.shape and not fitted.requires_grad
    assert l1 == pytest.approx(float((fitted - target).abs().mean()))
    assert l1 < 0.7 * l1_start
    assert G.training and all(p.requires_grad for p in G.parameters())
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # BN statistics untouched too
    again, _ = invert(G, target, emb, steps=60)
    assert torch.equal(again, fitted)  # the same default draw: the same pictures


def test_invert_refuses_targets_of_another_size_or_count():
    G = tiny_g()
    with pytest.raises(ValueError, match=r"\[n, 3, 16, 16\]"):
        invert(G, torch.zeros(2, 3, 32, 32), torch.zeros(2, EMB), steps=1)
    with pytest.raises(ValueError, match="3 sentence vectors for 2 targets"):
        invert(G, torch.zeros(2, 3, 16, 16), torch.zeros(3, EMB), steps=1)


def test_inverted_bank_draws_n_photos_by_seed_in_batches():
    G = tiny_g()
    photos = torch.rand(10, 3, 16, 16) * 2 - 1
    emb = torch.randn(10, EMB)
    seen = []
    bank = inverted_bank(G, photos, emb, 5, seed=3, steps=2, batch=2, report=lambda *a: seen.append(a))
    assert bank["idx"].tolist() == sorted(set(bank["idx"].tolist())) and len(bank["idx"]) == 5
    assert bank["low"].shape == (5, 3, 16, 16) and bank["low"].dtype == torch.float16
    assert [s[:2] for s in seen] == [(2, 5), (4, 5), (5, 5)] and bank["l1"].shape == (3,)
    same = inverted_bank(G, photos, emb, 5, seed=3, steps=2, batch=2)
    assert torch.equal(same["idx"], bank["idx"]) and torch.equal(same["low"], bank["low"])
    assert not torch.equal(inverted_bank(G, photos, emb, 5, seed=4, steps=2, batch=2)["idx"], bank["idx"])
    assert inverted_bank(G, photos, emb, 50, seed=3, steps=1, batch=8)["idx"].tolist() == list(range(10))
    with pytest.raises(ValueError, match="at least 1"):
        inverted_bank(G, photos, emb, 0, seed=3)
    with pytest.raises(ValueError, match="9 sentence vectors for 10 photos"):
        inverted_bank(G, photos, emb[:9], 5, seed=3)
