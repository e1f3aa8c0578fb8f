"""Run folders: the one reader of what training leaves on disk, for training (resume, stage II's
stage I), inference, ``stackgan generate`` and evaluation.

What it reads
    A **run folder** (``stackgan train`` or ``stackgan baseline-dcgan``): ``config.json``, the
    numbered checkpoints ``ckpt-*.pt`` (each holding its config and the full training state) and
    the inference weights, ``G_ema.safetensors`` (StackGAN) or ``G.safetensors`` (DCGAN), written
    beside ``config.json`` with every checkpoint. A stage-II run also holds ``stage1/``, itself a
    small run folder of config.json + G_ema.safetensors.

    A **model folder** (``Pipeline.save_pretrained``, ``scripts/export_model.py``): a run folder
    without checkpoints.

    A **file**: one ``ckpt-*.pt``, or one ``*.safetensors`` with the ``config.json`` of its run
    beside it.

The precedence rule (one for every reader)
    *Config*: a checkpoint file that is given carries its own config. Otherwise the config is the
    folder's ``config.json``; a folder without one (a run from before config.json was written,
    or a copy of only its checkpoints) falls back to the config inside its newest intact
    checkpoint. A ``*.safetensors`` file that is given needs the ``config.json`` beside it.

    *Weights*: a file that is given is what is loaded. A folder is loaded from its weights file
    (``G_ema.safetensors`` / ``G.safetensors``, read with the ``config.json`` beside it) when it
    has one, else from its newest intact checkpoint (``G_ema`` / ``G`` in it). A checkpoint that
    cannot be read is passed over for the one before it, with a warning
    (:func:`stackgan.utils.io.latest_intact_checkpoint`).

    *Kind*: the config's ``_kind`` (``StackGANConfig`` or ``DCGANConfig``) and, for StackGAN, its
    ``stage`` say what the run is: ``stackgan-stage1``, ``stackgan-stage2`` or ``dcgan``.

Every problem is a :class:`~stackgan.errors.CheckpointError` that names the file. The module
loads neither training code nor the web layer, and not torch until weights or checkpoints are
read (so the command line stays fast).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from stackgan.errors import CheckpointError, ConfigError

CONFIG_FILE = "config.json"
CHECKPOINTS = "ckpt-*.pt"
STACKGAN, DCGAN = "stackgan", "dcgan"  # model families
STACKGAN_STAGE1, STACKGAN_STAGE2 = "stackgan-stage1", "stackgan-stage2"  # kinds (StackGANConfig.kind)
CONFIG_KINDS = {"StackGANConfig": STACKGAN, "DCGANConfig": DCGAN}  # config ``_kind`` -> family
WEIGHTS_FILES = {STACKGAN: "G_ema.safetensors", DCGAN: "G.safetensors"}
CHECKPOINT_WEIGHTS = {STACKGAN: "G_ema", DCGAN: "G"}  # the generator inference uses, in a checkpoint
LABELS = {STACKGAN: "StackGAN", DCGAN: "DCGAN"}

_MISSING: Any = object()


def read_json(path: str | os.PathLike, default: Any = _MISSING) -> Any:
    """The JSON value in ``path``. A missing, unreadable or invalid file is a :class:`CheckpointError`
    naming it, or ``default`` when one is given (for optional files such as metrics.json)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if default is not _MISSING:
            return default
        raise CheckpointError(f"missing {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if default is not _MISSING:
            return default
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None


def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and the metadata of a safetensors file, with a clear error for a missing or damaged one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as exc:  # corrupt file
        raise CheckpointError(f"cannot read {path}: {exc}") from None


def typed_config(raw: dict[str, Any], where: Path | str):
    """A :class:`StackGANConfig` or :class:`DCGANConfig` from a raw config dict (its ``_kind`` says which)."""
    from stackgan.dcgan_config import DCGANConfig
    from stackgan.stackgan_config import StackGANConfig

    cls = {"StackGANConfig": StackGANConfig, "DCGANConfig": DCGANConfig}.get(raw.get("_kind"))
    if cls is None:
        raise CheckpointError(f"{where}: a {raw.get('_kind') or 'unknown kind of'} run, not a StackGAN or DCGAN run")
    try:
        return cls.from_dict(raw)
    except ConfigError as exc:
        raise CheckpointError(f"{where}: unusable config: {exc}") from None


class RunFolder:
    """A run folder, a model folder, or one file of one, read by the precedence rule of this module.

    ``RunFolder(folder)`` only names a folder (it may not exist yet: training uses it to look for
    checkpoints to resume); :meth:`open` locates what a user gave and refuses what is not a run.
    Files are read when first asked for, and each once.
    """

    def __init__(self, folder: str | os.PathLike, given: str | os.PathLike | None = None):
        self.folder = Path(folder)
        self.path = Path(given) if given is not None else self.folder  # what the user gave
        self._raw: dict[str, Any] | None = None
        self._config_source: Path | None = None
        self._typed: Any = None
        self._weights: tuple[dict[str, Any], dict[str, str]] | None = None
        self._checkpoints: dict[str, tuple[Path, dict[str, Any]] | None] = {}

    @classmethod
    def open(cls, path: str | os.PathLike) -> "RunFolder":
        """A run or model folder, a ``ckpt-*.pt`` or a ``*.safetensors`` (with config.json beside it)."""
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"checkpoint not found: {path}")
        if not path.is_dir():
            return cls(path.parent, path)
        run = cls(path)
        if not run.looks_like_run:
            raise run._not_a_run()
        return run

    def _not_a_run(self) -> CheckpointError:
        return CheckpointError(f"{self.folder} is not a run folder: no config.json, and neither weights nor a "
                               f"{CHECKPOINTS} checkpoint")

    # -- where things are ------------------------------------------------------------------------
    @property
    def given_checkpoint(self) -> Path | None:
        """The checkpoint file that was given (None for a folder or a weights file)."""
        p = self.path
        return p if p != self.folder and p.suffix != ".safetensors" else None

    @property
    def given_weights(self) -> Path | None:
        """The ``*.safetensors`` file that was given (None for a folder or a checkpoint)."""
        return self.path if self.path != self.folder and self.path.suffix == ".safetensors" else None

    @property
    def checkpoint_files(self) -> list[Path]:
        """The folder's ``ckpt-*.pt``, newest (highest step) first; nothing is loaded."""
        from stackgan.utils import io

        return io.checkpoints_newest_first(self.folder, CHECKPOINTS)

    @property
    def looks_like_run(self) -> bool:
        """Whether the folder holds a config.json or a checkpoint."""
        return (self.folder / CONFIG_FILE).is_file() or bool(self.checkpoint_files)

    @property
    def config_file(self) -> Path | None:
        """The config.json the config comes from (None when it comes from a checkpoint)."""
        if self.given_checkpoint is not None:
            return None
        f = self.folder / CONFIG_FILE
        return f if f.is_file() else None

    def latest_checkpoint(self, map_location: Any = "cpu", warn: Callable[[str], None] | None = None
                          ) -> tuple[Path, dict[str, Any]] | None:
        """(path, contents) of the checkpoint that was given, else of the folder's newest intact one
        (a damaged newer one is passed over with ``warn``); None when the folder has none."""
        from stackgan.utils import io

        key = str(map_location)
        if key not in self._checkpoints:
            if self.given_checkpoint is not None:
                found = self.given_checkpoint, io.load_checkpoint(self.given_checkpoint, map_location=map_location)
            elif not self.checkpoint_files:
                found = None
            else:  # io's own warning (on stderr) unless the caller has a printer
                found = io.latest_intact_checkpoint(self.folder, CHECKPOINTS, map_location=map_location,
                                                    **({"warn": warn} if warn is not None else {}))
            self._checkpoints[key] = found
        return self._checkpoints[key]

    # -- the config ------------------------------------------------------------------------------
    @property
    def raw_config(self) -> dict[str, Any]:
        """The config dict, as saved (see the precedence rule)."""
        return self._load_config()[0]

    @property
    def config_source(self) -> Path:
        """The file the config was read from: config.json or a checkpoint."""
        return self._load_config()[1]

    def _load_config(self) -> tuple[dict[str, Any], Path]:
        if self._raw is None or self._config_source is None:
            raw, source = self._read_config()
            if not isinstance(raw, dict):
                raise CheckpointError(f"{source}: the config is not a JSON object")
            self._raw, self._config_source = raw, source
        return self._raw, self._config_source

    def _read_config(self) -> tuple[Any, Path]:
        if self.given_checkpoint is None and self.config_file is not None:
            return read_json(self.config_file), self.config_file
        if self.given_weights is not None:
            raise CheckpointError(f"{self.path} needs the config.json of its run beside it "
                                  f"(no {self.folder / CONFIG_FILE})")
        found = self.latest_checkpoint()
        if found is None:
            raise self._not_a_run()
        ckpt, state = found
        if not isinstance(state, dict) or "config" not in state:
            raise CheckpointError(f"{ckpt} is not a checkpoint of this project (it has no config)")
        return state["config"], ckpt

    @property
    def config_kind(self) -> str | None:
        """The config's ``_kind`` as saved (``StackGANConfig``, ``DCGANConfig``, ...), None without one."""
        kind = self.raw_config.get("_kind")
        return str(kind) if kind else None

    @property
    def model(self) -> str | None:
        """``stackgan``, ``dcgan``, or None for a config of another kind."""
        return CONFIG_KINDS.get(self.config_kind or "")

    @property
    def stage(self) -> int | None:
        """The StackGAN stage (1 or 2); None for a DCGAN or another kind."""
        if self.model != STACKGAN:
            return None
        stage = self.raw_config.get("stage", 1)
        if stage not in (1, 2):
            raise CheckpointError(f"{self.config_source}: stage {stage!r} is not 1 or 2")
        return int(stage)

    @property
    def kind(self) -> str | None:
        """``stackgan-stage1``, ``stackgan-stage2``, ``dcgan``, or None for a config of another kind."""
        if self.model == STACKGAN:
            return STACKGAN_STAGE1 if self.stage == 1 else STACKGAN_STAGE2
        return self.model

    @property
    def config(self):
        """The typed config: a :class:`StackGANConfig` or a :class:`DCGANConfig`."""
        if self._typed is None:
            self._typed = typed_config(self.raw_config, self.path)
        return self._typed

    def require(self, model: str, needs: str = ""):
        """The typed config of a ``model`` (STACKGAN or DCGAN) run, or a CheckpointError saying what the
        run is instead (``needs``: what the caller wanted, added to that message). A StackGAN config
        must know its embedding size (written once training has seen its data)."""
        if self.model != model:
            raise CheckpointError(f"{self.path} is not a {LABELS[model]} run (its config is a "
                                  f"{self.config_kind or 'unknown kind'})" + (f"; {needs}" if needs else ""))
        cfg = self.config
        if model == STACKGAN and cfg.emb_dim <= 0:
            raise CheckpointError(f"{self.path}: the config has no embedding size (emb_dim); was its training "
                                  f"finished?")
        return cfg

    # -- the weights -----------------------------------------------------------------------------
    @property
    def weights_file(self) -> Path | None:
        """The inference weights file that is read (see the precedence rule), or None when the weights
        come from a checkpoint."""
        if self.given_weights is not None:
            return self.given_weights
        if self.given_checkpoint is not None or self.config_file is None or self.model is None:
            return None
        f = self.folder / WEIGHTS_FILES[self.model]
        return f if f.is_file() else None

    def weights(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The generator's state dict for inference and its metadata (``step`` at least when known)."""
        if self._weights is None:
            self._weights = self._read_weights()
        return self._weights

    def _read_weights(self) -> tuple[dict[str, Any], dict[str, str]]:
        if self.weights_file is not None:
            return read_safetensors(self.weights_file)
        model = self.model
        found = self.latest_checkpoint()
        if found is None:
            raise CheckpointError(f"{self.folder}: no {WEIGHTS_FILES.get(model or '', 'weights file')} and no "
                                  f"{CHECKPOINTS} checkpoint (the run wrote no checkpoint yet?)")
        ckpt, state = found
        key = CHECKPOINT_WEIGHTS.get(model or "")
        if key is None or not isinstance(state, dict) or key not in state:
            raise CheckpointError(f"{ckpt} is not a {LABELS.get(model or '', 'generator')} checkpoint "
                                  f"(no {key or 'generator'} weights in it)")
        return state[key], {"step": str(state.get("step", ""))}

    def load_into(self, model: Any, check_finite: bool = False) -> Any:
        """``model`` (a generator built from :attr:`config`) with the run's weights loaded, or a clear
        error when they do not fit it. ``check_finite``: refuse NaN or infinite weights (a damaged
        file would otherwise give black pictures)."""
        import torch

        state, _ = self.weights()
        if check_finite:
            bad = [k for k, v in state.items()
                   if torch.is_tensor(v) and v.is_floating_point() and not bool(v.isfinite().all())]
            if bad:
                raise CheckpointError(f"{self.path}: the weights hold NaN or infinite values ({', '.join(bad[:3])}"
                                      f"{' and more' if len(bad) > 3 else ''}); the file is damaged")
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.path}: the weights do not fit the config: {exc}") from None
        return model

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"
