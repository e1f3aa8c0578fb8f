"""The `stackgan` command line: one sub-command per module in `stackgan.commands`.

Each command module defines ``add_parser(subparsers)`` that registers its sub-parser and sets
``func`` (called with the parsed namespace, returning an exit code). Heavy imports (torch,
transformers) happen inside those functions, so ``stackgan --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import warnings

from stackgan.errors import ProjectWarning, UserError

# Command modules, in the order of the data flow.
COMMANDS = [
    "stackgan.commands.data_cmd",
    "stackgan.commands.menu_cmd",
    "stackgan.commands.text_cmd",
    "stackgan.commands.train_cmd",
    "stackgan.commands.dcgan_cmd",
    "stackgan.commands.generate_cmd",
    "stackgan.commands.evaluate_cmd",
    "stackgan.commands.serve_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackgan",
        description="Text-to-image StackGAN for (invented) Japanese dish names.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod_name in COMMANDS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name == mod_name:
                continue
            raise
        mod.add_parser(sub)
    return parser


def _version() -> str:
    from stackgan import __version__

    return f"stackgan {__version__}"


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning) -> None:
    """The project's own warnings as one plain line (``warning: skipping x.jpg: truncated``); others as Python
    prints them."""
    if issubclass(category, ProjectWarning):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    # the command line as typed, for the reports that record how they were made
    args.command_line = "stackgan " + " ".join(shlex.quote(a) for a in argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default", ProjectWarning)  # each different message once
            warnings.showwarning = _show_warning
            rc = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
