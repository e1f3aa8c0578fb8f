"""`stackgan train --stage 1|2`: train one StackGAN stage into a run folder."""

from __future__ import annotations

import argparse

from stackgan.commands import add_trust_argument, apply_trust_argument

DESCRIPTION = """\
Train a StackGAN stage (Zhang et al. 2017) on a photo folder whose photos carry dish names.

Stage 1 draws a 64 px picture (16/32 with --image-size) from a name's sentence vector and noise;
stage 2 (--stage 2 --stage1 RUN) redraws a frozen stage-I picture at 256 px (or 128 with
--stage2-size 128). The names are embedded once with --text-encoder (cached beside the data);
conditioning augmentation (--c-dim, --kl), a matching-aware discriminator (real / other dish's
name / fake; --loss bce|hinge) and DiffAugment (--diffaugment, --ada) are on by default.

The run folder (--out) gets config.json, atomic checkpoints ckpt-STEP.pt, G_ema.safetensors (with
names.json + embeddings.safetensors, enough for `stackgan generate` and the web page), log.jsonl
(losses, timings, diversity), a fixed grid samples/STEP.png (rows: names incl. invented ones from
<data>/invented.tsv; columns: fixed z; stage 2 shows stage-I beside stage-II pictures),
losses.png and progress.gif. --resume continues the latest checkpoint; Ctrl-C stops after the
current step and writes a checkpoint. --max-minutes M stops at the first step after M minutes of
training (summed over resumptions) with a checkpoint and a final grid; timing.json records the
steps, the time and why the run stopped. --precision auto trains in bf16 (autocast, channels_last)
on CUDA and on CPUs with native bf16, about twice as fast as fp32 at the same quality.
"""

EPILOG = """\
examples:
  stackgan train --stage 1 --data data/menu --ngf 32 --ndf 32 --batch-size 32 --max-steps 3000
  stackgan train --stage 2 --stage1 runs/stage1-menu --ngf 32 --ndf 16 --stage2-size 128
  stackgan train --stage 1 --out runs/stage1-menu --resume --max-steps 6000
  stackgan train --stage 1 --ngf 32 --ndf 32 --batch-size 32 --max-steps 0 --max-minutes 30 --out runs/s1-30min
  stackgan train --stage 1 --loss hinge --ada --device cuda --ngf 128 --ndf 64 --batch-size 64
  stackgan generate --checkpoint runs/stage1-menu ピリ辛サーモン丼 -n 8 --out salmon.png
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from stackgan.stackgan_config import StackGANConfig

    p = subparsers.add_parser(
        "train",
        help="train StackGAN stage 1 or 2 (run folder, checkpoints, grids, --resume)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    StackGANConfig.add_arguments(p)
    add_trust_argument(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import math

    from stackgan.train.stackgan import train
    from stackgan.stackgan_config import StackGANConfig

    apply_trust_argument(args)
    cfg = StackGANConfig.from_args(args)
    summary = train(cfg)
    last = summary.get("last") or {}
    div = summary.get("diversity") or {}

    def f(v, spec=".3f"):
        return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"

    print(f"done: {summary['run']} at step {summary['step']} ({summary['steps_this_run']} steps in "
          f"{summary['seconds']:.0f} s, {f(summary['img_s'], '.1f')} img/s); "
          f"D {f(last.get('d_loss'))}, G adv {f(last.get('g_adv'))}, KL {f(last.get('kl'))}; "
          f"diversity {f(div.get('div_gen'))} vs real {f(div.get('div_real'))} "
          f"(ratio {f(div.get('div_ratio'), '.2f')})")
    return 0
