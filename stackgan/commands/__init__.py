"""The sub-commands of ``stackgan`` (one module each) and the options several of them share."""

from __future__ import annotations

import argparse

TRUST_HELP = ("load checkpoints that need full unpickling (the format of older versions): only for run "
              "folders from a source you trust, since such a file can run code when loaded")


def add_trust_argument(p: argparse.ArgumentParser) -> None:
    """``--trust-checkpoint``: see :func:`stackgan.utils.io.load_checkpoint`."""
    p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)


def apply_trust_argument(args: argparse.Namespace) -> None:
    from stackgan.utils import io

    io.set_trust_checkpoints(getattr(args, "trust_checkpoint", False))
