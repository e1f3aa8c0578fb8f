"""A model card (Hugging Face format: a YAML header, then Markdown) for a model folder, written from
the model's own config, names and metrics by ``save_pretrained``, so it cannot drift from them."""

from __future__ import annotations

import dataclasses
from typing import Any

from stackgan.config import option_text
from stackgan.stackgan_config import StackGANConfig

# run-folder bookkeeping that says nothing about the recipe
_NOT_RECIPE = {"out", "resume", "progress", "device", "emb_dim", "part_dim", "stage1", "sample_every", "ckpt_every", "keep_ckpts",
               "log_every", "grid_rows", "grid_cols", "amp"}


def train_command(cfg: StackGANConfig) -> str:
    """The `stackgan train` command line of a config: its stage, data and every option that differs
    from the default (bookkeeping such as --out and --ckpt-every left out)."""
    parts = ["stackgan train", f"--stage {cfg.stage}", f"--data {cfg.data}"]
    if cfg.stage == 2:
        parts.append("--stage1 STAGE1_RUN")
    for f in dataclasses.fields(StackGANConfig):
        if f.name in _NOT_RECIPE or f.name in ("stage", "data") or not f.metadata.get("cli", True):
            continue
        value = getattr(cfg, f.name)
        if value == f.default or value == cfg.stage_default(f.name):
            continue
        parts.append(option_text(f.name, value))
    return " ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _metrics_lines(m: dict[str, Any]) -> list[str]:
    lines = []
    reader = "reader_heldout_accuracy" in m  # read by the attribute reader: its ceilings, not the old classifier's
    for key, ceiling in (("faithfulness_train", "heldout_accuracy"), ("faithfulness_invented", "invented_accuracy")):
        if isinstance(m.get(key), dict):
            ceil = m.get(("reader_" if reader else "classifier_") + ceiling) or {}
            parts = [f"{k} {_fmt(v)}" + (f" (ceiling {_fmt(ceil[k])})" if k in ceil else "") for k, v in m[key].items()]
            what = "training names" if key.endswith("train") else "invented names"
            lines.append(f"| faithfulness, {what} | " + ", ".join(parts) + " |")
    if "fid_in_domain" in m:
        floor = f" (floor {_fmt(m['fid_floor'])})" if "fid_floor" in m else ""
        lines.append(f"| FID, in-domain classifier features | {_fmt(m['fid_in_domain'])}{floor} |")
    if "fid_detail" in m:
        lines.append(f"| FID in detail (crops at full size), in-domain classifier features | {_fmt(m['fid_detail'])} "
                     f"(floor {_fmt(m['fid_detail_floor'])}) |")
    if "spectrum_fine" in m:
        lines.append(f"| power spectrum against held-out photos, log10 per ring: mean distance; fine half "
                     f"(above 0 grain, below 0 blur) | {_fmt(m['spectrum_distance'])} "
                     f"(floor {_fmt(m.get('spectrum_floor_distance'))}); {m['spectrum_fine']:+.3f} |")
    if "patch_precision" in m:
        lines.append(f"| 8 px patches against held-out photos: precision (under the floor: strokes the photos "
                     f"never have); recall | {_fmt(m['patch_precision'])} (floor {_fmt(m.get('patch_floor_precision'))}); "
                     f"{_fmt(m['patch_recall'])} (floor {_fmt(m.get('patch_floor_recall'))}) |")
    if "kid_in_domain" in m:
        lines.append(f"| KID x10^3, in-domain | {_fmt(m['kid_in_domain'])} |")
    if "diversity_ratio" in m:
        lines.append(f"| diversity within a name, generated / real | {_fmt(m['diversity_ratio'])} |")
    return lines


