"""Metrics on cases with known answers: identical/disjoint sets, collapse, classifier accuracy."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stackgan.metrics import diversity as div
from stackgan.metrics import fid as fidm
from stackgan.metrics.classifier import Classifier, ClassifierConfig, encode_labels, train_classifier
from stackgan.metrics.dprobe import maximise_score
from stackgan.metrics.faithfulness import attribute_faithfulness, class_faithfulness
from stackgan.metrics.memorisation import memorisation, nearest, public, save_closest_pairs
from stackgan.metrics.rprecision import r_precision
from conftest import one_thread, use_hash_encoder  # noqa: E402


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


CFG = ClassifierConfig(image_size=24, width=8, feat_dim=32, epochs=10, batch_size=16, lr=5e-3)


@pytest.fixture(scope="module")
def menu(tmp_path_factory):
    """Synthetic renders split into train/held-out, and the attribute classifier trained on them."""
    from stackgan.metrics.evaluate import fit_classifier

    data = synthetic_realdata()
    cache = tmp_path_factory.mktemp("cache")
    clf = fit_classifier(data, CFG, cache=cache, progress=False)
    return data, clf, cache


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


def test_inception_rejects_missing_and_bad_files(tmp_path):
    from stackgan.errors import CheckpointError

    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        fidm.load_inception(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError):
        fidm.load_inception(tmp_path / "missing.pth")


@pytest.mark.slow
def test_inception_loads_local_state_dict_and_gives_2048_d(tmp_path):
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "inc.pth")
    loaded = fidm.load_inception(tmp_path / "inc.pth")
    assert isinstance(loaded.fc, torch.nn.Identity)
    assert torch.equal(loaded.Conv2d_1a_3x3.conv.weight, net.Conv2d_1a_3x3.conv.weight)
    feats = fidm.inception_features(loaded, torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert feats.shape == (2, 2048)
    from stackgan.errors import CheckpointError

    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a torchvision inception_v3"):
        fidm.load_inception(tmp_path / "other.pth")
    assert loaded.weights_kind == "torchvision" and "not comparable" in fidm.weights_note(loaded)


@pytest.mark.slow
def test_fid_inception_weights_are_told_apart_and_fed_in_their_range(tmp_path, monkeypatch):
    """A state dict of the FID-Inception graph (1008 classes; random here, as nothing is downloaded) loads
    into pytorch-fid's blocks and sees [-1, 1] input; without pytorch-fid it is a clear error."""
    pytest.importorskip("pytorch_fid")
    from pytorch_fid.inception import FIDInceptionA

    from stackgan.errors import CheckpointError

    torch.manual_seed(0)
    ref = fidm.fid_inception_architecture()
    torch.save(ref.state_dict(), tmp_path / "pt_inception.pth")
    net = fidm.load_inception(tmp_path / "pt_inception.pth")
    assert net.weights_kind == "fid" and isinstance(net.Mixed_5b, FIDInceptionA) and "FID-Inception" in fidm.weights_note(net)
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    ref.fc = torch.nn.Identity()
    with torch.no_grad():
        want = ref.eval()(x)
    got = fidm.inception_features(net, x)  # no ImageNet normalisation for these weights
    assert got.shape == (2, 2048) and torch.allclose(got, want, atol=1e-4)
    import builtins

    real_import = builtins.__import__

    def no_fid(name, *a, **k):
        if name.startswith("pytorch_fid"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_fid)
    with pytest.raises(CheckpointError, match="needs the pytorch-fid package"):
        fidm.load_inception(tmp_path / "pt_inception.pth")


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
def test_attribute_classifier_above_threshold_on_renders(menu):
    data, clf, _ = menu
    assert set(clf.classes) == {"base", "topping", "modifier"}
    acc = clf.metrics["heldout_accuracy"]
    assert acc["base"] > 0.9 and acc["topping"] > 0.8
    assert clf.metrics["heldout_images"] == len(data.test_images)
    assert clf.features(data.test_images).shape == (len(data.test_images), 32)


def test_classifier_cache_is_reused_and_keyed_by_content(menu):
    from stackgan.metrics.evaluate import fit_classifier

    data, clf, cache = menu
    files = list((cache / "classifiers").glob("*.safetensors"))
    assert len(files) == 1
    again = fit_classifier(data, CFG, cache=cache, progress=False)  # would take seconds if it trained
    assert again.path == files[0]
    x = data.test_images[:4]
    assert torch.allclose(again.features(x), clf.features(x), atol=1e-5)
    loaded = Classifier.load(files[0])
    assert loaded.classes == clf.classes and loaded.metrics == clf.metrics
    other = dataclasses.replace(CFG, epochs=1)
    from stackgan.metrics.classifier import cache_key

    t = {"base": data.train_labels}
    assert cache_key("k", data.train_images, t, {"base": ["a"]}, CFG) != cache_key(
        "k", data.train_images, t, {"base": ["a"]}, other)
    assert cache_key("k", data.train_images, t, {"base": ["a"]}, CFG) != cache_key(
        "k", data.train_images.flip(0), t, {"base": ["a"]}, CFG)


def test_a_cached_classifier_is_used_only_when_readable_and_of_its_key(menu, tmp_path):
    data, clf, cache = menu
    path = list((cache / "classifiers").glob("*.safetensors"))[0]
    hit = Classifier.cached(path, clf.key)
    assert hit is not None and hit.key == clf.key and hit.classes == clf.classes
    assert Classifier.cached(path, "another key") is None  # stale: trained for other data
    assert Classifier.cached(tmp_path / "absent.safetensors", clf.key) is None
    assert Classifier.cached(None, clf.key) is None  # no cache asked for
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:100])  # a cut-off write
    assert Classifier.cached(bad, clf.key) is None

