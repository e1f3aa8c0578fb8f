"""``stackgan data check DIR``: photos per name, size distribution, and every unusable file."""

from __future__ import annotations

import argparse
import dataclasses

from stackgan.config import Config, opt


@dataclasses.dataclass
class DataCheckConfig(Config):
    min_size: int = opt(16, "photos whose short side is below this many pixels are reported as too small", min=1)
    json: bool = opt(False, "print the report as JSON instead of text")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="inspect a data set folder",
        description="Data set tools. A data set is a folder of photos (jpg/png/webp) with a names.tsv "
                    "(UTF-8, header file<TAB>name), or one sub-folder per dish name.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    c = sub.add_parser(
        "check", help="report photos per name, sizes and unusable files",
        description="Open every photo of DIR and print the photos per name, the size distribution and "
                    "every file that cannot be used, with the reason (unreadable, truncated, not an image, "
                    "not listed in names.tsv, listed but missing, too small). Exits 1 only when no photo "
                    "is usable.")
    c.add_argument("dir", metavar="DIR", help="the data set folder")
    DataCheckConfig.add_arguments(c)
    c.set_defaults(func=run_check)
    p.set_defaults(func=lambda args: _no_action(p))


def _no_action(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_check(args: argparse.Namespace) -> int:
    import json
    import sys

    from stackgan.data.check import check_dataset, format_report, report_dict

    cfg = DataCheckConfig.from_args(args)
    idx = check_dataset(args.dir, min_size=cfg.min_size, progress=sys.stderr.isatty())
    rep = report_dict(idx, cfg.min_size)
    print(json.dumps(rep, ensure_ascii=False, indent=2) if cfg.json else format_report(rep))
    return 0 if rep["n_usable"] else 1
