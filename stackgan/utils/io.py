"""Atomic files, checkpoints and RNG state.

Everything that a killed process could leave half-written (checkpoints, configs, caches) is
written to a temporary file in the same folder and renamed over the target.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.errors import CheckpointError


def _atomic_write(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


def atomic_save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                            metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    return atomic_write_bytes(path, data)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint written by :func:`atomic_torch_save`, with a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        # Our checkpoints hold numpy RNG state and plain python objects besides tensors.
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt or truncated file
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None


_STEP_RE = re.compile(r"(\d+)")


def latest_checkpoint(folder: str | os.PathLike, pattern: str = "ckpt-*.pt") -> Path | None:
    """The checkpoint with the highest step number in ``folder`` (``ckpt-000123.pt``), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in folder.glob(pattern):
        m = _STEP_RE.findall(p.stem)
        if not m:
            continue
        step = int(m[-1])
        if best is None or step > best[0]:
            best = (step, p)
    return best[1] if best else None


def prune_checkpoints(folder: str | os.PathLike, keep: int, pattern: str = "ckpt-*.pt") -> None:
    """Keep the ``keep`` newest numbered checkpoints in ``folder``."""
    items = []
    for p in Path(folder).glob(pattern):
        m = _STEP_RE.findall(p.stem)
        if m:
            items.append((int(m[-1]), p))
    for _, p in sorted(items)[:-keep] if keep > 0 else []:
        p.unlink(missing_ok=True)


def capture_rng() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
