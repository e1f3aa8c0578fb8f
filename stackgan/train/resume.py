"""Starting or resuming a run in a run folder, the same in both trainers: a folder that holds
checkpoints is continued only with --resume, and --resume needs a checkpoint to continue."""

from __future__ import annotations

from pathlib import Path

from stackgan.errors import CheckpointError, RunFolderInUse
from stackgan.runs import RunFolder


def checkpoint_to_resume(out: Path, resume: bool) -> Path | None:
    """The newest checkpoint in ``out`` when resuming (a CheckpointError without one), None for a new
    run (a :class:`RunFolderInUse` error, exit status 2, when ``out`` already holds checkpoints)."""
    ckpt = next(iter(RunFolder(out).checkpoint_files), None)
    if resume:
        if ckpt is None:
            raise CheckpointError(f"--resume: no checkpoint in {out}; start it without --resume")
        return ckpt
    if ckpt is not None:
        raise RunFolderInUse(f"{out} already holds checkpoints of a run ({ckpt.name}); continue it with --resume, "
                             "or choose another --out")
    return None
