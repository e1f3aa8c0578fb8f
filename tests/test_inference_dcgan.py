"""DCGAN inference (stackgan.inference_dcgan) on a tiny trained run, and load_sampler's DCGAN side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stackgan.errors import CheckpointError, ConfigError, UserError
from stackgan.inference import ImageSampler, load_sampler
from stackgan.inference_dcgan import (DCGANPipeline, generate_images, load_dcgan_generator, load_dcgan_pipeline,
                                      sample_dcgan)
from stackgan.models.dcgan import Generator, make_z
import conftest  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny nets: one thread is faster


def make_photos(folder: Path, n: int = 8) -> Path:
    return conftest.make_photos(folder, n, size=(25, 20))  # not square: the DCGAN keeps the aspect ratio


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained DCGAN run folder (2 steps, 16x20 pictures, uniform z)."""
    from stackgan.train.dcgan import DCGANConfig, train_dcgan

    base = tmp_path_factory.mktemp("dcgan-infer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STACKGAN_CACHE", str(base / "cache"))
        cfg = DCGANConfig(data=str(make_photos(base / "photos")), out=str(base / "run"),
                          image_size="16x20", batch_size=4, ngf=8, ndf=8, z_dim=12, epochs=1,
                          device="cpu").validate()
        return train_dcgan(cfg, progress=False)


def expected(run: Path, seeds, truncation: float = 1.0) -> torch.Tensor:
    """The pictures of ``seeds`` computed here from the generator and make_z alone."""
    from safetensors.torch import load_file

    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    G = Generator(z_dim=cfg["z_dim"], channels=cfg["channels"], height=16, width=20, ngf=cfg["ngf"],
                  kernel=cfg["kernel_size"])
    G.load_state_dict(load_file(str(run / "G.safetensors")))
    G.eval()
    with torch.no_grad():
        return G(make_z(list(seeds), cfg["z_dim"], cfg["z_dist"], truncation=truncation)).float()


def test_load_sampler_gives_the_dcgan_pipeline(run):
    s = load_sampler(run)
    assert isinstance(s, DCGANPipeline) and isinstance(s, ImageSampler)
    assert s.kind == "dcgan" and s.image_size == (16, 20) and s.channels == 3
    assert not s.G.training and s.info()["step"] == 2 and s.info()["precision"] == "fp32"
    with pytest.raises(ConfigError, match="--precision"):  # refused as for a StackGAN
        load_sampler(run, precision="half")


def test_the_sampler_draws_exactly_the_pictures_of_today(run):
    from stackgan.train import dcgan as trainer  # the old names, kept for older callers

    s = load_sampler(run)
    seeds = [7, 8, 9, 10, 11]
    got = s.sample(seeds)
    assert got.dtype == torch.float32 and got.device.type == "cpu" and got.shape == (5, 3, 16, 20)
    assert got.min() >= -1 and got.max() <= 1
    assert torch.equal(got, expected(run, seeds))
    G, cfg = trainer.load_dcgan_generator(run)
    assert torch.equal(got, trainer.sample_dcgan(G, cfg, seeds))
    assert torch.equal(got, trainer.generate_images(G, make_z(seeds, cfg.z_dim, cfg.z_dist)))
    half = s.sample(range(7, 12), truncation=0.5)
    assert torch.equal(half, expected(run, seeds, truncation=0.5))
    assert not torch.equal(half, got)
    # a picture is its seed's alone, whatever the batch
    torch.testing.assert_close(s.sample([9])[0], got[2], atol=1e-6, rtol=0)
    assert not torch.equal(got[0], got[1])


def test_every_form_of_the_run_gives_the_same_pictures(run):
    ref = load_dcgan_pipeline(run).sample([3, 4])
    for src in (run / "ckpt-000002.pt", run / "G.safetensors"):
        assert torch.equal(load_sampler(src).sample([3, 4]), ref), src
        assert torch.equal(load_dcgan_pipeline(src).sample([3, 4]), ref), src


def test_variations_are_those_generate_drew(run):
    s = load_sampler(run)
    got = s.variations(4, n=3, sigma=0.5, noise_seed=1)
    G, cfg = load_dcgan_generator(run)
    z0 = make_z([4], cfg.z_dim, cfg.z_dist)
    eps = make_z([1, 2, 3], cfg.z_dim, "normal")
    eps[0] = 0
    assert torch.equal(got, generate_images(G, (z0 + 0.5 * eps).clamp(-1, 1)))
    assert torch.equal(got[0], s.sample([4])[0])  # picture 0 is the original


def test_a_name_is_refused_clearly(run):
    s = load_sampler(run)
    with pytest.raises(UserError, match="unconditional DCGAN: it takes no dish name"):
        s.sample([1], name="カツカレー")
    with pytest.raises(UserError, match="at least one seed"):
        s.sample([])


def test_bad_paths_give_the_errors_of_before(run, tmp_path):
    with pytest.raises(CheckpointError, match="no model at"):  # as load_pipeline says
        load_sampler(tmp_path / "missing")
    for load in (load_dcgan_pipeline, load_dcgan_generator):  # as load_dcgan_generator said
        with pytest.raises(CheckpointError, match="checkpoint not found"):
            load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    for load in (load_sampler, load_dcgan_pipeline):
        with pytest.raises(CheckpointError, match="is not a run folder"):
            load(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"_kind": "StackGANConfig"}')
    with pytest.raises(CheckpointError, match="not a DCGAN run"):
        load_dcgan_pipeline(tmp_path / "other")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((run / "config.json").read_text(encoding="utf-8"), encoding="utf-8")
    (broken / "G.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_sampler(broken)


def test_sample_dcgan_is_one_function_under_both_names():
    import stackgan.inference_dcgan as inf
    import stackgan.train.dcgan as trainer

    assert trainer.load_dcgan_generator is inf.load_dcgan_generator
    assert trainer.generate_images is inf.generate_images and trainer.sample_dcgan is inf.sample_dcgan
    assert sample_dcgan is inf.sample_dcgan


def test_nan_weights_are_refused_as_stackgans_are(run, tmp_path):
    """A G.safetensors whose bytes were damaged into NaN would draw black pictures: refused, naming the file."""
    import shutil

    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    for ck in bad.glob("ckpt-*.pt"):
        ck.unlink()  # the weights file is what a folder loads; without checkpoints nothing else could be used
    weights = load_file(bad / "G.safetensors")
    key = next(k for k, v in weights.items() if v.is_floating_point())
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, bad / "G.safetensors")
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_sampler(bad)
