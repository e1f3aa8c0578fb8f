"""The evaluation protocol: one function that scores a sampler against real photos.

Protocol (also written into every report):

1. Real photos are split by photo, stratified by name, into train and held-out parts.
2. An in-domain classifier is trained on the train part only (cached): heads base / topping /
   modifier when the data set has attributes (the menu), else one head over the names. Its
   penultimate layer is the feature space of FID/KID, diversity and memorisation; on a photo set
   its accuracy on the held-out photos is the ceiling for faithfulness.
   On the menu, faithfulness is read instead by the attribute reader: the same network trained on
   renders of every combination of the vocabulary (700, other render seeds than the menu's; cached),
   because the photo classifier only saw the training combinations and misreads invented ones.
   Its ceilings: accuracy on the held-out photos (training names) and on 8 true renders of each
   invented name (invented names).
3. Faithfulness: ``n_per_name`` pictures for each of up to ``max_names`` training names (and of
   each invented name: ``invented.tsv``, or the list given with ``--invented``), the fraction whose
   predicted parts / name match.
4. FID / KID on the classifier's penultimate features: one generated picture per held-out photo
   of the same name (so both sides have the same names in the same proportions) vs the held-out
   photos; the floor is an equally large, name-matched draw of train photos vs the same held-out set.
5. Diversity: mean pairwise feature distance within a name, generated vs real, and the ratio.
6. Memorisation: nearest train photo of every generated picture (features and 32 px pixels),
   against the same distance for held-out photos.
7. R-precision (StackGAN runs): each generated picture's image embedding ranks its own name
   among 1 true + 99 other names (all names when there are fewer), by cosine similarity.
8. D probe (StackGAN runs): an image optimised from noise to maximise D's match logit for a name.
9. Two-sample test (only with ``--two-sample N``): a small CNN trained N steps to tell half of the photos
   from as many generated pictures of the same names, scored on the other halves (0.5: indistinguishable).
10. Spectrum: the FID set's mean power spectrum against the held-out photos' at the pictures' own size,
   ring by ring as log10 power ratios (:mod:`stackgan.metrics.spectrum`): blur below 0 in the fine
   rings, more grain than the photos above (blind to phase: not the painterly look, README stop 53); the floor is
   the FID floor's training photos.
11. Patches: the FID set's 8 px patches against the held-out photos' at the pictures' own size, as improved
   precision and recall (:mod:`stackgan.metrics.patches`): precision under the floor for patches the photos
   never have (the painterly look's strokes, README stop 54), above it for blur; the floor is the FID floor's
   training photos.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from stackgan.metrics import diversity as div
from stackgan.metrics import fid as fidm
from stackgan.metrics.classifier import Classifier, ClassifierConfig, encode_labels, train_classifier
from stackgan.metrics.faithfulness import attribute_faithfulness, class_faithfulness
from stackgan.metrics.features import Sampler, sample_names, to_float
from stackgan.metrics.memorisation import memorisation, public, save_closest_pairs
from stackgan.metrics.patches import PATCH, patch_precision_recall, photo_manifold
from stackgan.metrics.realdata import PART_KEYS, RealData, load_real_data
from stackgan.metrics.registry import MetricContext, RunContext, register_metric, run_metrics
from stackgan.metrics.spectrum import BANDS, radial_spectrum, spectrum_gap
from stackgan.metrics.twosample import ProbeConfig, two_sample_test


@dataclasses.dataclass
class Protocol:
    """The knobs of :func:`evaluate_sampler` (a plain dataclass; the CLI config maps onto it)."""

    n_per_name: int = 8
    max_names: int = 48
    seed: int = 0
    kid_subsets: int = 50
    pixel_size: int = 32
    grid_names: int = 8
    fid_per_photo: int = 1
    detail_size: int = 0  # fid_detail: larger pictures are shrunk to this size before cropping; 0: their own
    two_sample: int = 0  # two_sample: optimiser steps of the probe; 0: the metric is skipped


def fit_classifier(data: RealData, config: ClassifierConfig, cache=True, device="cpu",
                   progress: bool = True) -> Classifier:
    """The attribute classifier (menu) or the name classifier (photo sets), trained on the train split."""
    if data.has_attributes:
        assert data.parts is not None
        targets, classes, val = {}, {}, {}
        for h in PART_KEYS:
            values = [data.parts[data.names[int(i)]][h] for i in data.train_labels]
            known = sorted({data.parts[n][h] for n in data.names})
            targets[h], classes[h] = encode_labels(values, known)
            val[h] = encode_labels([data.parts[data.names[int(i)]][h] for i in data.test_labels], known)[0]
        kind = "attributes"
    else:
        targets = {"name": data.train_labels}
        classes = {"name": list(data.names)}
        val = {"name": data.test_labels}
        kind = "names"
    return train_classifier(data.train_images, targets, classes, config, val_images=data.test_images,
                            val_targets=val, kind=kind, cache=cache, device=device, progress=progress)


def pick_names(names: Sequence[str], k: int, seed: int) -> list[str]:
    """Up to ``k`` names (all when ``k`` is 0), a fixed random choice for a seed, in the original order."""
    if k <= 0 or k >= len(names):
        return list(names)
    g = torch.Generator().manual_seed(seed)
    keep = sorted(torch.randperm(len(names), generator=g)[:k].tolist())
    return [names[i] for i in keep]


def name_matched_real(images: torch.Tensor, labels: torch.Tensor, want: torch.Tensor, seed: int) -> torch.Tensor:
    """A draw from ``images`` with the label counts of ``want`` (with replacement where a name is short)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for c, cnt in zip(*torch.unique(want, return_counts=True)):
        pool = torch.nonzero(labels == c).flatten()
        if len(pool) == 0:
            continue
        if len(pool) >= cnt:
            pick = pool[torch.randperm(len(pool), generator=g)[:cnt]]
        else:
            pick = pool[torch.randint(0, len(pool), (int(cnt),), generator=g)]
        out.append(pick)
    return images[torch.cat(out)] if out else images[:0]


