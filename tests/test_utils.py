import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from stackgan.errors import CheckpointError
from stackgan.utils import io, viz
from stackgan.utils.runlog import JsonlLog, read_jsonl


def test_atomic_save_load_and_latest(tmp_path):
    for step in (5, 120, 40):
        io.atomic_torch_save({"step": step, "w": torch.ones(2) * step}, tmp_path / f"ckpt-{step:06d}.pt")
    latest = io.latest_checkpoint(tmp_path)
    assert latest.name == "ckpt-000120.pt"
    assert io.load_checkpoint(latest)["step"] == 120
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind
    io.prune_checkpoints(tmp_path, keep=1)
    assert [p.name for p in tmp_path.glob("ckpt-*.pt")] == ["ckpt-000120.pt"]
    assert io.latest_checkpoint(tmp_path / "nothing") is None


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "ckpt-000001.pt"
    io.atomic_torch_save({"ok": True}, target)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        io.atomic_torch_save({"bad": Boom()}, target)
    assert io.load_checkpoint(target) == {"ok": True}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    p = tmp_path / "ckpt-000001.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        io.load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not found"):
        io.load_checkpoint(tmp_path / "none.pt")


class _Marker:
    """Unpickling this creates a file: what a crafted checkpoint could do (or worse)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    evil = run / "ckpt-000001.pt"
    torch.save({"kind": "stage1", "config": {}, "G_ema": {}, "x": _Marker(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"needs full unpickling to load \(it refers to io.open\).*Refused.*--trust-checkpoint"):
        io.load_checkpoint(evil)
    assert not marker.exists()
    from stackgan.cli import main as cli_main

    for argv in (["generate", "--checkpoint", str(evil), "カツ丼", "-n", "1", "--out", str(tmp_path / "g.png")],
                 ["generate", "--checkpoint", str(run), "カツ丼", "-n", "1", "--out", str(tmp_path / "g.png")],
                 ["evaluate", str(run), "--out", str(tmp_path / "ev")],
                 ["baseline-dcgan", "--checkpoint-dir", str(run), "--resume", "--data", str(tmp_path / "nodata")]):
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "refused" in err.lower() and "--trust-checkpoint" in err and "Traceback" not in err, (argv, err)
        assert not marker.exists(), argv
    assert not (tmp_path / "g.png").exists()


def test_an_old_format_checkpoint_loads_only_when_trusted(tmp_path, capsys):
    io.seed_everything(5)
    old_rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    old = tmp_path / "ckpt-000002.pt"
    torch.save({"step": 2, "rng": old_rng}, old)  # numpy's state tuple holds an ndarray: the old format
    with pytest.raises(CheckpointError, match=r"\(it refers to numpy\.[\w.]+\).*Refused.*--trust-checkpoint"):
        io.load_checkpoint(old)
    ck = io.load_checkpoint(old, trust=True)
    assert "warning: --trust-checkpoint: unpickling" in capsys.readouterr().err
    expected = np.random.rand()
    io.restore_rng(ck["rng"])  # the old RNG format still restores
    assert np.random.rand() == expected
    io.set_trust_checkpoints(True)
    try:
        assert io.load_checkpoint(old)["step"] == 2
    finally:
        io.set_trust_checkpoints(False)
    with pytest.raises(CheckpointError, match="Refused"):
        io.load_checkpoint(old)
    # trusting does not turn a damaged file into anything but a clear error
    damaged = tmp_path / "ckpt-000003.pt"
    damaged.write_bytes(old.read_bytes()[: len(old.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        io.load_checkpoint(damaged, trust=True)


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    io.seed_everything(7)
    np.random.randn()  # numpy now holds a cached gaussian, part of its state
    io.atomic_torch_save({"rng": io.capture_rng()}, tmp_path / "ckpt-000001.pt")
    a = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    io.seed_everything(99)
    io.restore_rng(torch.load(tmp_path / "ckpt-000001.pt", weights_only=True)["rng"])
    b = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    assert a[:3] == b[:3] and torch.equal(a[3], b[3])


def test_rng_capture_restore_reproduces_draws():
    io.seed_everything(3)
    state = io.capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(3))
    io.restore_rng(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_safetensors_round_trip(tmp_path):
    from safetensors.torch import load_file

    p = io.atomic_save_safetensors({"w": torch.arange(6.0).view(2, 3)}, tmp_path / "G.safetensors", {"k": "v"})
    assert torch.equal(load_file(p)["w"], torch.arange(6.0).view(2, 3))


def test_grid_curves_and_gif(tmp_path):
    imgs = torch.linspace(-1, 1, 4 * 3 * 8 * 8).view(4, 3, 8, 8)
    g1 = viz.save_grid(imgs, tmp_path / "s" / "1.png", nrow=2)
    g2 = viz.save_grid(-imgs, tmp_path / "s" / "2.png", nrow=2)
    with Image.open(g1) as im:
        assert im.size == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)
    gray = viz.save_grid(imgs[:, :1], tmp_path / "gray.png", nrow=4)
    with Image.open(gray) as im:
        assert im.mode == "RGB"
    gif = viz.make_gif([g1, g2], tmp_path / "p.gif")
    with Image.open(gif) as im:
        assert im.n_frames == 2
    assert viz.make_gif([], tmp_path / "none.gif") is None

    log = JsonlLog(tmp_path / "log.jsonl")
    for step in range(1, 31):
        log.write(step=step, d_loss=torch.tensor(1.0 / step), g_loss=float(step))
    recs = read_jsonl(log.path)
    assert len(recs) == 30 and recs[0]["d_loss"] == 1.0
    png = viz.plot_losses(recs, tmp_path / "losses.png")
    with Image.open(png) as im:
        assert im.size[0] > 100
    log.truncate_after(10)
    assert [r["step"] for r in read_jsonl(log.path)] == list(range(1, 11))


def test_to_uint8_range():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0]).view(1, 1, 1, 5)
    assert viz.to_uint8(x).flatten().tolist() == [0, 0, 128, 255, 255]


def test_cli_help_lists_commands(capsys):
    from stackgan.cli import main

    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_pruning_removes_what_killed_writes_left(tmp_path):
    io.atomic_torch_save({"step": 1}, tmp_path / "ckpt-000001.pt")
    stale = [tmp_path / ".ckpt-000002.pt.k3j_x9.tmp", tmp_path / ".G_ema.safetensors.a8b2.tmp",
             tmp_path / ".G.safetensors.zz.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    kept = [tmp_path / "notes.tmp", tmp_path / ".config.json.tmp", tmp_path / "ckpt-000001.pt"]
    kept[0].write_text("mine")
    kept[1].write_text("{}")
    io.prune_checkpoints(tmp_path, keep=3)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        written = [io.atomic_write_text(tmp_path / "config.json", "{}"),
                   io.atomic_torch_save({"step": 1}, tmp_path / "ckpt-000001.pt"),
                   io.atomic_save_safetensors({"w": torch.zeros(2)}, tmp_path / "G_ema.safetensors")]
    finally:
        os.umask(old)
    for p in written:
        assert p.stat().st_mode & 0o777 == mode, (p.name, oct(p.stat().st_mode))
