"""`stackgan baseline-dcgan`: train (or resume) the unconditional DCGAN baseline."""

from __future__ import annotations

import argparse

from stackgan.commands import add_trust_argument, apply_trust_argument

DESCRIPTION = """\
Train a faithful, unconditional DCGAN (Radford et al. 2015) on a photo folder: the baseline that
StackGAN must beat. Options mirror DCGAN-tensorflow (--epochs 25 --lr 0.0002 --beta1 0.5
--batch-size 64 --z-dim 100 --image-size 64). Sizes need not be powers of two or square
(--image-size 96, --image-size 64x74).

The run folder (--out) gets config.json, atomic checkpoints ckpt-STEP.pt (after every epoch, or
every --ckpt-every steps), log.jsonl, a fixed-noise 8x8 grid after every epoch or every
--sample-every steps (samples/STEP.png), losses.png, progress.gif and G.safetensors. The run-folder
options are those of `stackgan train`: --resume continues the latest checkpoint (a folder that holds
one is refused without it); Ctrl-C stops after the current step and writes a checkpoint first; a
NaN loss brings back the last good state at half the learning rates. The old spellings
--checkpoint-dir, --checkpoint-every, --keep-checkpoints and --lr still work.
"""

EPILOG = """\
examples:
  stackgan baseline-dcgan                                   # data/menu, 64x64, 25 epochs
  stackgan baseline-dcgan --data photos/ --image-size 96 --flip --label-noise 0.1
  stackgan baseline-dcgan --loss wgan-gp --n-critic 5 --lr 0.0001 --beta1 0 --beta2 0.9
  stackgan baseline-dcgan --max-steps 6000 --diffaugment color,translation,cutout
  stackgan baseline-dcgan --out runs/dcgan/menu-64x64 --resume --epochs 50
  stackgan generate --checkpoint runs/dcgan/menu-64x64 -n 64 --out dcgan.png
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from stackgan.dcgan_config import DCGANConfig

    p = subparsers.add_parser(
        "baseline-dcgan",
        help="train the unconditional DCGAN baseline (run folder, checkpoints, grids, --resume)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    DCGANConfig.add_arguments(p)
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (one line per epoch still)")
    add_trust_argument(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from stackgan.train.dcgan import train_dcgan
    from stackgan.dcgan_config import DCGANConfig

    apply_trust_argument(args)
    cfg = DCGANConfig.from_args(args)
    train_dcgan(cfg, progress=getattr(args, "progress", True))
    return 0
