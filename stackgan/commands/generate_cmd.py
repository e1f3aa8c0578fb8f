"""`stackgan generate`: N samples and a grid from any checkpoint (DCGAN or StackGAN)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Optional

from stackgan.commands import add_trust_argument, apply_trust_argument
from stackgan.config import PRECISIONS, Config, opt
from stackgan.errors import CheckpointError, ConfigError
from stackgan.stackgan_config import PARTS_SENTENCES

DESCRIPTION = """\
Write N samples (one PNG each) and a grid of them from a checkpoint: a ckpt-*.pt file, a run
folder (its latest checkpoint) or a G.safetensors with its config.json. The kind of model is read
from the run's config. A DCGAN is unconditional and takes no names; a StackGAN takes one or more
dish names and draws N pictures of each. Sample i of a run uses seed --seed + i, so any single
picture can be drawn again with -n 1.
"""

EPILOG = """\
examples:
  stackgan generate ピリ辛サーモン丼 -n 8 --out salmon.png      # the shipped model (models/default)
  stackgan generate --checkpoint runs/dcgan/menu-64x64 -n 64 --seed 1 --out dcgan.png
  stackgan generate --checkpoint runs/stackgan/menu ピリ辛サーモン丼 天ぷらカレー -n 8 --out menu.png
  stackgan generate --checkpoint runs/stackgan/menu 月見うどん --variations-of 3 --sigma 0.5 -n 16
  stackgan generate 月見うどん -n 4 --interpolate --out walk.gif          # between seeds 1..4, and back
  stackgan generate カツ丼 親子丼 --seed 3 --interpolate --out katsu-oyako.gif   # between two names
