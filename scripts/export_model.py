#!/usr/bin/env python
"""Copy what inference needs from a StackGAN run folder into a small model folder (e.g. models/default).

    python scripts/export_model.py runs/default-s2 models/default [--fp16]

It copies config.json, G_ema.safetensors (weights cast to fp16 with --fp16), names.json,
embeddings.safetensors, metrics.json when present, and for a stage-II run its stage1/ folder;
no checkpoints, optimiser states or samples. It then loads the result with
stackgan.inference.load_pipeline and draws one picture, so a broken export fails here. With --fp16
it also draws the same names and seeds from the fp32 run and refuses the export when the fp16
pictures differ (PSNR below 35 dB).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

FILES = ("config.json", "names.json", "embeddings.safetensors", "metrics.json")


def export_folder(src: Path, dst: Path, fp16: bool) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from stackgan.utils.io import atomic_save_safetensors

    dst.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    weights = load_file(src / "G_ema.safetensors")
    with safe_open(src / "G_ema.safetensors", "pt") as f:
        meta = dict(f.metadata() or {})  # the step and kind the run wrote
    if fp16:
        weights = {k: (v.half() if v.is_floating_point() else v) for k, v in weights.items()}
    meta["dtype"] = "float16" if fp16 else "float32"
    atomic_save_safetensors(weights, dst / "G_ema.safetensors", meta)


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
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export_folder(args.run, tmp, args.fp16)
    if (args.run / "stage1").is_dir():
        export_folder(args.run / "stage1", tmp / "stage1", args.fp16)

    from stackgan.inference import load_pipeline

    pipe = load_pipeline(tmp)
    res = pipe.generate(pipe.names[0] if pipe.names else "カツ丼", n=1, seed=0)
    assert res.stage1.isfinite().all()
    if args.fp16:  # fp16 only where it keeps the pictures: compare with the fp32 run, same names and seeds
        psnr = fp16_psnr(load_pipeline(args.run), pipe)
        print(f"fp16 vs fp32 pictures: PSNR {psnr:.1f} dB (lowest of 4 names x 4 seeds)")
        if psnr < MIN_PSNR:
            shutil.rmtree(tmp)
            print(f"error: fp16 weights change the pictures (PSNR {psnr:.1f} dB < {MIN_PSNR}); export without --fp16",
                  file=sys.stderr)
            return 1
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"exported {args.run} -> {args.out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
