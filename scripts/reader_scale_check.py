"""Does the attribute reader read the same picture alike at 64 and 128 px?

Draws the invented names of ``<data>/invented.tsv`` with a two-stage model and reads four versions of the
same pictures with the attribute reader (the one `stackgan evaluate` uses, from its cache): stage I (64 px),
stage II (128 px), stage I upsampled bilinearly to 128 px (no new detail at all), and stage II average-pooled
to 64 px. If the upsampled stage I reads worse than stage I, a drop from stage I to stage II says as much
about the reader's scale and blur as about stage II.

    .venv/bin/python scripts/reader_scale_check.py RUN_OR_MODEL [--seeds 8] [--data data/menu] [--soft]

``--soft`` reads them with a reader trained on the same renders with a random Gaussian blur (sigma 0.1-1.2 px,
60% of the batches): not cached (about 5 minutes on 2 cores); it prints its held-out accuracy on crisp renders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stackgan.inference import load_pipeline  # noqa: E402
from stackgan.metrics.reader import train_reader  # noqa: E402
from stackgan.metrics.realdata import read_invented  # noqa: E402

HEADS = ("base", "topping", "modifier")


def soft_reader():
    """The attribute reader's recipe with a random blur of its training renders (not cached)."""
    import kornia.augmentation as K
    from torch import nn

    from stackgan.metrics.classifier import train_classifier
    from stackgan.metrics.reader import ReaderConfig, render_set, vocabulary

    cfg = ReaderConfig()
    x, y, _ = render_set(cfg, "train", True, False, None)
    xv, yv, _ = render_set(cfg, "heldout", True, False, None)
    blur = nn.Sequential(K.RandomGaussianBlur((5, 5), (0.1, 1.2), p=0.6))
    clf = train_classifier(x, y, vocabulary(), cfg.classifier_config(),
                           val_images=xv, val_targets=yv, kind="reader-soft", cache=False, progress=False,
                           augmenter=blur)
    held = clf.metrics.get("heldout_accuracy", {})
    print("soft reader, held-out crisp renders: " + " / ".join(f"{held.get(h, float('nan')):.3f}"
                                                             for h in (*HEADS, "all")))
    return clf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a two-stage run folder or exported model")
    ap.add_argument("--data", default="data/menu", help="menu data folder with invented.tsv")
    ap.add_argument("--seeds", type=int, default=8, help="pictures per name (seeds 0..N-1)")
    ap.add_argument("--soft", action="store_true", help="a reader trained with random blur on its renders")
    args = ap.parse_args(argv)
    pipe = load_pipeline(args.model)
    if pipe.g2 is None:
        print("reader_scale_check.py: needs a two-stage model", file=sys.stderr)
        return 2
    rows = read_invented(Path(args.data) / "invented.tsv")
    reader = soft_reader() if args.soft else train_reader(progress=False)
    versions: dict[str, list[torch.Tensor]] = {"stage I (64 px)": [], "stage II (128 px)": [],
                                               "stage I upsampled to 128 px": [], "stage II pooled to 64 px": []}
    truth: dict[str, list[str]] = {h: [] for h in HEADS}
    for name, parts in rows:
        r = pipe.generate(name, args.seeds, seed=0)
        versions["stage I (64 px)"].append(r.stage1)
        versions["stage II (128 px)"].append(r.images)
        versions["stage I upsampled to 128 px"].append(
            F.interpolate(r.stage1, scale_factor=r.images.shape[-1] // r.stage1.shape[-1], mode="bilinear",
                          align_corners=False))
        versions["stage II pooled to 64 px"].append(F.avg_pool2d(r.images, r.images.shape[-1] // r.stage1.shape[-1]))
        for h in HEADS:
            truth[h] += [parts[h]] * args.seeds
    print(f"{len(rows)} invented names x {args.seeds} seeds, read by the attribute reader: base / topping / modifier")
    for label, pics in versions.items():
        pred = reader.predict_labels(torch.cat(pics))
        acc = [sum(a == b for a, b in zip(pred[h], truth[h])) / len(truth[h]) for h in HEADS]
        print(f"{label:30s} " + " / ".join(f"{a:.3f}" for a in acc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
