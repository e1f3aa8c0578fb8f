"""Configuration: one dataclass per command, validated, saved as JSON beside every run.

A command's config is a dataclass deriving from :class:`Config`. Its fields become command
line options (``field_name`` -> ``--field-name``; help from ``field(metadata={"help": ...})``),
``validate()`` checks ranges, and ``save_json`` / ``load_json`` round-trip it, so that a
checkpoint alone is enough to rebuild the model that wrote it.

A field that was renamed keeps its old name in ``RENAMED`` (old name -> the new field or fields it
sets): the old ``--option`` still parses (with a one-line note on stderr naming the new one), and
``from_dict`` reads config files written under the old name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from stackgan.errors import ConfigError

C = TypeVar("C", bound="Config")

# --precision of both trainers (kept here, free of torch; stackgan.utils.device resolves "auto")
PRECISIONS = ("auto", "fp32", "bf16")
PRECISION_HELP = ("auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32 (exact; a resumed run "
                  "continues bit for bit on the CPU) or bf16 (autocast + channels_last; weights, optimiser "
                  "state and EMA stay fp32)")
# --lr of both trainers: the one-rate spelling, setting --lr-g and --lr-d (see Config.RENAMED)
LR_RENAMED = {"lr": ("lr_g", "lr_d")}
MAX_MINUTES_HELP = ("a time budget: stop at the first step after this many minutes of training (summed over "
                    "resumptions), checkpoint and draw the final grid; 0: no time limit")


@dataclasses.dataclass
class Config:
    """Base class: subclasses add fields and override :meth:`check`."""

    # old field name -> the field(s) it became; the old --option and the old config key keep working
    RENAMED: ClassVar[dict[str, tuple[str, ...]]] = {}

    def check(self) -> None:  # pragma: no cover - overridden
        """Raise :class:`ConfigError` on a bad value. Subclasses call ``super().check()``."""

    def validate(self: C) -> C:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices is not None and value not in choices:
                raise ConfigError(f"--{_opt(f.name)} must be one of {', '.join(map(str, choices))}, got {value!r}")
            lo = f.metadata.get("min")
            if lo is not None and value is not None and value < lo:
                raise ConfigError(f"--{_opt(f.name)} must be >= {lo}, got {value}")
            hi = f.metadata.get("max")
            if hi is not None and value is not None and value > hi:
                raise ConfigError(f"--{_opt(f.name)} must be <= {hi}, got {value}")
        self.check()
        return self

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["_kind"] = type(self).__name__
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2, sort_keys=True)

    def save_json(self, path: str | os.PathLike) -> Path:
        from stackgan.utils.io import atomic_write_text

        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def renamed_dict(cls, d: dict[str, Any]) -> dict[str, Any]:
        """``d`` with the old names of renamed fields (``RENAMED``) replaced by the new ones (a new
        name given beside its old one wins)."""
        d = dict(d)
        for old, new in cls.RENAMED.items():
            if old in d:
                value = d.pop(old)
                for name in new:
                    d.setdefault(name, value)
        return d

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        d = cls.renamed_dict(d)
        kind = d.pop("_kind", cls.__name__)
        if kind != cls.__name__:
            raise ConfigError(f"this config is a {kind}, not a {cls.__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        for k, v in list(d.items()):
            if isinstance(v, list) and _is_tuple(hints.get(k)):
                d[k] = tuple(v)
        return cls(**d).validate()

    @classmethod
    def load_json(cls: type[C], path: str | os.PathLike) -> C:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # -- command line ----------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
        """Add one ``--option`` per field (defaults from the dataclass)."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip or f.metadata.get("cli") is False:
                continue
            typ = hints[f.name]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            help_ = f.metadata.get("help", "")
            help_ = f"{help_} (default: {default})" if help_ else f"default: {default}"
            kw: dict[str, Any] = {"dest": f.name, "default": default, "help": help_}
            base = _strip_optional(typ)
            if base is bool:
                parser.add_argument(f"--{_opt(f.name)}", action=argparse.BooleanOptionalAction, **kw)
                continue
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
            if _is_tuple(base):
                inner = typing.get_args(base)[0]
                kw["type"] = inner
                kw["nargs"] = "+"
            else:
                kw["type"] = base
            parser.add_argument(f"--{_opt(f.name)}", **kw)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for old, new in cls.RENAMED.items():
            if any(n in skip or n not in fields or fields[n].metadata.get("cli") is False for n in new):
                continue
            base = _strip_optional(hints[new[0]])
            if base is bool or _is_tuple(base):
                raise TypeError(f"{cls.__name__}.RENAMED: only plain valued options can be renamed ({old})")
            kw = {"type": base}
            if "choices" in fields[new[0]].metadata:
                kw["choices"] = fields[new[0]].metadata["choices"]
            parser.add_argument(f"--{_opt(old)}", action=_RenamedOption, new=new, dest=f"_renamed_{old}",
                                default=argparse.SUPPRESS, metavar=old.upper(),
                                help=f"deprecated spelling of {_new_options(new)}", **kw)

    @classmethod
    def from_args(cls: type[C], args: argparse.Namespace, **overrides: Any) -> C:
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif hasattr(args, f.name):
                v = getattr(args, f.name)
                values[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**values).validate()


def _opt(name: str) -> str:
    return name.replace("_", "-")


def option_text(name: str, value: Any) -> str:
    """Field ``name`` set to ``value`` as a command line writes it: ``--flag``, ``--no-flag``, ``--flag 0.5``."""
    if isinstance(value, bool):
        return f"--{_opt(name)}" if value else f"--no-{_opt(name)}"
    return f"--{_opt(name)} {value:g}" if isinstance(value, float) else f"--{_opt(name)} {value}"


def _new_options(new: tuple[str, ...]) -> str:
    return " and ".join(f"--{_opt(n)}" for n in new)


class _RenamedOption(argparse.Action):
    """An option's old spelling: sets the new field(s) and says, on stderr, what to write instead."""

    def __init__(self, option_strings, dest, new: tuple[str, ...] = (), **kw):
        self.new = tuple(new)
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is deprecated; use {_new_options(self.new)}", file=sys.stderr)
        for name in self.new:
            setattr(namespace, name, values)


def _strip_optional(typ: Any) -> Any:
    args = typing.get_args(typ)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return typ


def _is_tuple(typ: Any) -> bool:
    return typ is not None and typing.get_origin(_strip_optional(typ)) is tuple


def opt(default: Any, help: str = "", **meta: Any) -> Any:  # noqa: A002 - mirrors argparse
    """Shorthand for a dataclass field with help text and validation bounds.

    ``opt(64, "image size", min=16, choices=(...))``
    """
    meta["help"] = help
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