def test_attribute_faithfulness_counts_matches(menu):
    clf = menu[1]
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
    # what a name is read as when a part is missed: the drawn topping, on the right base
    assert per["卵麺"]["read_as"][0]["parts"].startswith("麺 / 海苔") and per["卵麺"]["read_as"][0]["share"] > 0.8
    assert sum(a["share"] for a in per["サーモン丼"]["read_as"]) <= 1 - per["サーモン丼"]["all"] + 1e-9
    assert len(per["卵麺"]["read_as"]) <= 2


def test_class_faithfulness_with_name_head(menu):
    clf = menu[1]
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


# -- the whole protocol on synthetic renders -------------------------------------------------------
def synthetic_realdata():
    from stackgan.metrics.features import to_float  # noqa: F401 - images are float here, uint8 below
    from stackgan.metrics.realdata import RealData

    names, parts, tr, trl, te, tel = [], {}, [], [], [], []
    for b in BASES:
        for t in TOPS:
            if (b, t) == ("皿", "海苔"):
                continue  # kept back as an invented combination
            j = len(names)
            names.append(t + b)
            parts[t + b] = {"base": b, "topping": t, "modifier": "-"}
            x = render(b, t, 10, seed=200 + j)
            tr.append(x[:8])
            te.append(x[8:])
            trl += [j] * 8
            tel += [j] * 2
    u8 = lambda x: ((torch.cat(x) + 1) * 127.5).round().to(torch.uint8)  # noqa: E731
    return RealData(names=names, train_images=u8(tr), train_labels=torch.tensor(trl), test_images=u8(te),
                    test_labels=torch.tensor(tel), parts=parts,
                    invented=[("海苔皿", {"base": "皿", "topping": "海苔", "modifier": "-"})], root="synthetic",
                    split_note="2 of 10 per name")


def faithful_sampler(name, n, seed):
    t = next(t for t in TOPS if name.startswith(t))
    return render(name[len(t):], t, n, seed=seed)


def collapsed_sampler(name, n, seed):
    return render("丼", "卵", 1, seed=0).expand(n, -1, -1, -1)


def test_evaluate_sampler_separates_good_from_collapsed(menu, tmp_path):
    from stackgan.metrics.evaluate import Protocol, evaluate_sampler
    from stackgan.metrics.report import write_report

    data, clf, _ = menu
    proto = Protocol(n_per_name=4, max_names=0, kid_subsets=10)
    good = evaluate_sampler(faithful_sampler, data, clf, proto, tmp_path, "good")
    bad = evaluate_sampler(collapsed_sampler, data, clf, proto, tmp_path, "collapsed")
    assert good["faithfulness_train"]["overall"]["all"] > 0.8
    assert good["faithfulness_invented"]["overall"]["base"] > bad["faithfulness_invented"]["overall"]["base"]
    assert bad["faithfulness_train"]["overall"]["all"] < 0.3
    assert good["fid"]["fid"] < bad["fid"]["fid"] / 5
    assert good["fid"]["n_a"] == len(data.test_images) == good["fid"]["n_b"]
    assert bad["diversity"]["ratio"] < 0.05 < 0.5 < good["diversity"]["ratio"]
    results = {"models": {"good": good, "collapsed": bad}, "classifier": clf.metrics | {"kind": "attributes"},
               "data": {"root": "synthetic", "names": len(data.names)}}
    js, md = write_report(results, tmp_path, "test report")
    text = md.read_text(encoding="utf-8")
    assert "not on Inception features" in text and "| metric | good | collapsed |" in text
    # the collapsed model draws 丼 with 卵 for every invented name: the report says so for those it gets wrong
    misread = [r for r in bad["faithfulness_invented"]["per_name"] if r["all"] < 0.5]
    assert misread and all(r["read_as"][0]["parts"].startswith("丼 / 卵") for r in misread)
    assert "collapsed: invented names drawn right less than half the time" in text
    assert f"- {misread[0]['name']} (all three right" in text and "丼 / 卵" in text
    for f in good["files"].values():
        assert (tmp_path / f).is_file()
    import json

    assert json.loads(js.read_text())["models"]["good"]["fid"]["n_b"] == len(data.test_images)


def test_projection_r_precision_on_real_features_beats_chance(menu):
    from stackgan.metrics.rprecision import fit_projection

    data, clf, _ = menu
    g = torch.Generator().manual_seed(7)
    text = torch.randn(len(data.names), 16, generator=g)  # any fixed sentence vectors
    proj = fit_projection(clf.features(data.train_images), data.train_labels, text, steps=200)
    r = r_precision(proj(clf.features(data.test_images)), data.test_labels, text)
    assert r["candidates"] == len(data.names)
    assert r["r_precision"] > 3 * r["chance"]


