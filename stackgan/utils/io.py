"""Atomic files, checkpoints and RNG state.

Everything that a killed process could leave half-written (checkpoints, configs, caches) is
written to a temporary file in the same folder and renamed over the target.

Checkpoints hold only tensors and plain values (numbers, strings, lists, tuples, dicts, None; the
RNG states too), so they load with ``torch.load(weights_only=True)``, which cannot run code: run
folders get shared like model files. A checkpoint that needs full unpickling (the format of older
versions, or a crafted file) is refused unless the user trusts it explicitly
(``--trust-checkpoint``, see :func:`set_trust_checkpoints`).
"""

from __future__ import annotations

import os
import pickle
import random
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stackgan.errors import CheckpointError


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def _atomic_write(path: str | os.PathLike, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # like open() would: mkstemp makes it 0600
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


TRUST_FLAG = "--trust-checkpoint"
_trust_checkpoints = False


def set_trust_checkpoints(trust: bool) -> None:
    """Let :func:`load_checkpoint` fall back to full unpickling (which can run code) in this process:
    what ``--trust-checkpoint`` asks for."""
    global _trust_checkpoints
    _trust_checkpoints = bool(trust)


def _needs_full_unpickling(exc: Exception) -> bool:
    """Whether ``torch.load(weights_only=True)`` refused the file for what it holds (an object that
    is not a tensor or plain value), rather than because the file is damaged."""
    msg = str(exc)
    return isinstance(exc, pickle.UnpicklingError) and ("Unsupported global" in msg or "Unsupported class" in msg)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    trust: bool | None = None) -> dict[str, Any]:
    """Load a training checkpoint written by :func:`atomic_torch_save`, with a clear error.

    Loads with ``weights_only=True`` (tensors and plain values only; nothing in the file can run
    code). A file that needs more (the format of versions before this one, or a crafted file) is a
    :class:`CheckpointError` unless ``trust`` (default: :func:`set_trust_checkpoints`), in which case
    it is unpickled in full after a warning on stderr.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or holding objects that need full unpickling
        if not _needs_full_unpickling(exc):
            raise DamagedCheckpoint(f"cannot read checkpoint {path}: {exc}") from None
        found = re.search(r"Unsupported (?:global: GLOBAL|class) ([\w.]+)", str(exc))
        what = f"it refers to {found.group(1)}" if found else "it holds objects other than tensors and plain values"
    if not (_trust_checkpoints if trust is None else trust):
        raise CheckpointError(
            f"{path} needs full unpickling to load ({what}): it is in the checkpoint format of an older "
            f"stackgan, or it was crafted, and loading it could run code from it. Refused. If you trust "
            f"where this run folder comes from, rerun with {TRUST_FLAG} (the next checkpoint of a resumed "
            f"run is written in the safe format)")
    print(f"warning: {TRUST_FLAG}: unpickling {path} in full ({what}); this runs any code the file holds",
          file=sys.stderr)
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise DamagedCheckpoint(f"cannot read checkpoint {path}: {exc}") from None


class DamagedCheckpoint(CheckpointError):
    """A checkpoint file that is truncated or corrupt (not one refused for what it holds)."""


_STEP_RE = re.compile(r"(\d+)")


def checkpoint_step(path: str | os.PathLike) -> int | None:
    """The step a checkpoint's name carries (the last number: ``ckpt-000123.pt`` -> 123), or None."""
    m = _STEP_RE.findall(Path(path).stem)
    return int(m[-1]) if m else None


def checkpoints_newest_first(folder: str | os.PathLike, pattern: str = "ckpt-*.pt") -> list[Path]:
    items = []
    for p in Path(folder).glob(pattern) if Path(folder).is_dir() else []:
        step = checkpoint_step(p)
        if step is not None:
            items.append((step, p))
    return [p for _, p in sorted(items, reverse=True)]


def latest_intact_checkpoint(folder: str | os.PathLike, pattern: str = "ckpt-*.pt",
                             map_location: str | torch.device = "cpu",
                             warn=lambda msg: print(msg, file=sys.stderr)) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``folder`` that loads, and its contents. A damaged newer one (a disk
    that filled up, a copy cut short) is passed over with a warning, so that it does not block
    ``--resume``; a file refused for what it holds (see :func:`load_checkpoint`) is not passed over."""
    found = checkpoints_newest_first(folder, pattern)
    if not found:
        raise CheckpointError(f"no checkpoint in {folder}")
    damaged = []
    for path in found:
        try:
            state = load_checkpoint(path, map_location=map_location)
        except DamagedCheckpoint as exc:
            damaged.append(path.name)
            warn(f"warning: {exc}; trying the checkpoint before it")
            continue
        if damaged:
            warn(f"warning: resuming from {path.name}, the newest intact checkpoint "
                 f"(damaged: {', '.join(damaged)})")
        return path, state
    raise CheckpointError(f"every checkpoint in {folder} is damaged ({', '.join(damaged)}); start the run again")


def latest_checkpoint(folder: str | os.PathLike, pattern: str = "ckpt-*.pt") -> Path | None:
    """The checkpoint with the highest step number in ``folder`` (``ckpt-000123.pt``), or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    best: tuple[int, Path] | None = None
    for p in folder.glob(pattern):
        step = checkpoint_step(p)
        if step is None:
            continue
        if best is None or step > best[0]:
            best = (step, p)
    return best[1] if best else None


def remove_stale_temps(folder: str | os.PathLike, pattern: str = "ckpt-*.pt") -> list[Path]:
    """Remove what a killed write of a checkpoint or of safetensors weights left in ``folder``
    (``.ckpt-000010.pt.XXXX.tmp``, ``.G_ema.safetensors.XXXX.tmp``); returns what was removed."""
    folder = Path(folder)
    stale = [*folder.glob(f".{pattern}.*.tmp"), *folder.glob(".*.safetensors.*.tmp")]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def prune_checkpoints(folder: str | os.PathLike, keep: int, pattern: str = "ckpt-*.pt") -> None:
    """Keep the ``keep`` newest numbered checkpoints in ``folder`` (and remove the temporary files
    of writes that a killed process left behind: pruning runs right after a checkpoint is written,
    so no write of this process is in progress)."""
    remove_stale_temps(folder, pattern)
    items = []
    for p in Path(folder).glob(pattern):
        step = checkpoint_step(p)
        if step is not None:
            items.append((step, p))
    for _, p in sorted(items)[:-keep] if keep > 0 else []:
        p.unlink(missing_ok=True)


def capture_rng() -> dict[str, Any]:
    """The python, numpy, torch (and CUDA) RNG states as tensors and plain values (loadable with
    ``weights_only=True``)."""
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),  # (version, tuple of ints, None)
        "numpy": {"kind": str(kind), "key": [int(k) for k in key], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng` captured (also the older format: numpy's state tuple)."""
    random.setstate(tuple(state["python"]) if isinstance(state["python"], list) else state["python"])
    npst = state["numpy"]
    if isinstance(npst, dict):
        npst = (npst["kind"], np.asarray(npst["key"], dtype=np.uint32), npst["pos"], npst["has_gauss"],
                npst["cached_gaussian"])
    np.random.set_state(npst)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
