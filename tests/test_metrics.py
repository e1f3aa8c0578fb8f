"""Metrics on cases with known answers: identical/disjoint sets, collapse, classifier accuracy."""

from __future__ import annotations

import math

import pytest
import torch

from stackgan.metrics import diversity as div
from stackgan.metrics import fid as fidm
from stackgan.metrics.classifier import Classifier, ClassifierConfig, encode_labels, train_classifier
from stackgan.metrics.dprobe import maximise_score
from stackgan.metrics.faithfulness import attribute_faithfulness, class_faithfulness
from stackgan.metrics.memorisation import memorisation, nearest, public, save_closest_pairs
from stackgan.metrics.rprecision import r_precision


# -- synthetic "renders": base = background colour, topping = colour of a centre square ---------
BASES = {"丼": (0.8, -0.6, -0.6), "麺": (-0.6, 0.8, -0.6), "皿": (-0.6, -0.6, 0.8)}
TOPS = {"サーモン": (1.0, 0.4, -0.2), "卵": (1.0, 1.0, -1.0), "海苔": (-1.0, -1.0, -1.0)}


def render(base: str, top: str, n: int, size: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.tensor(BASES[base]).view(1, 3, 1, 1).expand(n, 3, size, size).clone()
    for i in range(n):
        s = int(torch.randint(size // 4, size // 2, (1,), generator=g))
        x, y = torch.randint(0, size - s, (2,), generator=g).tolist()
        img[i, :, y:y + s, x:x + s] = torch.tensor(TOPS[top]).view(3, 1, 1)
    img += 0.08 * torch.randn(img.shape, generator=g)
    return img.clamp(-1, 1)


def menu_set(per: int, seed: int):
    imgs, parts = [], []
    for bi, b in enumerate(BASES):
        for ti, t in enumerate(TOPS):
            imgs.append(render(b, t, per, seed=seed * 100 + bi * 10 + ti))
            parts += [(b, t)] * per
    return torch.cat(imgs), parts


@pytest.fixture(scope="module")
def attr_clf(tmp_path_factory):
    x, parts = menu_set(12, seed=1)
    xv, pv = menu_set(6, seed=2)
    yb, cb = encode_labels([p[0] for p in parts])
    yt, ct = encode_labels([p[1] for p in parts])
    cfg = ClassifierConfig(image_size=24, width=8, feat_dim=32, epochs=6, batch_size=16, lr=5e-3)
    vt = {"base": encode_labels([p[0] for p in pv], cb)[0], "topping": encode_labels([p[1] for p in pv], ct)[0]}
    cache = tmp_path_factory.mktemp("cache")
    clf = train_classifier(x, {"base": yb, "topping": yt}, {"base": cb, "topping": ct}, cfg,
                           val_images=xv, val_targets=vt, kind="attr-test", cache=cache, progress=False)
    return clf, cache, (x, yb, yt, cb, ct, cfg, xv, vt)


# -- FID / KID ---------------------------------------------------------------------------------
def test_fid_identical_sets_is_zero_and_disjoint_is_large():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 16, generator=g)
    assert fidm.frechet_distance(a, a.clone()) == pytest.approx(0.0, abs=1e-6)
    b = torch.randn(300, 16, generator=g) + 5.0  # mean shifted by 5 in each of 16 dims
    f = fidm.frechet_distance(a, b)
    assert f == pytest.approx(16 * 25, rel=0.1)


def test_fid_matches_closed_form_for_gaussians():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(20000, 3, generator=g)
    b = torch.randn(20000, 3, generator=g) * 2.0  # covariance 4 I: tr(I + 4I - 2*2I) = 3
    assert fidm.frechet_distance(a, b) == pytest.approx(3.0, rel=0.05)


def test_kid_identical_about_zero_and_disjoint_positive():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(200, 8, generator=g)
    same = torch.randn(200, 8, generator=g)
    far = torch.randn(200, 8, generator=g) + 3
    k_same, _ = fidm.kernel_inception_distance(a, same, subsets=20, subset_size=100)
    k_far, k_std = fidm.kernel_inception_distance(a, far, subsets=20, subset_size=100)
    assert abs(k_same) < 0.05
    assert k_far > 1.0 and k_far > 20 * abs(k_same)
    assert k_std >= 0


def test_fid_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        fidm.frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError):
        fidm.kernel_inception_distance(torch.zeros(1, 3), torch.zeros(5, 3))


def test_inception_loads_local_state_dict(tmp_path):
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "inc.pth")
    loaded = fidm.load_inception(tmp_path / "inc.pth")
    feats = fidm.inception_features(loaded, torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert feats.shape == (2, 2048)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    from stackgan.errors import CheckpointError

    with pytest.raises(CheckpointError):
        fidm.load_inception(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError):
        fidm.load_inception(tmp_path / "missing.pth")


# -- diversity -----------------------------------------------------------------------------------
def test_collapsed_generator_has_diversity_ratio_near_zero():
    g = torch.Generator().manual_seed(3)
    names = ["a", "b", "c"]
    real = torch.randn(30, 10, generator=g)
    real_idx = torch.arange(3).repeat_interleave(10)
    collapsed = torch.randn(3, 10, generator=g).repeat_interleave(8, 0) + 1e-4 * torch.randn(24, 10, generator=g)
    gen_idx = torch.arange(3).repeat_interleave(8)
    r = div.diversity(collapsed, gen_idx, real, real_idx, names)
    assert r["ratio"] < 0.01
    varied = torch.randn(24, 10, generator=g)
    r2 = div.diversity(varied, gen_idx, real, real_idx, names)
    assert 0.7 < r2["ratio"] < 1.3
    assert r2["names_compared"] == 3


def test_mean_pairwise_distance_known_value():
    f = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert div.mean_pairwise_distance(f) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        div.mean_pairwise_distance(f[:1])


# -- memorisation ---------------------------------------------------------------------------------
def test_memorisation_finds_copies(tmp_path):
    g = torch.Generator().manual_seed(4)
    train = torch.rand(20, 3, 16, 16, generator=g) * 2 - 1
    copies = train[[3, 7, 11]].clone()
    fresh = torch.rand(5, 3, 16, 16, generator=g) * 2 - 1
    gen = torch.cat([copies, fresh])
    feats = lambda x: x.flatten(1)[:, ::7]  # noqa: E731 - any fixed projection is a feature space
    m = memorisation(gen, feats(gen), train, feats(train), ref_images=fresh, ref_feats=feats(fresh), pixel_size=16)
    assert m["_pixel_idx"][:3].tolist() == [3, 7, 11]
    assert m["_pixel_dist"][:3].max() < 1e-5
    assert m["pixel"]["min"] < 1e-5 < m["heldout_pixel"]["min"]
    assert m["pixel_ratio"] < 1.0
    out = save_closest_pairs(gen, train, m["_pixel_dist"], m["_pixel_idx"], tmp_path / "pairs.png", k=8, size=16)
    from torchvision.io import read_image

    grid = read_image(str(out))
    assert grid.shape[1] > grid.shape[2]  # 8 rows of 2: taller than wide
    import json

    json.dumps(public(m))  # JSON-safe


def test_nearest_chunks_agree():
    g = torch.Generator().manual_seed(5)
    q, b = torch.randn(50, 4, generator=g), torch.randn(30, 4, generator=g)
    d1, i1 = nearest(q, b)
    d2, i2 = nearest(q, b, chunk=7)
    assert torch.equal(i1, i2) and torch.allclose(d1, d2)


# -- R-precision --------------------------------------------------------------------------------
def test_r_precision_perfect_and_chance():
    k = 10
    text = torch.eye(k)
    idx = torch.arange(k).repeat(5)
    perfect = r_precision(text[idx] + 0.01, idx, text)
    assert perfect["r_precision"] == 1.0 and perfect["candidates"] == k
    g = torch.Generator().manual_seed(6)
    rnd = r_precision(torch.randn(2000, k, generator=g), torch.randint(0, k, (2000,), generator=g), text)
    assert abs(rnd["r_precision"] - 1 / k) < 0.04
    many = r_precision(torch.randn(4, 8), torch.zeros(4, dtype=torch.long), torch.randn(300, 8))
    assert many["candidates"] == 100


# -- D probe ------------------------------------------------------------------------------------
def test_maximise_score_moves_towards_target():
    target = torch.zeros(1, 3, 8, 8)
    target[:, 0] = 0.9  # a red image

    def score(x):
        return -((x - target) ** 2).flatten(1).mean(1)

    img, hist = maximise_score(score, (1, 3, 8, 8), steps=150, lr=0.1, tv_weight=0.0)
    assert hist[-1] > hist[0] and hist[-1] > -0.01
    assert img[:, 0].mean() > 0.8 and img[:, 1].abs().mean() < 0.1


# -- classifiers and faithfulness -------------------------------------------------------------------
def test_attribute_classifier_above_threshold_on_renders(attr_clf):
    clf, _, (_, _, _, _, _, _, xv, vt) = attr_clf
    acc = clf.accuracy(xv, vt)
    assert acc["base"] > 0.9 and acc["topping"] > 0.8
    assert clf.metrics["heldout_accuracy"] == pytest.approx(acc)
    assert clf.features(xv).shape == (len(xv), 32)


def test_classifier_cache_is_reused_and_keyed_by_content(attr_clf):
    clf, cache, (x, yb, yt, cb, ct, cfg, xv, vt) = attr_clf
    files = list((cache / "classifiers").glob("*.safetensors"))
    assert len(files) == 1
    again = train_classifier(x, {"base": yb, "topping": yt}, {"base": cb, "topping": ct}, cfg,
                             val_images=xv, val_targets=vt, kind="attr-test", cache=cache, progress=False)
    assert again.path == files[0]
    assert torch.allclose(again.features(xv[:4]), clf.features(xv[:4]), atol=1e-5)
    loaded = Classifier.load(files[0])
    assert loaded.classes == clf.classes and loaded.metrics == clf.metrics


def test_attribute_faithfulness_counts_matches(attr_clf):
    clf = attr_clf[0]
    names = ["サーモン丼", "卵麺", "謎皿"]
    parts = [{"base": "丼", "topping": "サーモン"}, {"base": "麺", "topping": "卵"},
             {"base": "皿", "topping": "トリュフ"}]  # an unseen topping
    # pictures for name 0 are right; for name 1 the topping is wrong (海苔 drawn instead of 卵)
    imgs = torch.cat([render("丼", "サーモン", 8, seed=50), render("麺", "海苔", 8, seed=51), render("皿", "卵", 8, seed=52)])
    idx = torch.arange(3).repeat_interleave(8)
    r = attribute_faithfulness(clf, imgs, idx, names, parts)
    per = {row["name"]: row for row in r["per_name"]}
    assert per["サーモン丼"]["all"] > 0.8
    assert per["卵麺"]["base"] > 0.8 and per["卵麺"]["topping"] < 0.2
    assert per["謎皿"]["topping"] == 0.0 and r["unseen_parts"] == 1
    assert r["images"] == 24


def test_class_faithfulness_with_name_head(attr_clf):
    clf = attr_clf[0]
    # reuse the base head as a 3-class "name" classifier
    imgs = torch.cat([render(b, "卵", 6, seed=60 + i) for i, b in enumerate(BASES)])
    idx = torch.arange(3).repeat_interleave(6)
    r = class_faithfulness(clf, imgs, idx, list(BASES), head="base")
    assert r["overall"] > 0.9 and math.isclose(r["chance"], 1 / 3)


def test_classifier_rejects_bad_targets():
    from stackgan.errors import DataError

    with pytest.raises(DataError):
        train_classifier(torch.zeros(1, 3, 8, 8), {"a": torch.zeros(1, dtype=torch.long)}, {"a": ["x"]}, cache=False)
    with pytest.raises(ValueError):
        train_classifier(torch.zeros(4, 3, 8, 8), {"a": torch.tensor([0, 1, 2, 5])}, {"a": ["x", "y", "z"]},
                         cache=False)
    with pytest.raises(DataError):
        encode_labels(["q"], ["x", "y"])
