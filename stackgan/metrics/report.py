"""Results to JSON and to a Markdown report (tables, grids, plots), for one model or side by side."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from stackgan.metrics.evaluate import __doc__ as PROTOCOL_DOC
from stackgan.utils.viz import save_figure

FID_NOTE = ("FID and KID here are computed on the penultimate features of the in-domain classifier "
            "trained on this data set, **not on Inception features**: they are comparable only between models "
            "evaluated on the same data with the same classifier, never with published Inception-FID numbers.")


def protocol_text() -> str:
    doc = PROTOCOL_DOC or ""
    i = doc.find("Protocol")
    return doc[i:].split(":", 1)[1].strip() if i >= 0 else doc.strip()


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


def write_json(results: dict, path: str | os.PathLike) -> Path:
    from stackgan.utils.io import atomic_write_text

    return atomic_write_text(path, json.dumps(jsonable(results), ensure_ascii=False, indent=2) + "\n")


def _f(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _g(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def metric_rows(results: dict) -> list[tuple[str, list[str]]]:
    """(row label, one cell per model) for the metrics table."""
    models = results["models"]
    labels = list(models)
    clf = results.get("reader") or results.get("classifier", {})  # whatever read faithfulness gives its ceilings
    ceiling = clf.get("heldout_accuracy", {})
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn) -> None:
        cells = []
        for m in labels:
            try:
                cells.append(fn(models[m]))
            except (KeyError, TypeError):
                cells.append("–")
        if any(c != "–" for c in cells):
            rows.append((label, cells))

    heads = [h for h in ("base", "topping", "modifier", "all", "name") if h in ceiling]
    for split in ("train", "invented"):
        key = f"faithfulness_{split}"
        for h in heads:
            lab = {"name": "class accuracy", "all": "all parts right"}.get(h, f"{h} accuracy")
            sub = f"{split} names"

            def cell(r, h=h, key=key):
                fr = r[key]
                val = fr["overall"] if h == "name" else fr["overall"][h]
                return f"{_f(val)} ({fr['names']}×{fr['images'] // max(fr['names'], 1)})"

            top = (clf.get("invented_accuracy") or ceiling) if split == "invented" else ceiling
            add(f"{lab}, {sub} (ceiling {_f(top.get(h))})", cell)
    add("FID in-domain: generated vs held-out", lambda r: f"{_f(r['fid']['fid'], 2)} ({r['fid']['n_a']} vs {r['fid']['n_b']})")
    add("FID in-domain floor: train vs held-out",
        lambda r: f"{_f(r['fid_floor']['fid'], 2)} ({r['fid_floor']['n_a']} vs {r['fid_floor']['n_b']})")
    add("KID in-domain: generated vs held-out",
        lambda r: f"{_g(r['fid']['kid'])} ± {_g(r['fid']['kid_std'])} ({r['fid']['n_a']} vs {r['fid']['n_b']})")
    add("KID in-domain floor", lambda r: f"{_g(r['fid_floor']['kid'])} ± {_g(r['fid_floor']['kid_std'])} "
                                         f"({r['fid_floor']['n_a']} vs {r['fid_floor']['n_b']})")
    def shrunk(d: dict) -> str:
        own = d.get("picture_size", d["size"])
        return f" (the {own} px pictures shrunk)" if own != d["size"] else ""

    add("FID in detail: crops of the classifier's size at the pictures' own size, generated vs held-out",
        lambda r: f"{_f(r['fid_detail']['fid'], 2)} ({r['fid_detail']['crop']} px crops of {r['fid_detail']['size']} px"
                  f"{shrunk(r['fid_detail'])}; {r['fid_detail']['n_a']} vs {r['fid_detail']['n_b']})")
    add("FID in detail floor: train vs held-out",
        lambda r: f"{_f(r['fid_detail_floor']['fid'], 2)} ({r['fid_detail_floor']['n_a']} vs {r['fid_detail_floor']['n_b']})")

    def spectrum(d: dict) -> str:
        return (f"distance {_f(d['distance'], 3)}, fine half {d['fine']:+.3f} = {10 ** d['fine']:.2f}x the power "
                f"({d['size']} px; {d['n_a']} vs {d['n_b']})")

    add("power spectrum against held-out, log10 per ring (fine half: above 0 grain, below 0 blur)",
        lambda r: spectrum(r["spectrum"]))
    add("power spectrum floor: train vs held-out", lambda r: spectrum(r["spectrum_floor"]))

    def patches(d: dict) -> str:
        return (f"precision {_f(d['precision'], 3)}, recall {_f(d['recall'], 3)} ({d['patch']} px patches of "
                f"{d['size']} px; {d['n_a']} vs {d['n_b']})")

    add("patches against held-out (precision under the floor: strokes the photos never have; above it: blur)",
        lambda r: patches(r["patches"]))
    add("patches floor: train vs held-out", lambda r: patches(r["patches_floor"]))
    add("two-sample probe: accuracy telling held-back photos from pictures (0.5: it cannot)",
        lambda r: f"{_f(r['two_sample']['accuracy'])} (training halves {_f(r['two_sample']['train_accuracy'])}; "
                  + (f"held-out cross-entropy {_f(r['two_sample']['log_loss'])}, AUC {_f(r['two_sample']['auc'])}; "
                     if "log_loss" in r["two_sample"] else "")
                  + f"{r['two_sample']['n_test']} pictures at {r['two_sample']['size']} px, {r['two_sample']['steps']} steps)")
    add("Inception FID (local weights)",
        lambda r: f"{_f(r['inception']['fid'], 2)} (floor {_f(r['inception']['floor_fid'], 2)}; "
                  f"{r['inception']['n_generated']} vs {r['inception']['n_heldout']}; {r['inception']['weights']})")
    add("Inception KID", lambda r: f"{_g(r['inception']['kid'])} (floor {_g(r['inception']['floor_kid'])})")
    add("diversity: generated / real within a name",
        lambda r: f"{_f(r['diversity']['ratio'])} ({_f(r['diversity']['generated'], 2)} / {_f(r['diversity']['real'], 2)}, "
                  f"{r['diversity']['names_compared']} names × {r['diversity']['generated_per_name']})")
    add("memorisation: median distance to the nearest train photo, features: generated (held-out photos)",
        lambda r: f"{_f(r['memorisation']['feature']['median'], 2)} ({_f(r['memorisation']['heldout_feature']['median'], 2)}; "
                  f"{r['memorisation']['feature']['n']} and {r['memorisation']['heldout_feature']['n']} vs "
                  f"{r['memorisation']['train_photos']})")
    add("memorisation: the same in 32 px pixels",
        lambda r: f"{_f(r['memorisation']['pixel']['median'], 2)} ({_f(r['memorisation']['heldout_pixel']['median'], 2)})")
    add("R-precision", lambda r: f"{_f(r['rprecision']['r_precision'])} (1 of {r['rprecision']['candidates']}, "
                                 f"{r['rprecision']['images']} pictures)")
    add("training steps × batch", lambda r: f"{r['training']['steps']} × {r['training']['batch_size']}")
    add("training time (s)", lambda r: _f(r["training"]["seconds"], 0))
    add("evaluation time (s)", lambda r: _f(r["seconds"], 0))
    return rows


def misread_lines(models: dict) -> list[str]:
    """The invented names whose pictures get all three parts right less than half the time, with what the
    reader reads them as instead (a part dropped, or one taken from a training name)."""
    lines = []
    for m, r in models.items():
        rows = [row for row in (r.get("faithfulness_invented") or {}).get("per_name", [])
                if row.get("all", 1.0) < 0.5 and row.get("read_as")]
        if not rows:
            continue
        lines += [f"**{m}: invented names drawn right less than half the time**, and what they are read as "
                  "instead (base / topping / modifier, share of the name's pictures):", ""]
        for row in sorted(rows, key=lambda row: row["all"]):
            read = "; ".join(f"{a['parts']} ({a['share']:.0%})" for a in row["read_as"])
            lines.append(f"- {row['name']} (all three right {row['all']:.0%}): {read}")
        lines.append("")
    return lines


def ceiling_table(clf: dict, reader: dict) -> list[str]:
    """Markdown rows: the ceilings of the attribute reader and of the photo classifier, training and
    invented names side by side."""
    def acc(d: dict | None) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in (d or {}).items() if v is not None) or "–"

    rows = ["| instrument | training names (held-out photos) | invented names (true renders) |", "|---|---|---|"]
    rows.append(f"| attribute reader (every combination; reads faithfulness) | {acc(reader.get('heldout_accuracy'))} "
                f"({reader.get('heldout_images')}) | {acc(reader.get('invented_accuracy'))} "
                f"({reader.get('invented_images', 0)}) |")
    rows.append(f"| photo classifier (training photos; features) | {acc(clf.get('heldout_accuracy'))} "
                f"({clf.get('heldout_images')}) | {acc(clf.get('invented_accuracy'))} ({clf.get('invented_images', 0)}) |")
    return rows


def markdown(results: dict, title: str) -> str:
    models = results["models"]
    labels = list(models)
    data = results.get("data", {})
    clf = results.get("classifier", {})
    lines = [f"# {title}", ""]
    if data:
        lines += [f"Data: `{data.get('root', '')}` — {data.get('names', '?')} names, {data.get('train', '?')} train "
                  f"and {data.get('heldout', '?')} held-out photos ({data.get('split_note', '')}); "
                  f"{data.get('invented', 0)} invented names.", ""]
        for note in data.get("notes", []):
            lines += [f"**Note:** {note}", ""]
    reader = results.get("reader")
    if clf and reader:
        racc = ", ".join(f"{k} {v:.3f}" for k, v in reader.get("render_heldout_accuracy", {}).items())
        lines += [f"Faithfulness is read by the **attribute reader**, trained on {reader.get('trained_on')}; "
                  f"accuracy on its {reader.get('render_heldout_images')} held-out renders: {racc}.", "",
                  f"FID/KID, diversity and memorisation use the features of the in-domain classifier "
                  f"({clf.get('kind')}) trained on the {clf.get('train_images')} train photos, as before, so that "
                  "FID numbers stay comparable with earlier reports.", "",
                  "Ceilings (each instrument's accuracy on true pictures: the held-out photos of the training "
                  "names, and 8 true renders of each invented name):", "", *ceiling_table(clf, reader), ""]
    elif clf:
        acc = ", ".join(f"{k} {v:.3f}" for k, v in clf.get("heldout_accuracy", {}).items())
        lines += [f"In-domain classifier ({clf.get('kind')}): trained on {clf.get('train_images')} train photos; "
                  f"accuracy on {clf.get('heldout_images')} held-out real photos: {acc} (the ceiling).", ""]
        if clf.get("invented_accuracy"):
            inv = ", ".join(f"{k} {v:.3f}" for k, v in clf["invented_accuracy"].items() if v is not None)
            lines += [f"On {clf.get('invented_images')} true renders of the invented names (combinations it never "
                      f"saw): {inv} (the ceiling for invented names).", ""]
    inv_names = results.get("invented_names") or {}
    if inv_names.get("not_scorable"):
        lines += [f"**Not scorable** ({len(inv_names['not_scorable'])} of the names in `{inv_names.get('source')}`; "
                  f"{inv_names.get('names', 0)} were scored):", ""]
        lines += [f"- line {b['line']}: {b['name'] or '(empty)'}: {b['reason']}" for b in inv_names["not_scorable"]]
        lines.append("")
    lines += misread_lines(models)
    lines += ["## Metrics", "", f"_{FID_NOTE}_", "",
              "Counts in brackets: names × pictures per name, or generated vs real sample sizes.", ""]
    lines.append("| metric | " + " | ".join(labels) + " |")
    lines.append("|---|" + "---|" * len(labels))
    for label, cells in metric_rows(results):
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for extra in results.get("notes", []):
        lines += [f"- {extra}"]
    if results.get("notes"):
        lines.append("")

    if results.get("checkpoints"):
        lines += ["## Across checkpoints", ""]
        if results.get("checkpoint_plot"):
            lines += [f"![metrics across checkpoints]({results['checkpoint_plot']})", ""]
        keys = [k for k in ("fid", "kid", "faith") if any(k in c for c in results["checkpoints"])]
        lines.append("| step | " + " | ".join(keys) + " |")
        lines.append("|---|" + "---|" * len(keys))
        for c in results["checkpoints"]:
            lines.append(f"| {c['step']} | " + " | ".join(_f(c.get(k)) for k in keys) + " |")
        lines.append("")

    lines += ["## Pictures", ""]
    if results.get("side_by_side"):
        names = next(iter(models.values())).get("grid_names", {}).get("train", [])
        lines += [f"Side by side, one row per name ({', '.join(names)}); in each row 4 pictures of each model, "
                  f"left to right: {', '.join(labels)} (the same seeds for all).", "",
                  f"![side by side]({results['side_by_side']})", ""]
    for m in labels:
        r = models[m]
        files = r.get("files", {})
        lines += [f"### {m}", ""]
        gn = r.get("grid_names", {})
        if files.get("grid_train"):
            lines += [f"Training names, one row each: {', '.join(gn.get('train', []))}", "",
                      f"![{m} training names]({files['grid_train']})", ""]
        if files.get("grid_invented"):
            lines += [f"Invented names, one row each: {', '.join(gn.get('invented', []))}", "",
                      f"![{m} invented names]({files['grid_invented']})", ""]
        if files.get("closest_feature"):
            lines += ["The 8 generated pictures closest to a training photo (left: generated, right: its nearest "
                      "training photo), in feature space and in pixel space:", "",
                      f"![closest in features]({files['closest_feature']}) ![closest in pixels]({files['closest_pixel']})",
                      ""]
        if files.get("losses"):
            lines += [f"![{m} losses]({files['losses']})", ""]
        if r.get("dprobe"):
            d = r["dprobe"]
            lines += [f"What D keys on: an image optimised from noise for {d['steps']} steps to maximise D's match "
                      f"score for {', '.join(d['names'])} (score {d['start']:.2f} → {d['end']:.2f}).", "",
                      f"![D probe]({d['file']})", ""]
    lines += ["## Protocol", "", protocol_text(), ""]
    proto = results.get("protocol")
    if proto:
        lines += ["Settings of this report: " + ", ".join(f"{k} {v}" for k, v in proto.items())
                  + (f"; classifier {json.dumps(clf.get('config'))}" if clf.get("config") else "")
                  + (f"; attribute reader {json.dumps(reader.get('renders'))}" if reader and reader.get("renders")
                     else "") + ".", ""]
    if results.get("command"):
        lines += ["Reproduce with:", "", "```", results["command"], "```", ""]
    return "\n".join(lines)


def write_report(results: dict, out_dir: str | os.PathLike, title: str, stem: str = "report") -> tuple[Path, Path]:
    from stackgan.utils.io import atomic_write_text

    out = Path(out_dir)
    js = write_json(results, out / f"{stem}.json")
    md = atomic_write_text(out / f"{stem}.md", markdown(results, title))
    return js, md


def plot_series(series: list[dict], keys: list[str], path: str | os.PathLike, title: str) -> Path:
    """Metric values (one subplot each) against training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    keys = [k for k in keys if any(s.get(k) is not None for s in series)]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4 * max(len(keys), 1), 3.2), dpi=100, squeeze=False)
    for ax, k in zip(axes[0], keys):
        pts = [(s["step"], s[k]) for s in series if s.get(k) is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
        ax.set_title(k)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return save_figure(fig, path)