"""


@dataclasses.dataclass
class GenerateConfig(Config):
    checkpoint: str = opt("", "ckpt-*.pt, a run folder (latest checkpoint) or G.safetensors", cli=False)
    names: tuple[str, ...] = opt((), "dish names (StackGAN only)", cli=False)
    num: int = opt(64, "samples to draw (per name for StackGAN)", min=1, max=4096, cli=False)
    seed: int = opt(1, "seed of the first sample; sample i uses seed + i", min=0)
    out: str = opt("generated.png", "the grid PNG")
    out_dir: Optional[str] = opt(None, "folder for the single PNGs [the grid's path without .png]")
    truncation: float = opt(1.0, "scale z towards its mean (< 1: safer, less varied samples)", min=0.0, max=2.0)
    parts_sentence: Optional[str] = opt(None, "a StackGAN trained with --parts: how names outside training that "
                                              "the parts vocabulary reads whole get their sentence vector: own "
                                              "(their encoding) or parts (predicted from their parts) [the run's "
                                              "--parts-sentence]")
    variations_of: Optional[int] = opt(None, "draw variations of the sample with this seed instead", min=0)
    sigma: float = opt(0.5, "noise added to z for --variations-of", min=0.0)
    interpolate: bool = opt(False, "StackGAN: write an animated GIF (--out NAME.gif), or an MP4 (--out NAME.mp4, "
                                   "needs PyAV: pip install av), that walks between the pictures of seeds --seed .. "
                                   "--seed + n - 1 of one name, or between two or more names (their sentence "
                                   "vectors) at --seed, and back")
    frames: int = opt(16, "--interpolate: frames per leg of the walk", min=2, max=120)
    frame_ms: int = opt(80, "--interpolate: milliseconds per frame", min=10, max=5000)
    device: str = opt("auto", "auto, cpu, cuda, ...")
    precision: str = opt("fp32", "StackGAN: fp32 (the pictures evaluate scores), bf16 or auto (bf16 where the "
                                 "device runs it natively: faster for many pictures, PSNR about 55 dB against fp32)",
                         choices=PRECISIONS)

    def check(self) -> None:
        if not str(self.checkpoint).strip():
            raise ConfigError("--checkpoint is required")
        if self.parts_sentence not in (None, *PARTS_SENTENCES):
            raise ConfigError(f"--parts-sentence must be own or parts, got {self.parts_sentence!r}")
        suffixes = (".gif", ".mp4") if self.interpolate else (".png",)
        if not str(self.out).lower().endswith(suffixes):
            raise ConfigError(f"--out must be a {' or '.join(suffixes)} file"
                              f"{' with --interpolate' if self.interpolate else ''}, got {self.out!r}")
        if self.interpolate and str(self.out).lower().endswith(".mp4"):
            from stackgan.utils.viz import video_writer_available

            if not video_writer_available():
                raise ConfigError("--out NAME.mp4 needs PyAV (pip install av), which is not installed here; "
                                  "write a .gif instead")
        if self.interpolate and self.variations_of is not None:
            raise ConfigError("--interpolate and --variations-of do not go together")

    @property
    def sample_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path(self.out).with_suffix("")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate",
        help="write N samples and a grid from a checkpoint",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="ckpt-*.pt, a run folder (latest checkpoint) or G.safetensors beside its config.json "
                        "(default: $STACKGAN_CHECKPOINT, else the shipped models/default, as `stackgan serve`)")
    p.add_argument("names", nargs="*", metavar="NAME", help="dish names (StackGAN checkpoints only)")
    p.add_argument("-n", "--num", type=int, default=None,
                   help="samples to draw (per name for StackGAN) (default: 64); with --interpolate the key seeds "
                        "of a one-name walk (default: 4)")
    GenerateConfig.add_arguments(p, skip=("checkpoint", "names", "num"))
    add_trust_argument(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    apply_trust_argument(args)
    if not args.checkpoint:
        from stackgan.defaults import default_model

        args.checkpoint = str(default_model())
    if args.num is None:
        args.num = 4 if args.interpolate else 64
    cfg = GenerateConfig.from_args(args, names=tuple(args.names))
    kind = checkpoint_kind(cfg.checkpoint)
    if cfg.interpolate:
        if not kind.startswith("StackGAN"):
            raise ConfigError("--interpolate walks between seeds or names of a StackGAN model")
        frames = interpolate_stackgan(cfg)
        print(f"wrote {cfg.out} ({frames} frames)")
        return 0
    if kind != "DCGANConfig" and not kind.startswith("StackGAN"):
        raise CheckpointError(f"{cfg.checkpoint} holds a {kind}, not a DCGAN or StackGAN generator")
    written = generate_samples(cfg, dcgan=kind == "DCGANConfig")
    print(f"wrote {written} samples to {cfg.sample_dir} and the grid {cfg.out}")
    return 0


def checkpoint_kind(path: str | Path) -> str:
    """The ``_kind`` of the config behind a checkpoint file, run folder or weights file."""
    from stackgan.runs import RunFolder

    kind = RunFolder.open(path).config_kind
    if not kind:
        raise CheckpointError(f"{path}: its config does not say which model it is (no _kind)")
    return kind


def _grid_nrow(groups: int, per_group: int) -> int:
    if groups > 1 and per_group <= 16:
        return per_group  # one row per name
    return max(1, math.ceil(math.sqrt(groups * per_group)))


def _write(images, seeds: list[int], names: list[str], cfg: GenerateConfig, groups: int) -> int:
    """Save each image as NNNN-seedS.png (+ samples.tsv: file, name, seed) and the grid."""
    from stackgan.utils import viz
    from stackgan.utils.io import atomic_write_text

    folder = cfg.sample_dir
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file\tname\tseed"]
    for i, img in enumerate(viz.to_uint8(images)):
        fname = f"{i:04d}-seed{seeds[i]}.png"
        viz.to_pil(img).save(folder / fname, format="PNG")
        rows.append(f"{fname}\t{names[i]}\t{seeds[i]}")
    atomic_write_text(folder / "samples.tsv", "\n".join(rows) + "\n")
    viz.save_grid(images, cfg.out, nrow=_grid_nrow(groups, len(seeds) // groups))
    return len(seeds)


def generate_samples(cfg: GenerateConfig, dcgan: bool) -> int:
    """N pictures (of each name for a StackGAN) from the sampler of :func:`stackgan.inference.load_sampler`:
    sample i from seed --seed + i, or variations of the picture of seed --variations-of."""
    import torch

    if dcgan and cfg.names:
        raise ConfigError(f"{cfg.checkpoint} is an unconditional DCGAN: it takes no dish names "
                          f"(got {', '.join(cfg.names)}); drop them, or use a StackGAN checkpoint")
    if not dcgan and not cfg.names:
        raise ConfigError("a StackGAN checkpoint draws dish names: give at least one NAME "
                          "(e.g. stackgan generate --checkpoint RUN ピリ辛サーモン丼)")
    from stackgan.inference import load_sampler
    from stackgan.utils.device import resolve_device

    sampler = load_sampler(cfg.checkpoint, device=resolve_device(cfg.device), precision=cfg.precision)
    if cfg.parts_sentence is not None:
        if dcgan:
            raise ConfigError("--parts-sentence applies to a StackGAN trained with --parts, not to a DCGAN")
        sampler.parts_sentence = cfg.parts_sentence
    seeds = [cfg.seed + i for i in range(cfg.num)]
    all_images, all_seeds, all_names = [], [], []
    for name in cfg.names or (None,):
        if cfg.variations_of is None:
            images, used = sampler.sample(seeds, name, cfg.truncation), seeds
        elif dcgan:  # image 0 is the original; image i > 0 adds sigma x N(0, 1) noise drawn with seed --seed + i
            images = sampler.variations(cfg.variations_of, cfg.num, cfg.sigma, truncation=cfg.truncation,
                                        noise_seed=cfg.seed)
            used = [cfg.variations_of] * cfg.num
        else:
            res = sampler.variations(name, cfg.variations_of, cfg.num, cfg.sigma)
            images = res.stage2 if res.stage2 is not None else res.stage1
            used = list(res.seeds)
        all_images.append(images)
        all_seeds += [int(s) for s in used]
        all_names += [name or ""] * images.shape[0]
    return _write(torch.cat(all_images), all_seeds, all_names, cfg, groups=max(1, len(cfg.names)))


def interpolate_stackgan(cfg: GenerateConfig) -> int:
    """The --interpolate GIF: one name walks between seeds, several names walk between each other."""
    if not cfg.names:
        raise ConfigError("--interpolate needs one name (a walk between seeds) or several (a walk between names)")
    from stackgan.inference import load_pipeline
    from stackgan.pipeline import to_pil
    from stackgan.utils.device import resolve_device
    from stackgan.utils.viz import save_gif, save_mp4

    pipe = load_pipeline(cfg.checkpoint, device=resolve_device(cfg.device), precision=cfg.precision)
    if cfg.parts_sentence is not None:
        pipe.parts_sentence = cfg.parts_sentence
    seeds = [cfg.seed + i for i in range(cfg.num)] if len(cfg.names) == 1 else [cfg.seed]
    res = pipe.interpolate(cfg.names, seeds, frames=cfg.frames)
    images = to_pil(res.images)
    (save_mp4 if str(cfg.out).lower().endswith(".mp4") else save_gif)(images, cfg.out, cfg.frame_ms)
    return len(images)