def model_card(cfg: StackGANConfig, cfg1: StackGANConfig, stages: int, names: list[str], train_info: dict[str, Any],
               metrics: dict[str, Any] | None, encoder_id: str | None = None) -> str:
    """The README.md of a model folder."""
    size1 = cfg1.image_size
    size = cfg.out_size if stages == 2 else size1
    data = (train_info or {}).get("data") or cfg.data
    n_images = (train_info or {}).get("n_images")
    encoder = f"{cfg.text_encoder}` (exact id `{encoder_id}`, checked when a new name is encoded;" if encoder_id \
        else f"{cfg.text_encoder}` ("
    header = ["---", "license: mit", "library_name: stackgan", "pipeline_tag: text-to-image", "language:", "- ja",
              "tags:", "- text-to-image", "- gan", "- stackgan", "- food", "- japanese", "---", ""]
    body = [
        f"# StackGAN: Japanese dish names to {size} px pictures", "",
        f"A {'two-stage' if stages == 2 else 'one-stage'} StackGAN (Zhang et al. 2017) that draws a picture of a dish "
        f"from its Japanese name, also names it was not trained on (「月見カレーうどん」). Stage I draws {size1} px"
        + (f"; stage II refines it to {size} px." if stages == 2 else "."), "",
        "## How to use", "",
        "```python",
        "from stackgan import StackGANPipeline",
        "",
        'pipe = StackGANPipeline.from_pretrained("THIS_FOLDER")',
        'out = pipe("月見うどん", num_images=4, seed=1)   # out.images: PIL pictures, one seed each',
        "```", "",
        "or `stackgan serve --checkpoint THIS_FOLDER` for the web page, "
        "`stackgan generate --checkpoint THIS_FOLDER 月見うどん -n 8 --out udon.png` for a grid.", "",
        "## Training data", "",
        f"`{data}`: {n_images if n_images is not None else '?'} pictures of {len(names)} dish names"
        + (" (the procedural cafeteria menu that `stackgan make-menu` draws; no photos of people or of real "
           "restaurants)" if "menu" in str(data) else "") + ".", "",
        "## Text encoder", "",
        f"`{encoder} {cfg.emb_dim - cfg1.part_dim}-d sentence vectors of the names, standardised with the training "
        "names' mean and spread). Names outside the training set are encoded by the same encoder, loaded from the "
        "local cache.", "",
        *([f"Each name vector also ends in a {cfg1.part_dim}-value code of the name's parts (`--parts`: "
           f"{', '.join((train_info or {}).get('parts', {}).get('slots', [])) or 'from attributes.tsv'}; the "
           "vocabulary is in `names.json`): a new name is read into the parts it is made of, so a combination never "
           "seen in training gets the parts' codes learnt from the training names; a part it cannot read is left "
           "unknown and the sentence vector speaks for it."
           + (" A new name read whole takes the sentence vector its parts predict (`--parts-sentence parts`: a "
              "linear fit of the training names' sentence vectors on their parts codes) instead of its own "
              "encoding." if cfg1.parts_sentence == "parts" else " New names keep their own sentence vector "
              "(`--parts-sentence own`)."), ""]
          if cfg1.part_dim else []),
        "## Training recipe", "",
        "```", train_command(cfg1) if stages == 2 else train_command(cfg), *( [train_command(cfg)] if stages == 2 else []),
        "```", "",
        f"Stage I: ngf {cfg1.ngf}, ndf {cfg1.ndf}, batch {cfg1.batch_size}, G conditioning {cfg1.g_cond}, "
        f"D conditioning {cfg1.d_cond}, loss {cfg1.loss}, DiffAugment `{cfg1.diffaugment}`, precision {cfg1.precision}.", "",
    ]
    body += ["## Metrics", ""]
    if metrics:
        rows = _metrics_lines(metrics)
        body += [f"`stackgan evaluate` on held-out pictures of `{metrics.get('data', data)}` "
                 f"(scored: {metrics.get('scored', 'the final stage')}). Faithfulness is read by "
                 f"{metrics.get('faithfulness_read_by') or 'the evaluator classifier'}; its ceiling is its accuracy "
                 "on true held-out pictures (of the invented names: true renders of them). FID is on the "
                 "evaluator classifier's features, not Inception's, so it is not comparable with published FIDs.", "",
                 "| metric | value |", "|---|---|", *rows, ""]
        if metrics.get("note"):
            body += [f"Note: {metrics['note']}.", ""]
    else:
        body += ["This model folder has no metrics: score it with `stackgan evaluate`.", ""]
    body += [
        "## Intended use and limitations", "",
        "For fun and for research on text-to-image GANs on small data: pictures of invented cafeteria dishes. "
        "Not for depicting real products or restaurants. The model only knows the vocabulary of its training "
        "names; a name far from all of them (the web page says so) still gets a picture, but of the nearest dishes "
        f"it knows. At {size} px the pictures are small and soft; parts of invented combinations are drawn less "
        "reliably than training names (see the metrics).", "",
        "## Files", "",
        "`config.json` (the training config), `G_ema.safetensors` (the EMA generator"
        + (" of stage II; `stage1/` holds stage I's)" if stages == 2 else ")")
        + ", `names.json` and `embeddings.safetensors` (the training names and their sentence vectors), "
        "`metrics.json` when scored.", "",
    ]
    return "\n".join(header + body)

