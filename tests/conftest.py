"""Fixtures shared by several test modules (real code paths on tiny configs)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny nets run faster on one thread, and leave a core to other work: for a module, with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