# -- end to end: tiny StackGAN and DCGAN runs through `stackgan evaluate` and `stackgan compare` ---------
def write_menu_folder(folder, per=6, size=24):
    """A small photo folder of synthetic renders with names.tsv, attributes.tsv and invented.tsv."""
    from PIL import Image

    data = synthetic_realdata()
    folder.mkdir(parents=True)
    rows, attrs = ["file\tname"], ["file\tname\tbase\ttopping\tmodifier"]
    for j, name in enumerate(data.names):
        p = data.parts[name]
        imgs = ((render(p["base"], p["topping"], per, size=size, seed=300 + j) + 1) * 127.5).round().byte()
        for i, im in enumerate(imgs):
            f = f"{j:02d}-{i}.png"
            Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f)
            rows.append(f"{f}\t{name}")
            attrs.append(f"{f}\t{name}\t{p['base']}\t{p['topping']}\t-")
    (folder / "names.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "attributes.tsv").write_text("\n".join(attrs) + "\n", encoding="utf-8")
    (folder / "invented.tsv").write_text("name\tbase\ttopping\tmodifier\n海苔皿\t皿\t海苔\t-\n", encoding="utf-8")
    return folder, data.names


@pytest.fixture
def offline_text(monkeypatch, tmp_path):
    with one_thread():  # tiny models on a shared machine: threads only add contention
        yield use_hash_encoder(monkeypatch, tmp_path / "cache")


SMALL = ["--clf-size", "16", "--clf-width", "8", "--clf-epochs", "3", "--n-per-name", "2", "--kid-subsets", "5",
         "--no-progress", "--device", "cpu", "--image-size", "16"]


def test_evaluate_and_compare_cli_on_tiny_runs(tmp_path, offline_text, capsys):
    import json

    from stackgan.cli import main

    data, names = write_menu_folder(tmp_path / "menu")
    run = tmp_path / "sg"
    assert main(["train", "--data", str(data), "--out", str(run), "--image-size", "16", "--ngf", "8", "--ndf", "8",
                 "--c-dim", "8", "--z-dim", "8", "--batch-size", "8", "--max-steps", "4", "--ckpt-every", "2",
                 "--keep-ckpts", "3", "--no-progress", "--grid-rows", "2", "--grid-cols", "2", "--device", "cpu"]) == 0
    capsys.readouterr()
    rc = main(["evaluate", str(run), "--out", str(tmp_path / "ev"), "--checkpoints", "2", "--dprobe-steps", "3",
               "--dprobe-names", "2", *SMALL])
    out = capsys.readouterr()
    assert rc == 0, out.err
    res = json.loads((tmp_path / "ev" / "eval.json").read_text(encoding="utf-8"))
    (label, r), = res["models"].items()
    assert label == "stackgan-stage1"
    assert set(r["faithfulness_train"]["overall"]) == {"base", "topping", "modifier", "all"}
    assert r["faithfulness_invented"]["names"] == 1
    assert r["fid"]["n_a"] == r["fid"]["n_b"] == res["data"]["heldout"] > 0
    assert r["rprecision"]["candidates"] == len(names) + 1 and "note" in r["rprecision"]
    assert [c["step"] for c in res["checkpoints"]] == [2, 4]
    assert r["training"]["steps"] == 4 and r["training"]["batch_size"] == 8
    for f in [*r["files"].values(), r["dprobe"]["file"], res["checkpoint_plot"]]:
        assert (tmp_path / "ev" / f).is_file(), f
    md = (tmp_path / "ev" / "eval.md").read_text(encoding="utf-8")
    assert "not on Inception features" in md and "seen the 'held-out' photos" in md
    assert "FID in-domain" in out.out
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["fid_samples"]["heldout"] == res["data"]["heldout"]
    assert res["command"].startswith(f"stackgan evaluate {run} --out")  # from the CLI, not from sys.argv
    lines = [json.loads(x) for x in (tmp_path / "ev" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    # no fid_inception without --inception, no fid_detail at 16 px
    assert [x["metric"] for x in lines] == ["faithfulness", "fid_in_domain", "spectrum", "patches", "diversity",
                                            "memorisation", "rprecision", "dprobe"]
    assert lines[1]["results"]["fid"]["fid"] == pytest.approx(r["fid"]["fid"]) and lines[1]["model"] == label

    # --metrics: a subset gives the same numbers as the full run (the picture sets are the same draws)
    # (and --two-sample: the probe, asked for by name, on the 16 px pictures against every photo at 16 px)
    rc = main(["evaluate", str(run), "--out", str(tmp_path / "ev-sub"), "--metrics",
               "diversity,fid_in_domain,two_sample", "--two-sample", "20", "--checkpoints", "0", *SMALL])
    out = capsys.readouterr()
    assert rc == 0, out.err
    sub = json.loads((tmp_path / "ev-sub" / "eval.json").read_text(encoding="utf-8"))
    (_, rs), = sub["models"].items()
    assert sub["metrics"] == ["fid_in_domain", "two_sample", "diversity"] and "faithfulness_train" not in rs
    assert (rs["two_sample"]["steps"], rs["two_sample"]["size"]) == (20, 16)
    assert rs["two_sample"]["n_test"] == (res["data"]["train"] + res["data"]["heldout"]) // 2 * 2
    assert 0 <= rs["two_sample"]["auc"] <= 1 and rs["two_sample"]["log_loss"] > 0
    md = (tmp_path / "ev-sub" / "eval.md").read_text(encoding="utf-8")
    assert "two-sample probe" in md and "held-out cross-entropy" in md
    assert rs["fid"] == r["fid"] and rs["fid_floor"] == r["fid_floor"] and rs["diversity"] == r["diversity"]
    assert "metrics.json not written" in out.out and "faithfulness" in out.out
    assert json.loads((run / "metrics.json").read_text(encoding="utf-8")) == metrics  # kept as it was
    assert main(["evaluate", str(run), "--metrics", "fid,faithfulness", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "unknown metric(s) fid" in err and "fid_in_domain" in err

    # --truncation 0: z and the CA noise at their mean, so every picture of a name is the same one
    rc = main(["evaluate", str(run), "--out", str(tmp_path / "ev0"), "--truncation", "0", "--checkpoints", "0",
               "--dprobe-steps", "0", "--no-write-run-metrics", *SMALL])
    assert rc == 0, capsys.readouterr().err
    res0 = json.loads((tmp_path / "ev0" / "eval.json").read_text(encoding="utf-8"))
    (label0, r0), = res0["models"].items()
    assert label0 == "stackgan-stage1-truncation0" and r0["model"]["truncation"] == 0
    assert r0["diversity"]["generated"] < 1e-3 < r["diversity"]["generated"]
    capsys.readouterr()
    # --parts-sentence is for a model that reads names with their parts; refused before any work
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev-ps"), "--parts-sentence", "parts",
                 *SMALL]) == 2
    assert "trained with --parts" in capsys.readouterr().err and not (tmp_path / "ev-ps").exists()
    assert main(["evaluate", str(run), "--parts-sentence", "mean", *SMALL]) == 2
    assert "--parts-sentence must be own or parts" in capsys.readouterr().err

    # with --stackgan, the baseline and the ablations take that run's settings and budget
    rc = main(["compare", "--out", str(tmp_path / "cmp"), "--models", "dcgan", "no-diffaugment", "no-ca",
               "--stackgan", str(run), *SMALL])
    out = capsys.readouterr()
    assert rc == 0, out.err
    cmp = json.loads((tmp_path / "cmp" / "report" / "compare.json").read_text(encoding="utf-8"))
    assert list(cmp["models"]) == ["dcgan", "no-diffaugment", "no-ca"]
    for m in cmp["models"].values():
        assert m["training"]["steps"] == 4 and m["training"]["batch_size"] == 8
        assert m["training"]["source"] == "trained"
    assert cmp["models"]["dcgan"]["model"]["conditional"] is False
    trained = {m: json.loads((tmp_path / "cmp" / m / "config.json").read_text(encoding="utf-8"))
               for m in ("no-diffaugment", "no-ca")}
    mine = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert trained["no-diffaugment"]["diffaugment"] == "none" and trained["no-diffaugment"]["ca"] is True
    assert trained["no-ca"]["ca"] is False and trained["no-ca"]["diffaugment"] == mine["diffaugment"]
    assert all(t["c_dim"] == 8 and t["z_dim"] == 8 and t["data"] == str(data) for t in trained.values())
    md = (tmp_path / "cmp" / "report" / "compare.md").read_text(encoding="utf-8")
    assert "| metric | dcgan | no-diffaugment | no-ca |" in md
    # the same command again reuses the finished runs; another data set than the run's is refused
    rc = main(["compare", "--out", str(tmp_path / "cmp"), "--models", "dcgan", "--stackgan", str(run), *SMALL])
    assert rc == 0
    assert "using the finished run" in capsys.readouterr().out
    # a run with these settings but fewer steps is resumed; one with other settings is not reused
    from stackgan.metrics.compare import _finished

    import shutil

    done = json.loads((tmp_path / "cmp" / "no-ca" / "config.json").read_text(encoding="utf-8"))
    assert _finished(tmp_path / "cmp" / "no-ca", done) is True
    assert _finished(tmp_path / "cmp" / "no-ca", {**done, "kl": 0.5}) is None
    assert _finished(tmp_path / "cmp" / "no-ca", {**done, "max_steps": 8}) is None  # another budget
    assert _finished(tmp_path / "cmp" / "nothing", done) is False
    cut = shutil.copytree(tmp_path / "cmp" / "no-ca", tmp_path / "cut")  # as if stopped at step 4 of 8
    (cut / "config.json").write_text(json.dumps({**done, "max_steps": 8}), encoding="utf-8")
    assert _finished(cut, {**done, "max_steps": 8}) == "partial"
    rc = main(["evaluate", str(tmp_path / "cmp" / "dcgan"), "--truncation", "0.5", "--out", str(tmp_path / "ev-t"),
               *SMALL])
    assert rc == 2 and "--truncation applies to StackGAN runs" in capsys.readouterr().err
    assert not (tmp_path / "ev-t").exists()  # refused before anything is written
    rc = main(["compare", "--data", str(tmp_path), "--out", str(tmp_path / "cmp"), "--models", "dcgan",
               "--stackgan", str(run), *SMALL])
    assert rc == 2 and "not the data set the --stackgan run trained on" in capsys.readouterr().err


def test_evaluate_cli_errors_are_clear(tmp_path, capsys):
    from stackgan.cli import main

    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "no run at" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text('{"_kind": "SomethingElse"}', encoding="utf-8")
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert "evaluate takes StackGAN or DCGAN runs" in capsys.readouterr().err
    assert main(["compare", "--models", "gan"]) == 2
    assert "unknown gan" in capsys.readouterr().err


# -- the real data sets (slow) -----------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_attribute_classifier_on_menu_renders(tmp_path, monkeypatch):
    """The default attribute classifier on the embedded menu's renders, scored on held-out renders."""
    from stackgan.metrics.evaluate import fit_classifier
    from stackgan.metrics.realdata import load_real_data
    from stackgan.metrics.runeval import classifier_config
    from stackgan.metrics.config import EvaluateConfig

    monkeypatch.setenv("STACKGAN_CACHE", str(tmp_path / "cache"))
    menu = REPO / "data" / "menu"
    if not (menu / "attributes.tsv").is_file():
        from stackgan.menu.make import make_menu

        menu = tmp_path / "menu"
        make_menu(menu, per_name=12, size=64)
    data = load_real_data(menu, image_size=64, held_out=0.2, seed=0, progress=False)
    assert data.has_attributes and len(data.invented) > 0
    clf = fit_classifier(data, classifier_config(EvaluateConfig(run="x")), progress=False)
    acc = clf.metrics["heldout_accuracy"]
    assert acc["base"] >= 0.8 and acc["topping"] >= 0.6 and acc["modifier"] >= 0.6, acc


@pytest.mark.slow
@pytest.mark.realfood
def test_name_classifier_on_realfood(tmp_path, monkeypatch):
    """Class faithfulness's ceiling on real photos: the name classifier well above chance on held-out photos."""
    from stackgan.data import shared_dataset
    from stackgan.metrics.config import EvaluateConfig
    from stackgan.metrics.evaluate import fit_classifier
    from stackgan.metrics.realdata import load_real_data
    from stackgan.metrics.runeval import classifier_config

    root = shared_dataset("realfood")
    if root is None:
        pytest.skip("../shared/realfood is not here")
    monkeypatch.setenv("STACKGAN_CACHE", str(tmp_path / "cache"))
    data = load_real_data(root, image_size=64, held_out=0.2, seed=0, progress=False)
    assert not data.has_attributes
    clf = fit_classifier(data, classifier_config(EvaluateConfig(run="x")), progress=False)
    acc = clf.metrics["heldout_accuracy"]["name"]
    assert acc > 5 / len(data.names), acc


def test_invented_renders_are_true_pictures_of_the_invented_menu_names(tmp_path):
    """The ceiling for invented names comes from the menu renderer's own pictures of them; a data set
    whose invented parts the renderer does not know gets none."""
    import dataclasses

    from stackgan.metrics.realdata import invented_renders, load_real_data

    folder, _ = write_menu_folder(tmp_path / "menu")
    data = load_real_data(folder, image_size=24, held_out=0.2, seed=0, progress=False)
    assert data.invented and invented_renders(data) is None  # 海苔皿 is not a menu dish
    menu = dataclasses.replace(data, invented=[("サーモンうどん", {"base": "うどん", "topping": "サーモン", "modifier": "-"}),
                                               ("冷やし月見そば", {"base": "そば", "topping": "月見", "modifier": "冷やし"})])
    pics, idx = invented_renders(menu, per_name=3)
    assert pics.dtype == torch.uint8 and pics.shape == (6, 3, 24, 24)
    assert idx.tolist() == [0, 0, 0, 1, 1, 1]
    assert not torch.equal(pics[0], pics[1]) and not torch.equal(pics[0], pics[3])
    again, _ = invented_renders(menu, per_name=3)
    assert torch.equal(pics, again)  # deterministic


def test_compare_with_max_minutes_gives_every_model_the_same_time(tmp_path):
    import json

    from stackgan.metrics.compare import _finished, base_stackgan, dcgan_config, stackgan_config
    from stackgan.metrics.config import CompareConfig
    from stackgan.stackgan_config import StackGANConfig

    cfg = CompareConfig(out=str(tmp_path), max_minutes=30, ngf=32, ndf=32, batch_size=32).validate()
    base = base_stackgan(cfg)
    assert (base["max_steps"], base["epochs"], base["max_minutes"]) == (0, 0, 30)
    dc = dcgan_config(base, tmp_path / "dcgan")
    assert dc.max_minutes == 30 and dc.max_steps == 0 and dc.batch_size == 32
    ab = stackgan_config(base, tmp_path / "no-ca", "no-ca")
    assert ab.max_minutes == 30 and ab.max_steps == 0 and ab.ca is False
    # a run with that budget is finished once its timing.json has the minutes, resumed before
    run = tmp_path / "no-ca"
    run.mkdir()
    want = dataclasses.replace(ab, emb_dim=384).to_dict()
    (run / "config.json").write_text(json.dumps(want), encoding="utf-8")
    (run / "log.jsonl").write_text(json.dumps({"step": 40, "sec_step": 0.1}) + "\n", encoding="utf-8")
    (run / "timing.json").write_text(json.dumps({"step": 40, "train_seconds": 600.0}), encoding="utf-8")
    assert _finished(run, want) == "partial"
    (run / "timing.json").write_text(json.dumps({"step": 90, "train_seconds": 1800.5}), encoding="utf-8")
    assert _finished(run, want) is True
    # a run from before --precision / --max-minutes existed still counts as the same settings
    old = {k: v for k, v in StackGANConfig(max_steps=8).to_dict().items() if k not in ("precision", "max_minutes")}
    (run / "config.json").write_text(json.dumps(old), encoding="utf-8")
    assert _finished(run, {**StackGANConfig(max_steps=8).to_dict()}) is True


def test_pixel_diversity_of_the_training_log():
    """The in-training diversity (``div_gen`` / ``div_real``): mean pairwise L1 at 32 px, per name."""
    a = torch.zeros(2, 3, 64, 64)
    a[1] += 1.0
    assert div.mean_pairwise_l1(a) == pytest.approx(1.0)
    assert math.isnan(div.mean_pairwise_l1(a[:1]))
    u8 = torch.stack([torch.zeros(3, 8, 8), torch.full((3, 8, 8), 255.0), torch.zeros(3, 8, 8)]).to(torch.uint8)
    labels = torch.tensor([0, 0, 1])
    # name 0: two pictures 2.0 apart in [-1, 1]; name 1 has one picture and is left out
    assert div.real_pixel_diversity(u8, labels, [0, 1], size=8) == pytest.approx(2.0)
    assert math.isnan(div.real_pixel_diversity(u8, labels, [1], size=8))


def test_shrink_like_photos_is_the_photos_own_path():
    import numpy as np
    from PIL import Image

    from stackgan.menu.render import render_dish
    from stackgan.metrics.evaluate import shrink_like_photos

    img = render_dish("醤油ラーメン", None, None, np.random.default_rng(0), 256).convert("RGB")
    as_photo = torch.from_numpy(np.asarray(img.resize((64, 64), Image.LANCZOS, reducing_gap=3.0)).copy())
    full = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(127.5).sub(1.0)
    got = shrink_like_photos(full[None], 64)
    assert got.shape == (1, 3, 64, 64) and got.dtype == torch.float32
    assert torch.equal(((got[0] + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0), as_photo)


def test_the_report_says_when_the_detail_fid_shrank_the_pictures():
    from stackgan.metrics.report import metric_rows

    def detail(size, own):
        d = {"fid": 2.0, "kid": 0.0, "kid_std": 0.0, "n_a": 5, "n_b": 5, "size": size, "crop": 48}
        return {"fid_detail": {**d, "picture_size": own}, "fid_detail_floor": {**d, "fid": 1.0}}

    rows = dict(metric_rows({"models": {"a": detail(128, 256), "b": detail(128, 128)}}))
    a, b = rows["FID in detail: crops of the classifier's size at the pictures' own size, generated vs held-out"]
    assert a == "2.00 (48 px crops of 128 px (the 256 px pictures shrunk); 5 vs 5)"
    assert b == "2.00 (48 px crops of 128 px; 5 vs 5)"


# -- the detail FID: crops at the pictures' own size -------------------------------------------------
def test_detail_crops_are_the_inset_corners_and_the_centre():
    from stackgan.metrics.evaluate import detail_crops

    x = torch.arange(64 * 64, dtype=torch.float32).view(1, 1, 64, 64).expand(2, 3, 64, 64)
    c = detail_crops(x, 24)  # inset 8, far corner at 64 - 8 - 24 = 32, centre at 20
    assert c.shape == (10, 3, 24, 24)
    assert [int(v) for v in c[::2, 0, 0, 0]] == [8 * 64 + 8, 8 * 64 + 32, 32 * 64 + 8, 32 * 64 + 32, 20 * 64 + 20]
    with pytest.raises(ValueError, match="do not fit"):
        detail_crops(torch.zeros(1, 3, 28, 28), 24)


def test_fid_detail_sees_the_blur_that_the_whole_picture_fid_cannot(menu, tmp_path):
    from stackgan.metrics.evaluate import Protocol, fid_detail, fid_in_domain
    from stackgan.metrics.realdata import load_real_data
    from stackgan.metrics.registry import MetricContext

    _, clf, _ = menu  # reads 24 px pictures
    folder, _ = write_menu_folder(tmp_path / "photos", per=6, size=64)
    data = load_real_data(folder, image_size=24, held_out=0.34, seed=0, progress=False)
    assert (data.held_out, data.split_seed) == (0.34, 0)

    def sharp(name, n, seed):
        t = next(t for t in TOPS if name.startswith(t))
        return render(name[len(t):], t, n, size=64, seed=seed)

    def blurred(name, n, seed):  # the same pictures without their fine detail (the pixel noise)
        return F.interpolate(F.avg_pool2d(sharp(name, n, seed), 4), scale_factor=4, mode="bilinear")

    proto = Protocol(n_per_name=2, kid_subsets=5)
    got = {}
    for label, sampler in (("sharp", sharp), ("blurred", blurred)):
        ctx = MetricContext(sampler=sampler, data=data, clf=clf, proto=proto, label=label)
        got[label] = {**fid_detail(ctx), **fid_in_domain(ctx)}
    s, b = got["sharp"], got["blurred"]
    assert (s["fid_detail"]["size"], s["fid_detail"]["crop"]) == (64, 24)
    assert s["fid_detail"]["n_a"] == s["fid_detail"]["n_b"] == 5 * len(data.test_images)
    assert s["fid_detail_floor"] == b["fid_detail_floor"]  # training against held-out photos, both at 64 px
    assert s["fid_detail"]["fid"] < 3 * s["fid_detail_floor"]["fid"] + 1
    assert b["fid_detail"]["fid"] > 3 * s["fid_detail"]["fid"]  # the blur is plain in the detail (4.6x here) ...
    assert b["fid"]["fid"] < 1.5 * s["fid"]["fid"]  # ... and hardly shows on the shrunken whole picture (1.25x)
    # pictures smaller than twice the classifier's input have no detail to crop; a data set without a
    # folder (built in memory) cannot be loaded again at another size
    small = MetricContext(sampler=lambda name, n, seed: sharp(name, n, seed)[..., :32, :32], data=data, clf=clf,
                          proto=proto)
    assert fid_detail(small) is None
    synthetic = MetricContext(sampler=sharp, data=synthetic_realdata(), clf=clf, proto=proto)
    assert fid_detail(synthetic) is None
    # --detail-size: the sharp pictures at twice the size (each pixel a 2x2 block) are shrunk back to 64 px
    # and scored against the same photos as the 64 px ones: near their detail FID, far from the blurred one's
    def sharp_big(name, n, seed):
        return F.interpolate(sharp(name, n, seed), scale_factor=2, mode="nearest")

    big = fid_detail(MetricContext(sampler=sharp_big, data=data, clf=clf, label="big",
                                   proto=dataclasses.replace(proto, detail_size=64)))
    assert (big["fid_detail"]["size"], big["fid_detail"]["picture_size"]) == (64, 128)
    assert big["fid_detail_floor"] == s["fid_detail_floor"]
    assert big["fid_detail"]["fid"] < 1.6 * s["fid_detail"]["fid"]  # 1.30 against 0.95 (Lanczos is no box filter)
    assert b["fid_detail"]["fid"] > 2.5 * big["fid_detail"]["fid"]  # 4.34
    # pictures already smaller than --detail-size keep their own size (never enlarged)
    same = fid_detail(MetricContext(sampler=sharp, data=data, clf=clf, label="sharp",
                                    proto=dataclasses.replace(proto, detail_size=128)))
    assert (same["fid_detail"]["size"], same["fid_detail"]["picture_size"]) == (64, 64)
    assert same["fid_detail"]["fid"] == s["fid_detail"]["fid"]


def _sharp_and_blurred(menu, tmp_path):
    """The menu's classifier, 64 px photos read at 24 px (a folder to load them again from), and two samplers of
    64 px pictures: renders of the name, and the same pooled 4x and enlarged (blur)."""
    from stackgan.metrics.realdata import load_real_data

    _, clf, _ = menu
    folder, _ = write_menu_folder(tmp_path / "photos", per=6, size=64)
    data = load_real_data(folder, image_size=24, held_out=0.34, seed=0, progress=False)

    def sharp(name, n, seed):
        t = next(t for t in TOPS if name.startswith(t))
        return render(name[len(t):], t, n, size=64, seed=seed)

    def blurred(name, n, seed):
        return F.interpolate(F.avg_pool2d(sharp(name, n, seed), 4), scale_factor=4, mode="bilinear")

    return clf, data, sharp, blurred


def test_the_spectrum_metric_reads_blur_below_zero_at_the_pictures_own_size(menu, tmp_path):
    from stackgan.metrics.evaluate import Protocol, spectrum_metric
    from stackgan.metrics.registry import MetricContext
    from stackgan.metrics.report import metric_rows
    from stackgan.metrics.runeval import compact

    clf, data, sharp, blurred = _sharp_and_blurred(menu, tmp_path)
    proto = Protocol(n_per_name=2, kid_subsets=5)
    got = {label: spectrum_metric(MetricContext(sampler=f, data=data, clf=clf, proto=proto, label=label))
           for label, f in (("sharp", sharp), ("blurred", blurred))}
    s, b = got["sharp"], got["blurred"]
    # 64 px pictures against the photos loaded again at 64 px (the same split), one per held-out photo
    assert s["spectrum"]["size"] == 64 and s["spectrum"]["n_a"] == s["spectrum"]["n_b"] == len(data.test_images)
    assert s["spectrum_floor"] == b["spectrum_floor"] and s["spectrum_floor"]["size"] == 64
    assert len(s["spectrum"]["bands"]) == 16
    assert b["spectrum"]["fine"] < -1.0 and b["spectrum"]["fine"] < s["spectrum"]["fine"] - 1.0
    assert b["spectrum"]["distance"] > 3 * s["spectrum"]["distance"]

    # pictures of the classifier's size are read against the evaluation's own photos
    def small_pictures(name, n, seed):
        return F.avg_pool2d(sharp(name, n, seed)[..., :48, :48], 2)

    small = spectrum_metric(MetricContext(sampler=small_pictures, data=data, clf=clf, proto=proto))
    assert small["spectrum"]["size"] == 24 and small["spectrum_floor"]["n_b"] == len(data.test_images)
    assert len(small["spectrum"]["bands"]) == 12  # rings of one frequency step at 24 px
    # pictures of another size with no folder to load the photos again from: not scored
    assert spectrum_metric(MetricContext(sampler=sharp, data=synthetic_realdata(), clf=clf, proto=proto)) is None
    # the report's rows and /api/model's numbers
    rows = dict(metric_rows({"models": {"b": b}}))
    line = rows["power spectrum against held-out, log10 per ring (fine half: above 0 grain, below 0 blur)"][0]
    assert line.startswith(f"distance {b['spectrum']['distance']:.3f}, fine half {b['spectrum']['fine']:+.3f} = ")
    assert line.endswith(f"x the power (64 px; {len(data.test_images)} vs {len(data.test_images)})")
    assert "power spectrum floor: train vs held-out" in rows
    minimal = {"faithfulness_train": {"overall": 0.5}, "fid": {"fid": 1.0, "kid": 0.0, "n_a": 1, "n_b": 1},
               "fid_floor": {"fid": 1.0}, "diversity": {"ratio": 1.0}, **b}
    results = {"models": {"m": minimal}, "data": {"root": "x", "names": 2}, "classifier": {"heldout_accuracy": {}}}
    c = compact(results, "m")
    assert (c["spectrum_distance"], c["spectrum_fine"]) == (b["spectrum"]["distance"], b["spectrum"]["fine"])
    assert c["spectrum_floor_distance"] == b["spectrum_floor"]["distance"]


def test_the_patches_metric_reads_blur_as_high_precision_and_low_recall(menu, tmp_path):
    from stackgan.metrics.evaluate import Protocol, patches_metric
    from stackgan.metrics.registry import MetricContext
    from stackgan.metrics.report import metric_rows
    from stackgan.metrics.runeval import compact

    clf, data, sharp, blurred = _sharp_and_blurred(menu, tmp_path)
    proto = Protocol(n_per_name=2, kid_subsets=5)
    got = {label: patches_metric(MetricContext(sampler=f, data=data, clf=clf, proto=proto, label=label))
           for label, f in (("sharp", sharp), ("blurred", blurred))}
    s, b = got["sharp"], got["blurred"]
    # 64 px pictures against the photos loaded again at 64 px (the same split): 8 px patches every 4 px
    assert (s["patches"]["size"], s["patches"]["patch"], s["patches"]["k"]) == (64, 8, 3)
    assert s["patches"]["n_b"] == min(10_000, len(data.test_images) * 15 * 15)
    assert s["patches_floor"] == b["patches_floor"] and s["patches_floor"]["size"] == 64
    assert b["patches"]["precision"] > s["patches"]["precision"] and b["patches"]["recall"] < s["patches"]["recall"] - 0.2
    # pictures under two patches wide, or of another size with no folder to load the photos again from: not scored
    assert patches_metric(MetricContext(sampler=lambda name, n, seed: F.avg_pool2d(sharp(name, n, seed), 8),
                                        data=data, clf=clf, proto=proto)) is None
    assert patches_metric(MetricContext(sampler=sharp, data=synthetic_realdata(), clf=clf, proto=proto)) is None
    # the report's rows and /api/model's numbers
    rows = dict(metric_rows({"models": {"b": b}}))
    line = rows["patches against held-out (precision under the floor: strokes the photos never have; above it: blur)"][0]
    assert line == (f"precision {b['patches']['precision']:.3f}, recall {b['patches']['recall']:.3f} (8 px patches of "
                    f"64 px; {b['patches']['n_a']} vs {b['patches']['n_b']})")
    assert "patches floor: train vs held-out" in rows
    minimal = {"faithfulness_train": {"overall": 0.5}, "fid": {"fid": 1.0, "kid": 0.0, "n_a": 1, "n_b": 1},
               "fid_floor": {"fid": 1.0}, "diversity": {"ratio": 1.0}, **b}
    results = {"models": {"m": minimal}, "data": {"root": "x", "names": 2}, "classifier": {"heldout_accuracy": {}}}
    c = compact(results, "m")
    assert (c["patch_precision"], c["patch_recall"]) == (b["patches"]["precision"], b["patches"]["recall"])
    assert (c["patch_floor_precision"], c["patch_floor_recall"]) == (b["patches_floor"]["precision"],
                                                                     b["patches_floor"]["recall"])


def test_a_classifier_can_train_with_its_own_augmenter_but_not_cache_it():
    from stackgan.metrics.classifier import ClassifierConfig, train_classifier

    class Counting(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Counting.calls += 1
            return x

    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    targets, classes = {"a": torch.arange(8) % 2}, {"a": ["x", "y"]}
    cfg = ClassifierConfig(image_size=16, width=4, feat_dim=8, epochs=1, batch_size=4, augment=False)
    train_classifier(images, targets, classes, cfg, cache=False, progress=False, augmenter=Counting())
    assert Counting.calls == 2  # every training batch went through it
    with pytest.raises(ValueError, match="cannot be cached"):
        train_classifier(images, targets, classes, cfg, cache=True, progress=False, augmenter=Counting())


def test_two_sample_tells_blurred_pictures_from_photos_and_not_sharp_ones(menu, tmp_path):
    from stackgan.metrics.evaluate import Protocol, two_sample_metric
    from stackgan.metrics.realdata import load_real_data
    from stackgan.metrics.registry import MetricContext

    _, clf, _ = menu
    folder, _ = write_menu_folder(tmp_path / "photos", per=12, size=64)
    data = load_real_data(folder, image_size=24, held_out=0.34, seed=0, progress=False)

    def sharp(name, n, seed):  # more draws of what the photos are
        t = next(t for t in TOPS if name.startswith(t))
        return render(name[len(t):], t, n, size=64, seed=seed)

    def blurred(name, n, seed):
        return F.interpolate(F.avg_pool2d(sharp(name, n, seed), 4), scale_factor=4, mode="bilinear")

    proto = Protocol(two_sample=300)
    with one_thread():
        got = {label: two_sample_metric(MetricContext(sampler=s, data=data, clf=clf, proto=proto, label=label))
               for label, s in (("sharp", sharp), ("blurred", blurred))}
    s, b = got["sharp"]["two_sample"], got["blurred"]["two_sample"]
    n = len(data.train_images) + len(data.test_images)  # every photo, loaded again at the pictures' 64 px
    assert (s["size"], s["n_test"], s["steps"]) == (64, n // 2 * 2, 300)
    assert 0.25 <= s["accuracy"] <= 0.75
    assert b["accuracy"] > 0.85
    # off unless asked; pictures of another size than a data set built in memory cannot be matched
    assert two_sample_metric(MetricContext(sampler=sharp, data=data, clf=clf, proto=Protocol())) is None
    assert two_sample_metric(MetricContext(sampler=sharp, data=synthetic_realdata(), clf=clf, proto=proto)) is None


def test_a_checkpoint_reports_its_own_step_and_time_not_the_runs_latest(tmp_path, stackgan_runs):
    """Evaluating ``ckpt-000002.pt`` of a run that trained on: the budget is the checkpoint's (its step,
    the logged time up to it), while the folder reports how far the run got."""
    import json
    import shutil

    from stackgan.metrics.runs import read_run

    run = tmp_path / "s1"
    shutil.copytree(stackgan_runs.s1, run)
    every = json.loads((run / "config.json").read_text(encoding="utf-8"))["log_every"]
    recs = [{"step": s, "sec_step": float(s)} for s in (1, 2, 3, 6)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    (run / "timing.json").unlink(missing_ok=True)
    shutil.copy(run / "ckpt-000002.pt", run / "ckpt-000006.pt")  # the run went on to step 6
    early = read_run(run / "ckpt-000002.pt")
    assert (early.steps, early.seconds) == (2, pytest.approx(3.0 * every))
    assert early.training()["images_seen"] == 2 * early.batch_size
    whole = read_run(run)
    assert (whole.steps, whole.seconds) == (6, pytest.approx(12.0 * every))
