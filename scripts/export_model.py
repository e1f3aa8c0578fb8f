#!/usr/bin/env python
"""Copy what inference needs from a StackGAN run folder into a small model folder (e.g. models/default).

    python scripts/export_model.py runs/default-s2 models/default [--fp16]

It writes the run's pipeline with ``save_pretrained`` (the same as ``StackGANPipeline.save_pretrained``):
config.json, G_ema.safetensors (weights cast to fp16 with --fp16), names.json, embeddings.safetensors,
metrics.json when present, and for a stage-II run its stage1/ folder; no checkpoints, optimiser
states or samples. It then loads the result and draws one picture, so a broken export fails here.
With --fp16 it first draws the same names and seeds in fp16 and fp32 and refuses the export when
the fp16 pictures differ (PSNR below 35 dB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MIN_PSNR = 35.0  # dB, on [-1, 1] pictures: below it fp16 is visibly different


def fp16_psnr(ref, half, names: int = 4) -> float:
    """The lowest PSNR (dB) of ``half``'s pictures against ``ref``'s, over the run's first training
    names and 4 seeds each (the final stage's pictures)."""
    import math

    worst = math.inf
    for name in ref.names[:names]:
        a, b = ref.generate(name, n=4, seed=0).images, half.generate(name, n=4, seed=0).images
        mse = float(((a.float() - b.float()) ** 2).mean())
        worst = min(worst, math.inf if mse == 0 else 10 * math.log10(4.0 / mse))  # peak-to-peak range 2
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="stage-I or stage-II run folder")
    ap.add_argument("out", type=Path, help="model folder to write (replaced)")
    ap.add_argument("--fp16", action="store_true", help="store the generator weights as float16")
    args = ap.parse_args(argv)
    if not (args.run / "G_ema.safetensors").is_file():
        print(f"error: {args.run} has no G_ema.safetensors (is it a finished StackGAN run?)", file=sys.stderr)
        return 2
    from stackgan.errors import UserError
    from stackgan.inference import load_pipeline

    ref = load_pipeline(args.run)
    if args.fp16:  # fp16 only where it keeps the pictures: compare with the fp32 run, same names and seeds
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            half = load_pipeline(ref.save_pretrained(Path(tmp) / "model", fp16=True))
            psnr = fp16_psnr(ref, half)
        print(f"fp16 vs fp32 pictures: PSNR {psnr:.1f} dB (lowest of 4 names x 4 seeds)")
        if psnr < MIN_PSNR:
            print(f"error: fp16 weights change the pictures (PSNR {psnr:.1f} dB < {MIN_PSNR}); export without --fp16",
                  file=sys.stderr)
            return 1
    try:
        ref.save_pretrained(args.out, fp16=args.fp16)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pipe = load_pipeline(args.out)  # a broken export fails here
    res = pipe.generate(pipe.names[0] if pipe.names else "カツ丼", n=1, seed=0)
    assert res.stage1.isfinite().all()
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"exported {args.run} -> {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
