"""Where a two-stage model's look comes from: its stage II shown real photos shrunk to stage I's size.

Stage II draws its picture from a stage-I picture. Shown the training photos (renders) average-pooled to stage
I's size instead — a perfect stage I — it draws what it would draw if stage I were the photos; shown its own
stage I, what it draws today. The script scores five sets against the held-out photos with `stackgan
evaluate`'s detail FID (five crops of the classifier's size at the pictures' own size, on the evaluator's
classifier, from its cache), one picture per held-out photo with that photo's name:

    floor                  training photos (the evaluator's detail floor)
    photos pooled, bilinear  the training photos pooled to stage I's size and enlarged bilinearly
    photos pooled, stage II  the same pooled photos redrawn by the model's stage II
    own stage I, bilinear    the model's stage I enlarged bilinearly
    own stage II             the model's pictures (the evaluator's fid_detail)

and writes a grid: photos / photos pooled and enlarged / stage II on the pooled photos / the model's own
pictures of the same names (seed 0), one column per photo.

    .venv/bin/python scripts/stage2_on_renders.py MODEL [--data data/menu] [--out runs/stage2-on-renders]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stackgan.inference import load_pipeline  # noqa: E402
from stackgan.metrics.config import ProtocolOptions  # noqa: E402
from stackgan.metrics.evaluate import detail_crops, distances, fit_classifier, name_matched_real  # noqa: E402
from stackgan.metrics.features import to_float  # noqa: E402
from stackgan.metrics.realdata import load_real_data  # noqa: E402
from stackgan.metrics.runeval import classifier_config  # noqa: E402
from stackgan.utils.viz import save_grid  # noqa: E402

SETS = ("floor", "photos pooled, bilinear", "photos pooled, stage II", "own stage I, bilinear", "own stage II")


def enlarge(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a two-stage run folder or exported model")
    ap.add_argument("--data", default="data/menu", help="the photo folder the model was trained on")
    ap.add_argument("--held-out", type=float, default=0.2, help="its held-out share (the run's --held-out)")
    ap.add_argument("--split-seed", type=int, default=0, help="its split seed (the run's --split-seed)")
    ap.add_argument("--clf-size", type=int, default=48, help="classifier input and crop size (evaluate's)")
    ap.add_argument("--clf-epochs", type=int, default=16, help="classifier epochs (evaluate's)")
    ap.add_argument("--grid", type=int, default=6, help="columns of the grid (photos, evenly spread)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the crops' KID subsets and of stage II's noise")
    ap.add_argument("--out", default="runs/stage2-on-renders", help="folder for stage2_on_renders.json and .png")
    args = ap.parse_args(argv)
    pipe = load_pipeline(args.model)
    if pipe.g2 is None:
        print("stage2_on_renders.py: needs a two-stage model (stage I and stage II)", file=sys.stderr)
        return 2
    low, size = pipe.cfg1.image_size, pipe.image_size[0]
    if size < 2 * args.clf_size:
        print(f"stage2_on_renders.py: the detail crops need pictures at least twice the classifier's input "
              f"({args.clf_size} px); this model draws {size} px", file=sys.stderr)
        return 2
    opts = ProtocolOptions(data=args.data, held_out=args.held_out, split_seed=args.split_seed,
                           clf_size=args.clf_size, clf_epochs=args.clf_epochs)
    small = load_real_data(args.data, image_size=opts.image_size, held_out=args.held_out, seed=args.split_seed,
                           progress=False)
    big = load_real_data(args.data, image_size=size, held_out=args.held_out, seed=args.split_seed, progress=False)
    clf = fit_classifier(small, classifier_config(opts), device="cpu", progress=False)
    real = detail_crops(big.test_images, args.clf_size)
    photos = to_float(name_matched_real(big.train_images, big.train_labels, big.test_labels, args.seed))
    names = [big.names[i] for i in big.test_labels.sort().values.tolist()]  # the draw is grouped by name, in order
    pooled = F.avg_pool2d(photos, size // low)
    g = torch.Generator().manual_seed(args.seed)
    redrawn, own1, own2 = [], [], []
    with torch.inference_mode():
        for i in range(0, len(photos), 64):
            emb = torch.stack([pipe.embed(n) for n in names[i:i + 64]])
            eps = torch.randn(len(emb), pipe.cfg.c_dim, generator=g)
            redrawn.append(pipe.g2(pooled[i:i + 64], emb, eps)[0].float().clamp(-1, 1))
        counts = torch.bincount(big.test_labels, minlength=len(big.names)).tolist()
        for j, c in enumerate(counts):
            if c:  # the evaluator's seeds for the FID set
                r = pipe.generate(big.names[j], c, seed=500_000 + 1000 * j)
                own1.append(r.stage1)
                own2.append(r.images)
    pictures = dict(zip(SETS, (photos, enlarge(pooled, size), torch.cat(redrawn), enlarge(torch.cat(own1), size),
                               torch.cat(own2))))
    fid = {k: distances(clf, detail_crops(v, args.clf_size), real, opts.kid_subsets, args.seed)["fid"]
           for k, v in pictures.items()}
    print(f"detail FID ({len(photos)} pictures, {args.clf_size} px crops at {size} px) against the held-out photos")
    for k, v in fid.items():
        print(f"{k:26s} {v:8.2f} = {v / fid['floor']:6.2f}x the floor")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pick = torch.linspace(0, len(photos) - 1, min(args.grid, len(photos))).long()
    with torch.inference_mode():
        mine = torch.cat([pipe.generate(names[int(i)], 1, seed=0).images for i in pick])
    rows = [pictures[k][pick] for k in SETS[:3]] + [mine]
    save_grid(torch.cat(rows), out / "stage2_on_renders.png", nrow=len(pick))
    (out / "stage2_on_renders.json").write_text(json.dumps(
        {"model": str(args.model), "data": str(args.data), "size": size, "stage1_size": low,
         "pictures": len(photos), "detail_fid": fid, "grid_rows": [*SETS[:3], "own pictures, seed 0"],
         "grid_names": [names[int(i)] for i in pick]},
        ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out / 'stage2_on_renders.png'} and {out / 'stage2_on_renders.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
