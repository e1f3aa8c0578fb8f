"""`stackgan evaluate`: score a trained run on the fixed protocol and write eval.json + report.md."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import torch

from stackgan.metrics.classifier import Classifier, ClassifierConfig
from stackgan.metrics.config import EvaluateConfig, ProtocolOptions
from stackgan.metrics.evaluate import (Protocol, distances, evaluate_sampler, faithfulness, fid_set, fit_classifier,
                                      pick_names)
from stackgan.metrics.features import sample_names
from stackgan.metrics.registry import MetricContext, RunContext, parse_metrics, register_metric
from stackgan.metrics.reader import HELDOUT_SEED, TRAIN_SEED, ReaderConfig, is_menu_data, train_reader
from stackgan.metrics.realdata import PART_KEYS, RealData, invented_renders, load_real_data, read_name_list
from stackgan.metrics.runs import STACKGAN, RunInfo, checkpoints, d_probe, loss_plot, make_sampler, read_run


def protocol_of(cfg: ProtocolOptions) -> Protocol:
    return Protocol(n_per_name=cfg.n_per_name, max_names=cfg.max_names, seed=cfg.seed, kid_subsets=cfg.kid_subsets,
                    detail_size=cfg.detail_size, two_sample=cfg.two_sample)


def classifier_config(cfg: ProtocolOptions) -> ClassifierConfig:
    return ClassifierConfig(image_size=cfg.clf_size, width=cfg.clf_width, epochs=cfg.clf_epochs, seed=0)


def reader_config(cfg: ProtocolOptions) -> ReaderConfig:
    return ReaderConfig(renders=cfg.reader_renders, heldout=cfg.reader_heldout, draw_size=cfg.reader_draw_size,
                        image_size=cfg.image_size, input_size=cfg.reader_size, width=cfg.reader_width,
                        epochs=cfg.reader_epochs, blur=cfg.reader_blur, seed=0)


def check_invented_file(cfg: ProtocolOptions) -> None:
    """Read ``--invented`` once before any work, so a missing or malformed file fails first."""
    if cfg.invented:
        read_name_list(cfg.invented)


def apply_invented(cfg: ProtocolOptions, data: RealData) -> tuple[RealData, dict]:
    """The invented names scored: ``--invented FILE`` (replacing ``invented.tsv``) or the data set's own;
    and what was not scorable, with the reason."""
    from stackgan.errors import ConfigError

    if not cfg.invented:
        return data, {"source": str(Path(data.root) / "invented.tsv") if data.invented else None,
                      "names": len(data.invented), "not_scorable": []}
    if not data.has_attributes:
        raise ConfigError(f"--invented needs a menu data set (attributes.tsv with base, topping, modifier); "
                          f"{data.root} has none")
    names, bad = read_name_list(cfg.invented, set(data.names))
    return dataclasses.replace(data, invented=names), {"source": str(cfg.invented), "names": len(names),
                                                       "not_scorable": bad}


def fit_reader(cfg: ProtocolOptions, data: RealData, device, printer: Callable[[str], None]):
    """The attribute reader for a menu data set (None when ``--no-reader`` or the data set's parts are
    not the menu vocabulary: then the photo classifier reads faithfulness, as before)."""
    if not cfg.reader or not is_menu_data(data):
        return None
    reader = train_reader(reader_config(cfg), device=device, progress=cfg.progress, printer=printer)
    printer(f"attribute reader: held-out render accuracy {reader.metrics.get('heldout_accuracy')}")
    return reader


def prepare_real(cfg: ProtocolOptions, run_cfg: dict | None, printer: Callable[[str], None]
                 ) -> tuple[RealData, list[str]]:
    """The real data of an evaluation and notes about the split (whether the model saw the held-out photos)."""
    notes = []
    root = cfg.data or (run_cfg or {}).get("data")
    if not root:
        from stackgan.errors import ConfigError

        raise ConfigError("--data: the run does not say which data set it was trained on; give --data")
    held, seed = cfg.held_out, cfg.split_seed
    if run_cfg is not None:
        if run_cfg.get("held_out"):
            held = float(run_cfg["held_out"])
            seed = int(run_cfg.get("split_seed", run_cfg.get("seed", seed)))
            notes.append(f"held-out photos are the run's own held-out split ({held:.0%}, seed {seed}): "
                         "the generator never saw them.")
        else:
            notes.append("the run trained on every photo of the data set, so the generator has seen the "
                         "'held-out' photos; FID/KID against them and the memorisation reference are optimistic "
                         "for it. The classifier never saw them.")
    printer(f"loading {root} at {cfg.image_size} px")
    data = load_real_data(root, image_size=cfg.image_size, held_out=held, seed=seed, progress=cfg.progress)
    return data, notes


def data_summary(data: RealData, notes: list[str]) -> dict:
    return {"root": data.root, "names": len(data.names), "train": int(len(data.train_images)),
            "heldout": int(len(data.test_images)), "split_note": data.split_note, "invented": len(data.invented),
            "has_attributes": data.has_attributes, "notes": notes}


def classifier_summary(clf: Classifier, data: RealData | None = None,
                       renders: tuple[torch.Tensor, torch.Tensor] | None | bool = True) -> dict:
    """What the classifier is and how well it reads real pictures: held-out photos (the ceiling for
    training names) and, on the menu, true renders of the invented names (their ceiling).
    ``renders``: those renders (from :func:`invented_renders`), or True to draw them here."""
    out = {"kind": "attributes" if "name" not in clf.classes else "names", "heads": {h: len(c) for h, c in
                                                                                       clf.classes.items()},
           "train_images": clf.metrics.get("train_images"), "heldout_images": clf.metrics.get("heldout_images"),
           "heldout_accuracy": clf.metrics.get("heldout_accuracy", {}),
           "config": json.loads(clf.config.to_json()), "cache": str(clf.path) if clf.path else None}
    if renders is True:
        renders = invented_renders(data) if data is not None and data.has_attributes else None
    if renders is not None and renders is not False and data is not None:
        from stackgan.metrics.evaluate import faithfulness

        names = [n for n, _ in data.invented]
        f = faithfulness(clf, data, renders[0], renders[1], names)
        out["invented_accuracy"] = f["overall"]
        out["invented_images"] = f["images"]
    return out


def reader_summary(reader: Classifier, data: RealData,
                   renders: tuple[torch.Tensor, torch.Tensor] | None) -> dict:
    """The attribute reader: how it was trained, its accuracy on its own held-out renders (all
    combinations), and its ceilings: the held-out photos (training names) and the true renders of the
    invented names, as for the photo classifier."""
    from stackgan.metrics.classifier import encode_labels
    from stackgan.metrics.evaluate import faithfulness

    m = reader.metrics
    rc = m.get("reader") or {}
    out = {"kind": "attribute reader",
           "trained_on": f"renders of all {m.get('combinations')} combinations of the menu vocabulary, "
                         f"{rc.get('renders')} each, drawn at {rc.get('draw_size')} px and stored at "
                         f"{rc.get('image_size')} px (render seed {TRAIN_SEED + 2 * rc.get('seed', 0)}; held out: "
                         f"{rc.get('heldout')} each, seed {HELDOUT_SEED + 2 * rc.get('seed', 0)})"
                         + (f", blurred at random in training (Gaussian, sigma up to {rc['blur']:g} px, on "
                            f"{rc.get('blur_p', 0):.0%} of the batches)" if rc.get("blur") else ""),
           "heads": {h: len(c) for h, c in reader.classes.items()},
           "train_images": m.get("train_images"), "render_heldout_images": m.get("heldout_images"),
           "render_heldout_accuracy": m.get("heldout_accuracy", {}),
           "render_seconds": m.get("render_seconds"), "train_seconds": m.get("train_seconds"),
           "config": json.loads(reader.config.to_json()), "renders": rc,
           "cache": str(reader.path) if reader.path else None}
    assert data.parts is not None
    targets = {h: encode_labels([data.parts[data.names[int(i)]][h] for i in data.test_labels], reader.classes[h])[0]
               for h in PART_KEYS}
    out["heldout_accuracy"] = reader.accuracy(data.test_images, targets)
    out["heldout_images"] = int(len(data.test_images))
    if renders is not None:
        names = [n for n, _ in data.invented]
        f = faithfulness(reader, data, renders[0], renders[1], names)
        out["invented_accuracy"] = f["overall"]
        out["invented_images"] = f["images"]
    return out


def rprecision(desc: dict, data: RealData, clf: Classifier, proto: Protocol, printer) -> dict | None:
    """R-precision of a StackGAN run: with the text encoder's image side when it has one, else with a
    linear contrastive image encoder fitted on the real train photos (say which)."""
    from stackgan.metrics.rprecision import fit_projection, r_precision

    pipe = desc.get("pipeline")
    if pipe is None:
        return None
    names = list(data.names) + [n for n, _ in data.invented]
    try:
        text = torch.stack([pipe.embed(n) for n in names])
    except Exception as exc:  # noqa: BLE001 - e.g. the text encoder of the run is not installed here
        printer(f"R-precision skipped: cannot embed the names ({exc})")
        return None
    sub = pick_names(data.names, proto.max_names, proto.seed)
    idx_of = {n: i for i, n in enumerate(names)}
    enc = None
    try:
        enc = pipe.encoder()
    except Exception:  # noqa: BLE001
        enc = None
    gen, gi = sample_names(desc["sampler"], sub, proto.n_per_name, proto.seed + 13)
    true = torch.tensor([idx_of[sub[int(i)]] for i in gi])
    if enc is not None and hasattr(enc, "encode_images"):
        with torch.no_grad():
            img = enc.encode_images(gen).float()
        how = f"the text encoder's own image encoder ({pipe.cfg.text_encoder})"
    else:
        proj = fit_projection(clf.features(data.train_images), data.train_labels, text[: len(data.names)],
                              seed=proto.seed)
        with torch.no_grad():
            img = proj(clf.features(gen))
        how = ("a linear contrastive image encoder fitted on the real train photos' classifier features "
               f"(the text encoder {pipe.cfg.text_encoder!r} has no image side)")
        real = r_precision(proj(clf.features(data.test_images)), data.test_labels, text, seed=proto.seed)
    res = r_precision(img, true, text, seed=proto.seed)
    res["image_encoder"] = how
    if enc is None or not hasattr(enc, "encode_images"):
        res["real_heldout"] = real["r_precision"]
    if res["candidates"] < 100:
        res["note"] = f"only {len(names)} names exist: 1 true + {res['candidates'] - 1} others instead of 1 + 99"
    return res


@register_metric("rprecision", "R-precision: each picture's image embedding ranks its own name among 1 true + "
                               "99 other names (StackGAN runs)", needs_run=True)
def rprecision_metric(ctx: MetricContext) -> dict | None:
    rp = rprecision(ctx.run.desc, ctx.data, ctx.clf, ctx.proto, ctx.say)
    return {"rprecision": rp} if rp else None


@register_metric("dprobe", "D probe: a picture optimised from noise to maximise D's match score for a few names "
                           "(StackGAN runs; --dprobe-steps 0 skips it)", needs_run=True)
def dprobe_metric(ctx: MetricContext) -> dict | None:
    run = ctx.run
    if not run.dprobe_steps or ctx.out is None:
        return None
    ctx.say("D probe: activation maximisation of D's match score")
    names = pick_names(ctx.data.names, run.dprobe_names, ctx.proto.seed)
    dp = d_probe(run.info, names, ctx.out, ctx.label, steps=run.dprobe_steps, seed=ctx.proto.seed, device=run.device)
    return {"dprobe": dp} if dp else None


def checkpoint_series(info: RunInfo, data: RealData, clf: Classifier, proto: Protocol, k: int, device,
                      stage: str, printer, truncation: float = 1.0, reader: Classifier | None = None,
                      parts_sentence: str | None = None) -> list[dict]:
    """FID, KID and faithfulness of up to ``k`` checkpoints (evenly spaced, the last one included)."""
    cks = checkpoints(info.folder)
    if k <= 0 or not cks:
        return []
    if len(cks) > k:
        pick = [cks[round(i * (len(cks) - 1) / (k - 1))] for i in range(k)] if k > 1 else [cks[-1]]
        cks = list(dict.fromkeys(pick))
    light = Protocol(n_per_name=min(proto.n_per_name, 4), max_names=min(proto.max_names or 16, 16), seed=proto.seed,
                     kid_subsets=min(proto.kid_subsets, 20))
    out = []
    for step, path in cks:
        printer(f"checkpoint {path.name}")
        sampler, _ = make_sampler(path, info.kind, device, stage, truncation, parts_sentence)
        fgen, _ = fid_set(sampler, data, light.seed)
        d = distances(clf, fgen, data.test_images, light.kid_subsets, light.seed)
        names = pick_names(data.names, light.max_names, light.seed)
        gen, gi = sample_names(sampler, names, light.n_per_name, light.seed)
        f = faithfulness(reader if reader is not None else clf, data, gen, gi, names)
        faith = f["overall"] if isinstance(f["overall"], float) else f["overall"].get("all")
        out.append({"step": step, "fid": d["fid"], "kid": d["kid"], "faith": faith, "n": d["n_a"]})
    return out


def evaluate_run(cfg: EvaluateConfig, printer: Callable[[str], None] = print, command: str | None = None) -> dict:
    """``command``: the command line that asked for it, recorded in the report (the CLI passes it)."""
    from stackgan.metrics.report import plot_series, write_report
    from stackgan.utils.device import resolve_device

    metrics = parse_metrics(cfg.metrics)  # a bad name fails before any work
    device = resolve_device(cfg.device)
    info = read_run(cfg.run)
    sampler, desc = make_sampler(info.path, info.kind, device, cfg.stage, cfg.truncation,
                                 cfg.parts_sentence)  # bad options fail first
    desc["sampler"] = sampler
    check_invented_file(cfg)
    out = Path(cfg.out) if cfg.out else info.folder / "eval"
    out.mkdir(parents=True, exist_ok=True)
    data, notes = prepare_real(cfg, info.config, printer)
    data, invented = apply_invented(cfg, data)
    say_not_scorable(invented, printer)
    printer(f"{len(data.names)} names, {len(data.train_images)} train / {len(data.test_images)} held-out photos; "
            f"training or loading the {'attribute' if data.has_attributes else 'name'} classifier")
    clf = fit_classifier(data, classifier_config(cfg), device=device, progress=cfg.progress)
    printer(f"classifier held-out accuracy: {clf.metrics.get('heldout_accuracy')}")
    reader = fit_reader(cfg, data, device, printer)
    inception = None
    if cfg.inception:
        from stackgan.metrics.fid import load_inception

        inception = load_inception(cfg.inception, device)
    proto = protocol_of(cfg)
    label = "stackgan" if info.kind == STACKGAN else "dcgan"
    if info.kind == STACKGAN:
        label += f"-stage{desc['stage']}" + (f"-truncation{cfg.truncation:g}" if cfg.truncation != 1.0 else "")
        label += f"-parts-sentence-{cfg.parts_sentence}" if cfg.parts_sentence else ""
    run = RunContext(info=info, desc=desc, device=device, dprobe_steps=cfg.dprobe_steps,
                     dprobe_names=cfg.dprobe_names) if info.kind == STACKGAN else None
    res = evaluate_sampler(sampler, data, clf, proto, out, label, inception=inception, progress=printer,
                           reader=reader, metrics=metrics, run=run, jsonl=out / "metrics.jsonl")
    res["training"] = info.training()
    res["model"] = {k: v for k, v in desc.items() if k not in ("pipeline", "sampler")}
    lp = loss_plot(info, out, label)
    if lp:
        res.setdefault("files", {})["losses"] = lp
    results = {"command": command, "run": str(info.path), "data": data_summary(data, notes),
               **summaries(clf, reader, data, invented), "protocol": vars(proto), "metrics": metrics,
               "models": {label: res}}
    if cfg.checkpoints and info.path.is_dir():
        series = checkpoint_series(info, data, clf, proto, cfg.checkpoints, device, cfg.stage, printer,
                                   cfg.truncation, reader, cfg.parts_sentence)
        if series:
            results["checkpoints"] = series
            results["checkpoint_plot"] = plot_series(series, ["fid", "kid", "faith"], out / "checkpoints.png",
                                                     f"{label} across checkpoints").name
    js, md = write_report(results, out, f"Evaluation of {info.path}", stem="eval")
    if cfg.write_run_metrics and info.path.is_dir():
        from stackgan.metrics.report import write_json

        missing = [m for m in COMPACT_METRICS if m not in metrics]
        if missing:
            printer(f"metrics.json not written: it needs the metrics {', '.join(missing)} (--metrics)")
        else:
            write_json(compact(results, label), info.folder / "metrics.json")
    results["_files"] = {"json": str(js), "report": str(md)}
    return results


def summaries(clf: Classifier, reader: Classifier | None, data: RealData, invented: dict) -> dict:
    """The ``classifier``, ``reader`` and ``invented_names`` sections of a report (the invented names'
    true renders are drawn once, for both ceilings)."""
    renders = invented_renders(data) if data.has_attributes else None
    out = {"classifier": classifier_summary(clf, data, renders)}
    out["classifier"]["used_for"] = ("FID/KID, diversity and memorisation features" if reader is not None else
                                     "faithfulness, FID/KID, diversity and memorisation features")
    if reader is not None:
        out["reader"] = reader_summary(reader, data, renders)
        out["reader"]["used_for"] = "faithfulness (training and invented names) and its ceilings"
    out["invented_names"] = invented
    return out


def say_not_scorable(invented: dict, printer: Callable[[str], None]) -> None:
    bad = invented.get("not_scorable") or []
    if bad:
        printer(f"{len(bad)} of the names in {invented['source']} are not scorable:")
        for b in bad:
            printer(f"  line {b['line']}: {b['name'] or '(empty)'}: {b['reason']}")


COMPACT_METRICS = ("faithfulness", "fid_in_domain", "diversity")  # what metrics.json (and /api/model) shows


def _reader_words(reader: dict) -> str:
    blur = (reader.get("renders") or {}).get("blur")
    return "attribute reader (renders of every combination" + (f", blurred up to {blur:g} px in training)" if blur
                                                              else ")")


def compact(results: dict, label: str) -> dict:
    """The few numbers /api/model shows: faithfulness, in-domain FID/KID with the floor, diversity."""
    r = results["models"][label]
    ft, fi = r["faithfulness_train"], r.get("faithfulness_invented")
    return {
        "scored": label, "data": results["data"]["root"], "names": results["data"]["names"],
        "classifier_heldout_accuracy": results["classifier"]["heldout_accuracy"],
        **({"classifier_invented_accuracy": results["classifier"]["invented_accuracy"]}
           if results["classifier"].get("invented_accuracy") else {}),
        **({"reader_heldout_accuracy": results["reader"]["heldout_accuracy"],
            "reader_invented_accuracy": results["reader"].get("invented_accuracy")} if results.get("reader") else {}),
        "faithfulness_read_by": (_reader_words(results["reader"]) if results.get("reader")
                                 else "in-domain classifier (training photos)"),
        "faithfulness_train": ft["overall"], "faithfulness_invented": fi["overall"] if fi else None,
        **({"invented_names": results["invented_names"]["source"]}
           if (results.get("invented_names") or {}).get("source") else {}),
        "fid_in_domain": r["fid"]["fid"], "fid_floor": r["fid_floor"]["fid"], "kid_in_domain": r["fid"]["kid"],
        "fid_samples": {"generated": r["fid"]["n_a"], "heldout": r["fid"]["n_b"]},
        **({"fid_detail": r["fid_detail"]["fid"], "fid_detail_floor": r["fid_detail_floor"]["fid"]}
           if r.get("fid_detail") else {}),
        **({"spectrum_distance": r["spectrum"]["distance"], "spectrum_fine": r["spectrum"]["fine"],
            "spectrum_floor_distance": r["spectrum_floor"]["distance"]} if r.get("spectrum") else {}),
        **({"patch_precision": r["patches"]["precision"], "patch_recall": r["patches"]["recall"],
            "patch_floor_precision": r["patches_floor"]["precision"], "patch_floor_recall": r["patches_floor"]["recall"]}
           if r.get("patches") else {}),
        **({"two_sample_accuracy": r["two_sample"]["accuracy"], "two_sample_log_loss": r["two_sample"].get("log_loss")}
           if r.get("two_sample") else {}),
        "diversity_ratio": r["diversity"]["ratio"], "note": "FID/KID on in-domain classifier features, not Inception",
    }
