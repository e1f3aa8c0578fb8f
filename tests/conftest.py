"""Fixtures shared by several test modules (real code paths on tiny configs)."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Iterator, NamedTuple

import pytest
import torch

TINY_NAMES = ["カツカレー", "きつねうどん", "ピリ辛サーモン丼", "味噌ラーメン"]
TINY_EMB = 12


class TinyRuns(NamedTuple):
    s1: Path  # a stage-I run: 16 px, 2 steps
    s2: Path  # a stage-II run on top of it: 32 px, 1 step
    names: list[str]
    emb_dim: int


def tiny_data(size: int):
    """16 random photos of the 4 TINY_NAMES at ``size`` px, with fixed random unit sentence vectors."""
    from stackgan.train import stackgan as tr

    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(len(TINY_NAMES), TINY_EMB, generator=g), dim=1)
    images = torch.randint(0, 256, (16, 3, size, size), dtype=torch.uint8, generator=g)
    return tr.TrainData(images, torch.arange(16) % 4, list(TINY_NAMES), emb, source="synthetic")


@pytest.fixture(scope="session")
def stackgan_runs(tmp_path_factory) -> TinyRuns:
    """A tiny stage-I run and a stage-II run on top of it, trained once per test session. Tests that
    change files copy the folders first."""
    from stackgan.train import stackgan as tr
    from stackgan.stackgan_config import StackGANConfig

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("tiny-runs")
        common = dict(image_size=16, stage2_size=128, ngf=8, ndf=8, c_dim=8, z_dim=16, batch_size=8,
                      sample_every=100, ckpt_every=100, grid_rows=2, grid_cols=2, progress=False, device="cpu")
        tr.StackGANTrainer(StackGANConfig(max_steps=2, **common).validate(), tiny_data(16), root / "s1").fit()
        cfg2 = StackGANConfig(stage=2, stage1=str(root / "s1"), max_steps=1, **common).validate()
        tr.StackGANTrainer(cfg2, tiny_data(32), root / "s2", stage1=tr.load_stage1(root / "s1")).fit()
    finally:
        torch.set_num_threads(threads)
    return TinyRuns(root / "s1", root / "s2", list(TINY_NAMES), TINY_EMB)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for a while: tiny nets run faster so, and leave a core to other work."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="module")
def one_torch_thread():
    """:func:`one_thread` for a whole module: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    with one_thread():
        yield


class HashEncoder:
    """A stand-in text encoder: a fixed random vector per name, from its hash (no model to load)."""

    spec = "e5"

    def __init__(self, dim: int = TINY_EMB):
        self.dim = dim
        self.id = f"hash-{dim}"  # the exact id a run records

    def encode(self, names) -> torch.Tensor:
        return torch.stack([torch.randn(self.dim, generator=torch.Generator().manual_seed(
            int(hashlib.sha1(n.encode()).hexdigest()[:8], 16))) for n in names])


def use_hash_encoder(monkeypatch: pytest.MonkeyPatch, cache: str | Path, dim: int = TINY_EMB) -> HashEncoder:
    """Every text-encoder entry point of ``stackgan.text`` answers with a :class:`HashEncoder`; the
    project's caches go to ``cache``."""
    import stackgan.text

    enc = HashEncoder(dim)
    monkeypatch.setattr(stackgan.text, "embed_names", lambda names, spec="e5", **kw: enc.encode(names))
    monkeypatch.setattr(stackgan.text, "load_text_encoder", lambda spec="e5", device="cpu": enc)
    monkeypatch.setenv("STACKGAN_CACHE", str(cache))
    return enc


def rect_scenes(n: int, size: int, seed: int, rects: int) -> torch.Tensor:
    """``n`` pictures of ``rects`` random rectangles of flat colour each: clean straight edges at every scale
    (power falling with frequency), the renders' kind of picture."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 3, size, size)
    for i in range(n):
        for _ in range(rects):
            a, b = sorted(torch.randint(0, size, (2,), generator=g).tolist())
            c, d = sorted(torch.randint(0, size, (2,), generator=g).tolist())
            x[i, :, a:b + 1, c:d + 1] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return x


def make_photos(folder: Path, n: int = 8, size: tuple[int, int] = (20, 20)) -> Path:
    """``n`` small flat pictures (a colour and a square, one per index) of one dish, with names.tsv."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file\tname"]
    for i in range(n):
        im = Image.new("RGB", size, (30 * i % 256, 200 - 20 * i, 90))
        im.paste((250, 250 - 25 * i, 40), (5, 5, 15, 15))
        im.save(folder / f"p{i}.png")
        rows.append(f"p{i}.png\tカレー")
    (folder / "names.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def assert_a_nan_step_is_undone(trainer, log: Path, capsys) -> dict:
    """Both trainers' NaN policy on a trainer that has taken a good step: NaN weights in D make the next
    step non-finite; the step is skipped, D's last good state comes back, the learning rates halve and
    log.jsonl says so. Returns the next (good) step's numbers."""
    import math

    from stackgan.utils.runlog import read_jsonl

    good = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    step = trainer.step
    with torch.no_grad():
        next(trainer.D.parameters()).fill_(float("nan"))
    assert trainer.train_step() is None
    assert trainer.step == step and trainer.lr_scale == 0.5 and trainer.nan_events == 1
    for k, v in trainer.D.state_dict().items():
        assert torch.equal(v, good[k]), k
    assert "non-finite D loss" in capsys.readouterr().out
    rec = read_jsonl(log)[-1]
    assert rec["event"] == "nan" and rec["lr_scale"] == 0.5
    s = trainer.train_step()
    assert s is not None and all(math.isfinite(v) for v in s.values() if isinstance(v, float))
    assert s["lr_g"] == pytest.approx(1e-4)
    return s
