"""The inference API on tiny trained runs (stage I 16 px, stage II 32 px), and `stackgan generate`."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from stackgan.errors import CheckpointError, ConfigError, UserError
from stackgan.inference import EXPLORE_DIRECTIONS, Pipeline, load_pipeline, load_sampler

from conftest import TINY_EMB as EMB, TINY_NAMES as NAMES  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: one thread is faster


@pytest.fixture(scope="module")
def runs(stackgan_runs):
    """A stage-I run (2 steps) and a stage-II run on top of it (1 step), from conftest."""
    return stackgan_runs.s1, stackgan_runs.s2


class FakeEncoder:
    dim = EMB
    spec = "fake"

    def __init__(self):
        self.calls = []

    def encode(self, names):
        self.calls.append(list(names))
        return torch.nn.functional.normalize(torch.ones(len(names), EMB), dim=1)


def test_generate_is_deterministic_per_seed(runs):
    pipe = load_pipeline(runs[0])
    a = pipe.generate(NAMES[0], 4, seed=10)
    b = pipe.generate(NAMES[0], 4, seed=10)
    assert a.stage1.shape == (4, 3, 16, 16) and a.stage2 is None
    assert a.seeds == [10, 11, 12, 13] and a.z.shape == (4, 16)
    assert torch.equal(a.stage1, b.stage1)
    # image i is the image of seed + i alone, whatever n
    one = pipe.generate(NAMES[0], 1, seed=12)
    assert torch.allclose(one.stage1[0], a.stage1[2], atol=1e-5)
    assert torch.equal(one.z[0], a.z[2])
    assert not torch.allclose(a.stage1[0], a.stage1[1])  # different seeds, different pictures
    assert a.stage1.min() >= -1 and a.stage1.max() <= 1
    c = pipe.generate(NAMES[1], 1, seed=12)  # another name, same seed: another picture
    assert not torch.allclose(c.stage1, one.stage1)
    r = pipe.generate(NAMES[0], 2)  # seed None: a random one, reported
    assert len(r.seeds) == 2 and r.seeds[1] == r.seeds[0] + 1


def test_bf16_inference_draws_the_fp32_pictures_within_rounding(runs):
    import math

    exact = load_pipeline(runs[1])
    fast = load_pipeline(runs[1], precision="bf16")
    assert exact.info()["precision"] == "fp32" and fast.info()["precision"] == "bf16"
    a, b = exact.generate(NAMES[0], 4, seed=3), fast.generate(NAMES[0], 4, seed=3)
    assert b.stage2.dtype == torch.float32 and b.stage2.shape == a.stage2.shape
    for x, y in ((a.stage1, b.stage1), (a.stage2, b.stage2)):
        mse = float((x - y).pow(2).mean())
        assert 0 < mse and 10 * math.log10(4 / mse) > 30  # PSNR on the [-1, 1] range: the same pictures
    with pytest.raises(ConfigError, match="--precision"):
        load_pipeline(runs[0], precision="half")


def test_truncation_zero_gives_the_mean_picture(runs):
    pipe = load_pipeline(runs[0])
    t = pipe.generate(NAMES[2], 3, seed=5, truncation=0.0)
    assert torch.count_nonzero(t.z) == 0
    assert torch.allclose(t.stage1[0], t.stage1[1], atol=1e-6) and torch.allclose(t.stage1[0], t.stage1[2], atol=1e-6)
    half = pipe.generate(NAMES[2], 1, seed=5, truncation=0.5)
    full = pipe.generate(NAMES[2], 1, seed=5)
    assert torch.allclose(half.z, full.z * 0.5)


def test_variations_and_explore(runs):
    pipe = load_pipeline(runs[0])
    base = pipe.generate(NAMES[0], 1, seed=3)
    v = pipe.variations(NAMES[0], 3, n=4, sigma=0.5)
    assert v.seeds == [3] * 4
    assert torch.allclose(v.stage1[0], base.stage1[0], atol=1e-5)
    dz = (v.z[1:] - v.z[0]).norm(dim=1)
    assert torch.all(dz > 0) and torch.all(dz < 0.5 * 16)  # near the chosen z (|N(0, I_16)| ~ 4)
    assert torch.equal(v.z, pipe.variations(NAMES[0], 3, n=4, sigma=0.5).z)
    same = pipe.variations(NAMES[0], 3, n=3, sigma=0.0)
    assert torch.allclose(same.stage1[1], same.stage1[0], atol=1e-6)

    d = pipe._directions
    assert d.shape == (EXPLORE_DIRECTIONS, 16)
    assert torch.allclose(d @ d.T, torch.eye(EXPLORE_DIRECTIONS), atol=1e-5)  # orthonormal
    e0 = pipe.explore(NAMES[0], 3, [0.0] * EXPLORE_DIRECTIONS)
    assert torch.allclose(e0.stage1, base.stage1, atol=1e-5)
    e1 = pipe.explore(NAMES[0], 3, [2.0, 0.0, 0.0, -1.0])
    assert torch.allclose(e1.z[0] - base.z[0], 2.0 * d[0] - d[3], atol=1e-5)
    assert not torch.allclose(e1.stage1, base.stage1)
    with pytest.raises(UserError, match="at most"):
        pipe.explore(NAMES[0], 3, [0.0] * (EXPLORE_DIRECTIONS + 1))


def test_interpolate_walks_between_seeds_and_between_names_in_a_loop(runs):
    from stackgan.inference import slerp

    pipe = load_pipeline(runs[1])
    walk = pipe.interpolate([NAMES[0]], [3, 7], frames=4)
    assert walk.images.shape == (8, 3, 32, 32) and walk.seeds == [3] * 4 + [7] * 4
    # each leg starts at its key picture: frame 0 is seed 3's, frame 4 is seed 7's
    torch.testing.assert_close(walk.images[0], pipe.generate(NAMES[0], 1, seed=3).images[0])
    torch.testing.assert_close(walk.images[4], pipe.generate(NAMES[0], 1, seed=7).images[0])
    assert not torch.equal(walk.images[1], walk.images[0])
    names = pipe.interpolate([NAMES[0], NAMES[1]], [5], frames=3)
    assert names.images.shape[0] == 6
    torch.testing.assert_close(names.images[3], pipe.generate(NAMES[1], 1, seed=5).images[0])
    a, b = torch.randn(2, 6), torch.randn(2, 6)
    path = slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(path[:, 0], a)
    torch.testing.assert_close(path[:, 2], b)
    with pytest.raises(UserError, match="at least 2"):
        pipe.interpolate([NAMES[0]], [3], frames=4)
    with pytest.raises(UserError, match="frames per leg"):
        pipe.interpolate([NAMES[0]], [3, 4], frames=1)


def test_new_names_are_encoded_once_and_neighbours(runs):
    pipe = load_pipeline(runs[0])
    fake = FakeEncoder()
    pipe._encoder = fake
    # training names use the stored vectors, no encoder call
    nb = pipe.neighbours(NAMES[2], k=3)
    assert nb[0][0] == NAMES[2] and nb[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(nb) == 3 and nb[0][1] >= nb[1][1] >= nb[2][1]
    assert fake.calls == []
    pipe.generate("焦がし醤油ラーメン", 2, seed=1)
    pipe.generate("焦がし醤油ラーメン", 1, seed=1)
    pipe.neighbours("焦がし醤油ラーメン")
    assert fake.calls == [["焦がし醤油ラーメン"]]
    # NFKC: the half-width spelling of a training name is that name
    assert torch.equal(pipe.embed("ﾋﾟﾘ辛ｻｰﾓﾝ丼"), pipe.embed("ピリ辛サーモン丼"))
    assert len(fake.calls) == 1
    with pytest.raises(UserError):
        pipe.generate("   ", 1, seed=1)


def test_the_cache_of_new_names_is_bounded_and_keeps_the_recent_ones(runs, monkeypatch):
    import stackgan.inference as inf

    monkeypatch.setattr(inf, "NAME_CACHE", 8)
    pipe = load_pipeline(runs[0])
    fake = FakeEncoder()
    pipe._encoder = fake
    for i in range(20):
        pipe.embed(f"新しい料理{i}")
    pipe.embed("新しい料理12")  # still cached: no encoder call, and now the most recent
    assert len(fake.calls) == 20 and len(pipe._cache) == 8
    pipe.embed("新しい料理20")  # evicts the least recently used (13), not 12
    assert "新しい料理12" in pipe._cache and "新しい料理13" not in pipe._cache and len(pipe._cache) == 8
    pipe.embed("新しい料理0")  # evicted long ago: encoded again
    assert fake.calls[-1] == ["新しい料理0"] and len(fake.calls) == 22


def test_encoder_of_wrong_size_is_refused(runs, monkeypatch):
    import stackgan.text

    class Wrong(FakeEncoder):
        dim = EMB + 1

    monkeypatch.setattr(stackgan.text, "load_text_encoder", lambda spec: Wrong())
    pipe = load_pipeline(runs[0])
    with pytest.raises(CheckpointError, match="13-d"):
        pipe.generate("新しい料理", 1, seed=0)


def test_an_encoder_of_another_exact_id_is_refused(runs, monkeypatch, tmp_path):
    """The run records the exact encoder id (conversion / folder hash) its names were encoded with; a
    same-sized encoder of another id would read new names differently: refused when first needed."""
    import shutil

    import stackgan.text

    class Other(FakeEncoder):
        id = "e5-small-q4-000000000000"

    run = tmp_path / "run"
    shutil.copytree(runs[0], run)
    info = json.loads((run / "names.json").read_text(encoding="utf-8"))
    (run / "names.json").write_text(json.dumps({**info, "encoder_id": "e5-small-q4-69f5e9ab1944"}), encoding="utf-8")
    monkeypatch.setattr(stackgan.text, "load_text_encoder", lambda spec: Other())
    pipe = load_pipeline(run)
    pipe.generate(NAMES[0], 1, seed=0)  # training names use their stored vectors: no encoder needed
    with pytest.raises(CheckpointError, match="encoded by text encoder e5-small-q4-69f5e9ab1944.*000000000000"):
        pipe.generate("新しい料理", 1, seed=0)
    Other.id = "e5-small-q4-69f5e9ab1944"
    pipe._encoder = None
    assert pipe.generate("新しい料理", 1, seed=0).stage1.shape[0] == 1  # the same encoder: fine


def test_bad_arguments(runs):
    pipe = load_pipeline(runs[0])
    for kw in ({"n": 0}, {"n": 2.5}, {"seed": -1}, {"truncation": 3.0}):
        args = {"n": 1, "seed": 1, **kw}
        with pytest.raises(UserError):
            pipe.generate(NAMES[0], **args)
    with pytest.raises(UserError):
        pipe.variations(NAMES[0], 1, 2, sigma=-1)
    assert pipe.parts_sentence == "own"
    with pytest.raises(UserError, match="trained with --parts"):
        pipe.parts_sentence = "parts"
    with pytest.raises(UserError, match="'own' or 'parts'"):
        pipe.parts_sentence = "mean"


def test_stage2_pipeline_and_sources(runs):
    s1, s2 = runs
    pipe = load_pipeline(s2)
    r = pipe.generate(NAMES[3], 2, seed=7)
    assert r.stage1.shape == (2, 3, 16, 16) and r.stage2.shape == (2, 3, 32, 32)
    assert r.images is r.stage2
    # the stage-I pictures of a stage-II run are the stage-I run's own pictures
    alone = load_pipeline(s1).generate(NAMES[3], 2, seed=7)
    assert torch.allclose(alone.stage1, r.stage1, atol=1e-6)
    info = pipe.info()
    assert info["stages"] == 2 and info["stage1_size"] == 16 and info["stage2_size"] == 32
    assert info["text_encoder"] == "e5" and info["emb_dim"] == EMB and info["step"] == 1
    assert info["parts"] is None and info["part_dim"] == 0
    assert info["training"]["n_names"] == 4 and info["explore_directions"] == EXPLORE_DIRECTIONS
    assert info["metrics"] is None
    # a checkpoint file and the weights file load the same generator
    ck = next(s2.glob("ckpt-*.pt"))
    for src in (ck, s2 / "G_ema.safetensors"):
        other = load_pipeline(src).generate(NAMES[3], 2, seed=7)
        assert torch.allclose(other.stage2, r.stage2, atol=1e-6), src
    # metrics.json in the run folder shows up in info()
    (s1 / "metrics.json").write_text(json.dumps({"fid": 12.5}), encoding="utf-8")
    assert load_pipeline(s1).info()["metrics"] == {"fid": 12.5}
    (s1 / "metrics.json").unlink()


def test_damaged_weights_and_a_foreign_stage1_are_refused(runs, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    s1, s2 = runs
    bad = shutil.copytree(s1, tmp_path / "nan")
    for p in bad.glob("ckpt-*.pt"):
        p.unlink()  # the pipeline loads the safetensors weights
    state = load_file(str(bad / "G_ema.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key][0] = float("nan")
    save_file(state, str(bad / "G_ema.safetensors"))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_pipeline(bad)
    # a stage-II run whose stage1/ was swapped for a stage I of another size
    mixed = shutil.copytree(s2, tmp_path / "mixed")
    cfg1 = json.loads((mixed / "stage1" / "config.json").read_text(encoding="utf-8"))
    cfg1["image_size"] = 32
    (mixed / "stage1" / "config.json").write_text(json.dumps(cfg1), encoding="utf-8")
    with pytest.raises(CheckpointError, match="not the stage I this stage-II run was trained on: picture size 32"):
        load_pipeline(mixed)


def test_a_copied_run_folder_alone_is_enough(runs, tmp_path):
    s2 = runs[1]
    dst = tmp_path / "model"
    dst.mkdir()
    for f in ("config.json", "G_ema.safetensors", "names.json", "embeddings.safetensors"):
        shutil.copy2(s2 / f, dst / f)
    shutil.copytree(s2 / "stage1", dst / "stage1")
    a = load_pipeline(dst).generate(NAMES[0], 1, seed=2)
    b = load_pipeline(s2).generate(NAMES[0], 1, seed=2)
    assert torch.equal(a.stage2, b.stage2)


def test_load_errors(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    for load in (load_pipeline, load_sampler):  # the same errors through both entry points
        with pytest.raises(CheckpointError, match="no model"):
            load(tmp_path / "missing")
        with pytest.raises(CheckpointError, match="neither"):
            load(tmp_path / "empty")
    dc = tmp_path / "dc"
    dc.mkdir()
    (dc / "config.json").write_text(json.dumps({"_kind": "DCGANConfig"}), encoding="utf-8")
    (dc / "G_ema.safetensors").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a StackGAN run"):
        load_pipeline(dc)
    bad = tmp_path / "bad"
    shutil.copytree(runs[0], bad)
    (bad / "G_ema.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_pipeline(bad)
    s2 = tmp_path / "s2_without_stage1"
    shutil.copytree(runs[1], s2)
    shutil.rmtree(s2 / "stage1")
    with pytest.raises(CheckpointError, match="stage1"):
        load_pipeline(s2)


def test_pipeline_is_the_public_type(runs):
    assert isinstance(load_pipeline(runs[0]), Pipeline)


def test_sample_draws_the_pictures_generate_draws(runs):
    from stackgan.inference import ImageSampler

    s1, s2 = load_pipeline(runs[0]), load_pipeline(runs[1])
    assert isinstance(s1, ImageSampler) and isinstance(s2, ImageSampler)
    assert (s1.kind, s1.image_size) == ("stackgan-stage1", (16, 16))
    assert (s2.kind, s2.image_size) == ("stackgan-stage2", (32, 32))
    ref = s2.generate(NAMES[1], 3, seed=4, truncation=0.7)
    got = s2.sample([4, 5, 6], NAMES[1], truncation=0.7)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert torch.equal(got, ref.stage2)
    assert torch.equal(s2.sample(range(4, 7), NAMES[1], 0.7, stage=1), ref.stage1)
    assert torch.equal(s2.sample([4, 5, 6], NAMES[1], 0.7, stage=2), ref.stage2)
    assert torch.equal(s1.sample([9, 10], NAMES[0]), s1.generate(NAMES[0], 2, seed=9).stage1)
    # any seeds, not only consecutive ones: each picture is its seed's
    torch.testing.assert_close(s1.sample([12, 3], NAMES[0])[1], s1.generate(NAMES[0], 1, seed=3).stage1[0],
                               atol=1e-6, rtol=0)
    with pytest.raises(UserError, match="give one"):
        s1.sample([1])  # a StackGAN needs a name
    with pytest.raises(UserError, match="no stage-II"):
        s1.sample([1], NAMES[0], stage=2)
    for bad in ({"seeds": []}, {"seeds": [-1]}, {"seeds": [1], "truncation": 3.0}):
        with pytest.raises(UserError):
            s1.sample(**{"name": NAMES[0], **bad})


def test_load_sampler_gives_the_stackgan_pipeline_with_its_errors(runs, tmp_path):
    pipe = load_sampler(runs[1], precision="bf16")
    assert isinstance(pipe, Pipeline) and pipe.kind == "stackgan-stage2" and pipe.precision == "bf16"
    ref = load_pipeline(runs[1]).generate(NAMES[2], 2, seed=1).stage2
    assert torch.equal(load_sampler(runs[1]).sample([1, 2], NAMES[2]), ref)
    s2 = tmp_path / "s2_without_stage1"
    shutil.copytree(runs[1], s2)
    shutil.rmtree(s2 / "stage1")
    with pytest.raises(CheckpointError, match="stage1"):
        load_sampler(s2)


def test_generate_interpolate_writes_a_looping_gif(runs, tmp_path, capsys):
    from PIL import Image

    from stackgan.cli import main

    out = tmp_path / "walk.gif"
    assert main(["generate", "--checkpoint", str(runs[1]), NAMES[0], "-n", "3", "--interpolate", "--frames", "4",
                 "--out", str(out), "--device", "cpu"]) == 0
    with Image.open(out) as im:
        assert im.n_frames == 12 and im.size == (32, 32) and im.info.get("loop") == 0
    two = tmp_path / "names.gif"
    assert main(["generate", "--checkpoint", str(runs[1]), NAMES[0], NAMES[1], "--interpolate", "--frames", "5",
                 "--out", str(two), "--device", "cpu"]) == 0
    with Image.open(two) as im:
        assert im.n_frames == 10
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(runs[1]), NAMES[0], "--interpolate", "--out", str(tmp_path / "x.png")]) == 2
    assert "--out must be a .gif or .mp4 file with --interpolate" in capsys.readouterr().err


def test_generate_interpolate_writes_an_mp4_with_pyav_and_says_so_without(runs, tmp_path, capsys, monkeypatch):
    from stackgan.cli import main
    from stackgan.utils import viz

    args = ["generate", "--checkpoint", str(runs[1]), NAMES[0], "-n", "2", "--interpolate", "--frames", "3",
            "--frame-ms", "100", "--device", "cpu", "--out"]
    if viz.video_writer_available():
        import av

        out = tmp_path / "walk.mp4"
        assert main(args + [str(out)]) == 0
        with av.open(str(out)) as box:
            stream = box.streams.video[0]
            frames = list(box.decode(stream))
            assert len(frames) == 6 and (frames[0].width, frames[0].height) == (32, 32)
            assert float(stream.average_rate) == pytest.approx(10.0)
        assert not list(tmp_path.glob(".*.tmp*"))
    monkeypatch.setattr(viz, "video_writer_available", lambda: False)  # a machine without PyAV
    capsys.readouterr()
    assert main(args + [str(tmp_path / "none.mp4")]) == 2
    assert "needs PyAV (pip install av)" in capsys.readouterr().err and not (tmp_path / "none.mp4").exists()
    with pytest.raises(UserError, match="pip install av"):
        viz.save_mp4([], tmp_path / "x.mp4")


def test_stackgan_generate_command_end_to_end(runs, tmp_path, capsys):
    """`stackgan generate` (generate_cmd) delegates StackGAN runs to load_pipeline."""
    from PIL import Image

    from stackgan.cli import main

    out = tmp_path / "g.png"
    rc = main(["generate", "--checkpoint", str(runs[1]), NAMES[0], NAMES[1], "-n", "3", "--seed", "4",
               "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    with Image.open(out) as im:  # 2 names x 3 stage-II pictures of 32 px
        assert im.size == (3 * 34 + 2, 2 * 34 + 2)
    files = sorted((tmp_path / "g").glob("*.png"))
    assert len(files) == 6
    rows = (tmp_path / "g" / "samples.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[1].split("\t")[1:] == [NAMES[0], "4"] and rows[4].split("\t")[1:] == [NAMES[1], "4"]
    # the written picture is the pipeline's picture of that seed
    ref = load_pipeline(runs[1]).generate(NAMES[0], 3, seed=4).stage2[2]
    got = torch.from_numpy(__import__("numpy").array(Image.open(files[2]).convert("RGB"))).permute(2, 0, 1)
    assert (got.float() / 127.5 - 1 - ref).abs().max() < 2 / 255 + 1e-6
    rc = main(["generate", "--checkpoint", str(runs[0]), NAMES[0], "--variations-of", "9", "--sigma", "0.3",
               "-n", "2", "--out", str(tmp_path / "v.png"), "--device", "cpu"])
    assert rc == 0
    rc = main(["generate", "--checkpoint", str(runs[0]), "-n", "2", "--out", str(tmp_path / "x.png")])
    assert rc == 2 and "NAME" in capsys.readouterr().err  # a StackGAN needs names
