"""``stackgan make-menu``: draw the embedded cafeteria menu set (``data/menu``)."""

from __future__ import annotations

import argparse
import dataclasses

from stackgan.config import Config, opt
from stackgan.errors import ConfigError

DESCRIPTION = """\
Draw the project's own small photo set of Japanese cafeteria dishes: bowls and plates seen from
about 45 degrees on trays and tables, with shading, shadows, camera jitter, lighting, sensor noise
and blur. Dish names are modifier + topping + base (ピリ辛サーモン丼, 冷やしきつねうどん,
味噌ラーメン); every part has its own look. Writes images/*.jpg, names.tsv (file<TAB>name),
attributes.tsv (the parts of every image), invented.tsv (combinations never trained on) and a
README.md. The same --seed gives the same files. An existing --out is replaced only if it holds a
previous menu set.
"""

EPILOG = """\
examples:
  stackgan make-menu                                  # data/menu, seed 0, 256 px
  stackgan make-menu --out menu-s1 --seed 1 --per-name 4 --size 64   # a small other draw
"""


@dataclasses.dataclass
class MenuConfig(Config):
    out: str = opt("data/menu", "output folder")
    seed: int = opt(0, "random seed: the same seed gives the same pictures", min=0)
    per_name: int = opt(22, "images per dish name", min=1, max=1000)
    size: int = opt(256, "image side in pixels", min=16, max=1024)
    quality: int = opt(90, "JPEG quality", min=50, max=100)

    def check(self) -> None:
        if not self.out.strip():
            raise ConfigError("--out must not be empty")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("make-menu", help="draw the embedded cafeteria menu photo set",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    MenuConfig.add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from tqdm import tqdm

    from stackgan.menu import make_menu

    cfg = MenuConfig.from_args(args)
    t0 = time.perf_counter()
    bar = (lambda it: tqdm(it, desc="drawing", unit="img", disable=not sys.stderr.isatty()))
    info = make_menu(cfg.out, seed=cfg.seed, per_name=cfg.per_name, size=cfg.size, quality=cfg.quality,
                     progress=bar)
    dt = time.perf_counter() - t0
    print(f"wrote {info['images']} images of {info['names']} names ({info['image_bytes'] / 2**20:.1f} MiB) "
          f"and {info['invented']} invented names to {info['out']} in {dt:.0f} s")
    return 0