def faithfulness(clf: Classifier, data: RealData, images: torch.Tensor, idx: torch.Tensor,
                 names: Sequence[str]) -> dict:
    if "name" in clf.classes:
        return class_faithfulness(clf, images, idx, names)
    return attribute_faithfulness(clf, images, idx, names, data.name_parts(list(names)))


def distances(clf: Classifier, gen: torch.Tensor, real: torch.Tensor, kid_subsets: int, seed: int) -> dict:
    """FID and KID between two image sets on the classifier's features, with both sample counts."""
    fa, fb = clf.features(gen), clf.features(real)
    kid, kid_std = fidm.kernel_inception_distance(fa, fb, subsets=kid_subsets, subset_size=1000, seed=seed)
    return {"fid": fidm.frechet_distance(fa, fb), "kid": kid, "kid_std": kid_std, "n_a": int(len(fa)),
            "n_b": int(len(fb))}


def pictures_per_photo(sampler: Sampler, names: Sequence[str], labels: torch.Tensor, seed: int,
                       per_photo: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_photo`` generated pictures for each photo label, of that photo's name, grouped by name in order
    (name j drawn with seed ``seed + 1000 * j``); with their labels."""
    counts = torch.bincount(labels, minlength=len(names)) * per_photo
    imgs, idx = [], []
    for j, cnt in enumerate(counts.tolist()):
        if cnt:
            imgs.append(to_float(sampler(names[j], cnt, seed + 1000 * j)).cpu())
            idx.append(torch.full((cnt,), j, dtype=torch.long))
    return torch.cat(imgs), torch.cat(idx)


def fid_set(sampler: Sampler, data: RealData, seed: int, per_photo: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """One generated picture per held-out photo, of that photo's name."""
    return pictures_per_photo(sampler, data.names, data.test_labels, seed + 500_000, per_photo)


# -- the metrics of any sampler (registered by name; see stackgan.metrics.registry) --------------------------
def _train_set(ctx: MetricContext) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The pictures of the training names scored: ``n_per_name`` each (faithfulness, diversity, memorisation)."""
    def make():
        names = pick_names(ctx.data.names, ctx.proto.max_names, ctx.proto.seed)
        ctx.say(f"{ctx.label}: generating {ctx.proto.n_per_name} pictures for {len(names)} training names")
        gen, idx = sample_names(ctx.sampler, names, ctx.proto.n_per_name, ctx.proto.seed)
        return gen, idx, names
    return ctx.shared("train_set", make)


def _fid_set(ctx: MetricContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(generated, their names, the name-matched draw of training photos that gives the floor)."""
    def make():
        data, proto = ctx.data, ctx.proto
        ctx.say(f"{ctx.label}: generating {len(data.test_labels) * proto.fid_per_photo} name-matched pictures "
                "for FID/KID")
        fgen, fidx = fid_set(ctx.sampler, data, proto.seed, proto.fid_per_photo)
        floor = name_matched_real(data.train_images, data.train_labels, fidx, proto.seed)
        return fgen, fidx, floor
    return ctx.shared("fid_set", make)


@register_metric("faithfulness", "the share of pictures whose name (photo sets) or parts (the menu) are read "
                                 "right, for training and invented names; grids of both")
def faithfulness_metric(ctx: MetricContext) -> dict:
    data, proto = ctx.data, ctx.proto
    gen, gen_idx, train_names = _train_set(ctx)
    faith_clf = ctx.reader if ctx.reader is not None else ctx.clf
    res: dict = {"faithfulness_train": faithfulness(faith_clf, data, gen, gen_idx, train_names)}
    inv_names = [n for n, _ in data.invented][: proto.max_names or None]
    inv = inv_idx = None
    if inv_names and data.has_attributes:
        def make():
            ctx.say(f"{ctx.label}: generating {proto.n_per_name} pictures for {len(inv_names)} invented names")
            return sample_names(ctx.sampler, inv_names, proto.n_per_name, proto.seed + 77)
        inv, inv_idx = ctx.shared("invented_set", make)
        res["faithfulness_invented"] = faithfulness(faith_clf, data, inv, inv_idx, inv_names)
    else:
        res["faithfulness_invented"] = None
    if ctx.out is not None:
        ctx.out.mkdir(parents=True, exist_ok=True)
        k = min(proto.grid_names, len(train_names))
        files = {"grid_train": _grid(gen, gen_idx, k, proto.n_per_name, ctx.out / f"{ctx.label}-train-names.png")}
        if inv is not None:
            files["grid_invented"] = _grid(inv, inv_idx, min(proto.grid_names, len(inv_names)), proto.n_per_name,
                                           ctx.out / f"{ctx.label}-invented-names.png")
        res["files"] = files
        res["grid_names"] = {"train": train_names[:k], "invented": inv_names[: proto.grid_names]}
    return res


@register_metric("fid_in_domain", "FID and KID between generated pictures (one per held-out photo, of its name) and "
                                  "the held-out photos on in-domain classifier features, with the floor of training "
                                  "photos")
def fid_in_domain(ctx: MetricContext) -> dict:
    fgen, _, floor = _fid_set(ctx)
    return {"fid": distances(ctx.clf, fgen, ctx.data.test_images, ctx.proto.kid_subsets, ctx.proto.seed),
            "fid_floor": distances(ctx.clf, floor, ctx.data.test_images, ctx.proto.kid_subsets, ctx.proto.seed)}


def detail_crops(images: torch.Tensor, size: int) -> torch.Tensor:
    """Five ``size`` px crops of each picture at its own resolution: the four corners, each inset by an
    eighth of the picture, and the centre (picture-major: crop k of every picture, then crop k + 1)."""
    s = images.shape[-1]
    lo, hi, mid = s // 8, s - s // 8 - size, (s - size) // 2
    if hi < lo:
        raise ValueError(f"crops of {size} px do not fit in {s} px pictures with an inset of {s // 8}")
    spots = [(lo, lo), (lo, hi), (hi, lo), (hi, hi), (mid, mid)]
    return torch.cat([images[..., a:a + size, b:b + size] for a, b in spots])


def shrink_like_photos(images: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] pictures -> ``size`` px, through the photos' own path: 8-bit, then
    :func:`stackgan.data.decode.fit_image` (the Lanczos resize every photo is loaded with), back to [-1, 1]."""
    from torchvision.transforms.functional import pil_to_tensor

    from stackgan.data.decode import fit_image
    from stackgan.utils.viz import to_pil, to_uint8

    return to_float(torch.stack([pil_to_tensor(fit_image(to_pil(a), (size, size))) for a in to_uint8(images)]))


def photos_at(ctx: MetricContext, size: int, why: str) -> RealData:
    """The evaluation's photos loaded again at ``size`` px (once per context), with the same split."""
    data = ctx.data

    def make():
        ctx.say(f"{ctx.label}: loading {data.root} at {size} px for {why}")
        return load_real_data(data.root, image_size=size, held_out=data.held_out, seed=data.split_seed,
                              progress=False)
    big = ctx.shared(f"real_{size}px", make)
    if big.names != data.names or len(big.test_images) != len(data.test_images):
        raise RuntimeError(f"{data.root} loaded at {size} px gave another split than at "
                           f"{data.test_images.shape[-1]} px")
    return big


def photos_of_size(ctx: MetricContext, size: int, why: str) -> RealData | None:
    """The evaluation's photos at ``size`` px: its own when they are that size, else loaded again with the same split
    (:func:`photos_at`); None when they are not and the data set has no folder or held-out part to load again."""
    data = ctx.data
    if size == data.test_images.shape[-1]:
        return data
    if not data.root or data.held_out <= 0:
        return None
    return photos_at(ctx, size, why)


def _fid_set_and_photos(ctx: MetricContext, why: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The FID set's pictures, the held-out photos at the pictures' size and the floor's name-matched training
    photos among those (both float); None when the photos cannot be had at that size (:func:`photos_of_size`)."""
    fgen, fidx, _ = _fid_set(ctx)
    data = photos_of_size(ctx, int(fgen.shape[-1]), why)
    if data is None:
        return None
    floor = name_matched_real(data.train_images, data.train_labels, fidx, ctx.proto.seed)
    return fgen, to_float(data.test_images), to_float(floor)


@register_metric("fid_detail", "pictures at least twice the classifier's input (stage II): FID/KID on crops of the "
                               "classifier's size taken at the pictures' own resolution (corners and centre), "
                               "against the held-out photos loaded at that size, with the floor of training photos: "
                               "the fine detail that the whole-picture FID, on shrunken copies, cannot see")
def fid_detail(ctx: MetricContext) -> dict | None:
    fgen, fidx, _ = _fid_set(ctx)
    own, crop = int(fgen.shape[-1]), int(ctx.clf.config.image_size)
    size = min(ctx.proto.detail_size or own, own)  # larger pictures are shrunk to it; smaller ones never enlarged
    data = ctx.data
    if size < 2 * crop or not data.root or data.held_out <= 0:
        return None
    if size < own:
        fgen = shrink_like_photos(fgen, size)
    big = photos_at(ctx, size, "the detail FID")
    floor = name_matched_real(big.train_images, big.train_labels, fidx, ctx.proto.seed)
    proto = ctx.proto
    real = detail_crops(big.test_images, crop)
    return {"fid_detail": {**distances(ctx.clf, detail_crops(fgen, crop), real, proto.kid_subsets, proto.seed),
                           "size": size, "crop": crop, "picture_size": own},
            "fid_detail_floor": distances(ctx.clf, detail_crops(floor, crop), real, proto.kid_subsets, proto.seed)}


@register_metric("spectrum", "the pictures' mean power spectrum (luma, rings from the lowest frequency to Nyquist) "
                             "against the held-out photos' at the pictures' own size, as log10 power ratios: their mean "
                             "distance and the fine half's (above 0: more grain than the photos; below: blur), with the "
                             "floor of training photos")
def spectrum_metric(ctx: MetricContext) -> dict | None:
    sets = _fid_set_and_photos(ctx, "the spectrum")
    if sets is None:
        return None
    fgen, photos, floor = sets
    bands = min(BANDS, int(fgen.shape[-1]) // 2)  # rings of at least one frequency step (tiny pictures have fewer)
    ref = radial_spectrum(photos, bands)
    return {"spectrum": spectrum_gap(fgen, photos, bands, photos_spectrum=ref),
            "spectrum_floor": spectrum_gap(floor, photos, bands, photos_spectrum=ref)}


@register_metric("patches", "improved precision and recall of the pictures' 8 px patches against the held-out "
                            "photos' at the pictures' own size (precision: the pictures' patches that look like some "
                            "photo's, under the floor for strokes the photos never have, above it for blur; recall: "
                            "the photos' patches the pictures cover), with the floor of training photos")
def patches_metric(ctx: MetricContext) -> dict | None:
    if int(_fid_set(ctx)[0].shape[-1]) < 2 * PATCH:  # pictures under two patches wide
        return None
    sets = _fid_set_and_photos(ctx, "the patch precision and recall")
    if sets is None:
        return None
    fgen, photos, floor = sets
    ref = photo_manifold(photos, seed=ctx.proto.seed)  # one manifold for the pictures and the floor
    return {"patches": patch_precision_recall(fgen, photos, seed=ctx.proto.seed, photo_patches=ref),
            "patches_floor": patch_precision_recall(floor, photos, seed=ctx.proto.seed, photo_patches=ref)}


@register_metric("two_sample", "with --two-sample N: a classifier two-sample test at the pictures' own size: a small "
                               "CNN trained N steps (batches of 32) on half of the photos (training and held-out) "
                               "against as many pictures of the same names, scored on the other halves (0.5: it "
                               "cannot tell them apart; 1: it always can); it sees the shapes that the FIDs miss")
def two_sample_metric(ctx: MetricContext) -> dict | None:
    data, proto = ctx.data, ctx.proto
    if not proto.two_sample:
        return None
    # one picture per photo (training and held-out), of its name; seeds apart from the other picture sets
    fake, _ = pictures_per_photo(ctx.sampler, data.names, torch.cat([data.train_labels, data.test_labels]),
                                 proto.seed + 700_000)
    size = int(fake.shape[-1])
    photos = photos_of_size(ctx, size, "the two-sample test")
    if photos is None:
        return None
    real = torch.cat([photos.train_images, photos.test_images])
    ctx.say(f"{ctx.label}: two-sample probe, {len(real)} photos against {len(fake)} pictures at {size} px")
    return {"two_sample": two_sample_test(real, fake, ProbeConfig(steps=proto.two_sample, seed=proto.seed))}


@register_metric("fid_inception", "the same on Inception features (only with --inception: a local torchvision or "
                                  "FID-Inception weights file)")
def fid_inception(ctx: MetricContext) -> dict | None:
    if ctx.inception is None:
        return None
    fgen, _, floor = _fid_set(ctx)
    proto = ctx.proto
    fa = fidm.inception_features(ctx.inception, fgen)
    fb = fidm.inception_features(ctx.inception, ctx.data.test_images)
    ff = fidm.inception_features(ctx.inception, floor)
    k, ks = fidm.kernel_inception_distance(fa, fb, subsets=proto.kid_subsets, seed=proto.seed)
    kf, kfs = fidm.kernel_inception_distance(ff, fb, subsets=proto.kid_subsets, seed=proto.seed)
    return {"inception": {"fid": fidm.frechet_distance(fa, fb), "kid": k, "kid_std": ks,
                          "floor_fid": fidm.frechet_distance(ff, fb), "floor_kid": kf, "floor_kid_std": kfs,
                          "n_generated": int(len(fa)), "n_heldout": int(len(fb)), "n_floor": int(len(ff)),
                          "weights": fidm.weights_note(ctx.inception)}}


@register_metric("diversity", "mean pairwise feature distance within a name, generated vs real photos, and the ratio")
def diversity_metric(ctx: MetricContext) -> dict:
    data, clf = ctx.data, ctx.clf
    gen, gen_idx, train_names = _train_set(ctx)
    real_imgs = torch.cat([data.train_images, data.test_images])
    real_lab = torch.cat([data.train_labels, data.test_labels])
    pos = {n: i for i, n in enumerate(train_names)}
    keep = torch.tensor([data.names[int(c)] in pos for c in real_lab], dtype=torch.bool)
    real_idx = torch.tensor([pos[data.names[int(c)]] for c in real_lab[keep]], dtype=torch.long)
    gen_feats = ctx.shared("train_feats", lambda: clf.features(gen))
    return {"diversity": div.diversity(gen_feats, gen_idx, clf.features(real_imgs[keep]), real_idx, train_names)}


@register_metric("memorisation", "distance from each generated picture to its nearest training photo (features and "
                                 "32 px pixels) against the same for held-out photos; the closest pairs")
def memorisation_metric(ctx: MetricContext) -> dict:
    data, clf, proto = ctx.data, ctx.clf, ctx.proto
    gen, _, _ = _train_set(ctx)
    gen_feats = ctx.shared("train_feats", lambda: clf.features(gen))
    mem = memorisation(gen, gen_feats, data.train_images, clf.features(data.train_images),
                       ref_images=data.test_images, ref_feats=clf.features(data.test_images),
                       pixel_size=proto.pixel_size)
    res: dict = {"memorisation": public(mem)}
    if ctx.out is not None:
        ctx.out.mkdir(parents=True, exist_ok=True)
        res["files"] = {
            "closest_feature": save_closest_pairs(gen, data.train_images, mem["_feature_dist"], mem["_feature_idx"],
                                                  ctx.out / f"{ctx.label}-closest-feature.png").name,
            "closest_pixel": save_closest_pairs(gen, data.train_images, mem["_pixel_dist"], mem["_pixel_idx"],
                                                ctx.out / f"{ctx.label}-closest-pixel.png").name}
    return res


def evaluate_sampler(sampler: Sampler, data: RealData, clf: Classifier, proto: Protocol | None = None,
                     out_dir: str | Path | None = None, label: str = "model",
                     inception: torch.nn.Module | None = None, progress: Callable[[str], None] | None = None,
                     reader: Classifier | None = None, metrics: list[str] | None = None,
                     run: RunContext | None = None, jsonl: str | Path | None = None) -> dict:
    """Score ``sampler`` on ``data`` with ``clf`` by the registered ``metrics`` (all when None); pictures
    go to ``out_dir`` (prefixed by ``label``), one JSON line per metric to ``jsonl`` when given.

    ``reader``: the classifier that reads faithfulness (the attribute reader of the menu); ``clf``
    when None. ``clf`` always gives the features of FID/KID, diversity and memorisation. ``run``: what
    the run-level metrics (R-precision, D probe) need; they are skipped without it.
    """
    t0 = time.perf_counter()
    ctx = MetricContext(sampler=sampler, data=data, clf=clf, proto=proto or Protocol(), reader=reader,
                        inception=inception, out=Path(out_dir) if out_dir else None, label=label,
                        say=progress or (lambda s: None), run=run)
    res: dict = {"label": label, **run_metrics(ctx, metrics, jsonl=jsonl)}
    res["generated_images"] = sum(int(len(ctx.cache[k][0])) for k in ("train_set", "invented_set", "fid_set")
                                  if k in ctx.cache)
    res["seconds"] = round(time.perf_counter() - t0, 2)
    return res


def _grid(images: torch.Tensor, idx: torch.Tensor, k: int, n: int, path: Path) -> str:
    """First ``k`` names, one row each of up to 8 pictures."""
    from stackgan.utils.viz import save_grid

    per = min(n, 8)
    rows = [images[idx == i][:per] for i in range(k)]
    save_grid(torch.cat(rows), path, nrow=per)
    return path.name
