"""Where the shipped model is (torch-free, so that the web layer and the commands share it).

In a source checkout (``make demo``, ``pip install -e .``) it is the tree's ``models/default``. A wheel
(``pip install .``) carries the same folder as data files, installed under the environment's data
path: ``<prefix>/share/stackgan/models/default`` (``sysconfig``'s ``data`` path; the user scheme's for
``pip install --user``). ``$STACKGAN_CHECKPOINT`` overrides both.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

#: The model folder of a source checkout (next to the package).
SOURCE_MODEL = Path(__file__).resolve().parents[1] / "models" / "default"
#: Where a wheel installs it, below an installation scheme's data path.
INSTALLED_RELATIVE = Path("share") / "stackgan" / "models" / "default"


def installed_model_candidates() -> list[Path]:
    """The folders a wheel may have put the shipped model in, for this interpreter's schemes."""
    out = []
    for scheme in (None, f"{os.name}_user"):
        try:
            data = sysconfig.get_paths(scheme) if scheme else sysconfig.get_paths()
        except KeyError:
            continue
        out.append(Path(data["data"]) / INSTALLED_RELATIVE)
    return list(dict.fromkeys(out))


def shipped_model() -> Path:
    """The shipped model folder: the source tree's, else the one a wheel installed; the source path
    when neither exists (the error then names it and says what to do)."""
    if (SOURCE_MODEL / "config.json").is_file():
        return SOURCE_MODEL
    for folder in installed_model_candidates():
        if (folder / "config.json").is_file():
            return folder
    return SOURCE_MODEL


#: The model trained on the embedded menu that `make demo`, `stackgan serve` and `stackgan generate` use
#: when no --checkpoint is given.
DEFAULT_MODEL = shipped_model()


def default_model() -> Path:
    """``$STACKGAN_CHECKPOINT`` when set, else the shipped model."""
    return Path(os.environ.get("STACKGAN_CHECKPOINT") or DEFAULT_MODEL)
