"""Where the shipped model is (torch-free, so that the web layer and the commands share it)."""

from __future__ import annotations

import os
from pathlib import Path

#: The model trained on the embedded menu that `make demo`, `stackgan serve` and `stackgan generate` use
#: when no --checkpoint is given (a folder of the source tree).
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "default"


def default_model() -> Path:
    """``$STACKGAN_CHECKPOINT`` when set, else the shipped ``models/default``."""
    return Path(os.environ.get("STACKGAN_CHECKPOINT") or DEFAULT_MODEL)
