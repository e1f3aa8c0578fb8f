"""The project scripts that are not benchmarks: export_model.py on a tiny stage-I + II run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from stackgan.inference import load_pipeline

REPO = Path(__file__).resolve().parents[1]
from conftest import TINY_NAMES as NAMES  # noqa: E402


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def stage2_run(stackgan_runs):
    return stackgan_runs.s2


def test_export_model_fp16_keeps_only_inference_files(stage2_run, tmp_path, capsys):
    export = _script("export_model")
    out = tmp_path / "model"
    assert export.main([str(stage2_run), str(out), "--fp16"]) == 0
    said = capsys.readouterr().out
    assert "fp16 vs fp32 pictures: PSNR" in said and "exported" in said
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith(".pt") or "samples" in f], files
    assert {"config.json", "G_ema.safetensors", "names.json", "stage1/config.json",
            "stage1/G_ema.safetensors"} <= set(files)
    with safe_open(out / "G_ema.safetensors", "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["stage"] == 2
    assert load_pipeline(out).info()["step"] == 1  # the run's step travels with the weights
    a = load_pipeline(out).generate(NAMES[1], 2, seed=3)
    b = load_pipeline(stage2_run).generate(NAMES[1], 2, seed=3)
    assert a.stage2.shape == b.stage2.shape and (a.stage2 - b.stage2).abs().max() < 0.05
    assert not (tmp_path / "model.tmp").exists()


def test_export_model_refuses_a_folder_without_weights(tmp_path, capsys):
    export = _script("export_model")
    assert export.main([str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no G_ema.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fp16_psnr_is_infinite_for_identical_pipelines_and_low_for_different_ones(stage2_run, tmp_path):
    export = _script("export_model")
    same = load_pipeline(stage2_run)
    assert export.fp16_psnr(same, load_pipeline(stage2_run)) == float("inf")

    class Noisy:  # the same pipeline with its pictures pushed away
        names = same.names

        def generate(self, name, n, seed):
            res = same.generate(name, n, seed)
            res.stage2 = (res.stage2 + 0.5).clamp(-1, 1)
            return res

    assert export.fp16_psnr(same, Noisy()) < export.MIN_PSNR


def test_bench_runs_its_measurements_in_child_processes(tmp_path, capsys):
    """The cheap measurements of scripts/bench.py end to end (the others share its code path)."""
    bench = _script("bench")
    out = tmp_path / "bench.json"
    rc = bench.main(["--device", "cpu", "--only", "matmul,train_dcgan", "--steps", "1", "--repeats", "1",
                     "--batch-size", "2", "--threads", "1", "--json", str(out)])
    said = capsys.readouterr()
    assert rc == 0, said.err
    res = json.loads(out.read_text(encoding="utf-8"))["results"]["cpu"]
    assert res["matmul"]["gflops"] > 0
    assert res["train_dcgan"]["img_s"] > 0 and res["train_dcgan"]["batch_size"] == 2
    precs = res["train_dcgan"]["precisions"]
    assert list(precs) == ["fp32", "auto"] and precs["fp32"]["runs_as"] == "fp32" and precs["fp32"]["x_first"] == 1
    assert precs["auto"]["runs_as"] in ("fp32", "bf16") and precs["auto"]["img_s"] > 0
    assert "train_dcgan fp32" in said.out and "failed" not in said.out
    assert bench.main(["--device", "cpu", "--only", "nothing"]) == 2
    assert bench.main(["--device", "cpu", "--only", "train_dcgan", "--precisions", "fp16"]) == 2


def test_bench_trains_stage1_in_both_precisions_with_the_shipped_preset(tmp_path, capsys):
    bench = _script("bench")
    out = tmp_path / "bench.json"
    rc = bench.main(["--device", "cpu", "--only", "train_stage1", "--preset", "shipped", "--precisions", "fp32,bf16",
                     "--steps", "1", "--batch-size", "4", "--threads", "1", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    r = json.loads(out.read_text(encoding="utf-8"))["results"]["cpu"]["train_stage1"]
    # the shipped stage I's, read from models/default (scripts/train_default.sh's, by another test)
    shipped = json.loads((REPO / "models" / "default" / "stage1" / "config.json").read_text(encoding="utf-8"))
    assert (shipped["ngf"], shipped["ndf"]) == (64, 32)
    assert (r["ngf"], r["ndf"], r["batch_size"], r["diffaugment"]) == (64, 32, 4, "translation")
    assert (r["ca"], r["mode_seeking"], r["name_loss"]) == (False, 3.0, 0.0)
    assert [p["runs_as"] for p in r["precisions"].values()] == ["fp32", "bf16"]
    assert r["speedup"] == r["precisions"]["bf16"]["x_first"] > 0


def test_readme_images_draws_the_grid_of_eight_names_by_six_seeds(stage2_run, tmp_path, monkeypatch):
    from PIL import Image

    from conftest import use_hash_encoder

    use_hash_encoder(monkeypatch, tmp_path / "cache")
    images = _script("readme_images")
    assert images.main(["--model", str(stage2_run), "--out", str(tmp_path / "imgs"), "--no-screenshot"]) == 0
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir()) == ["default-grid.jpg"]  # no PNGs left behind
    grid = Image.open(tmp_path / "imgs" / "default-grid.jpg")
    assert grid.format == "JPEG"
    from stackgan.inference import load_sampler

    cell, _ = load_sampler(stage2_run).image_size  # (H, W) of stage II's pictures
    # 8 rows (4 training + 4 invented names) of 6 seeds, with the grid's 2 px padding
    assert grid.size == (6 * (cell + 2) + 2, 8 * (cell + 2) + 2)


def test_readme_images_refuses_a_missing_model(tmp_path):
    images = _script("readme_images")
    with pytest.raises(SystemExit):
        images.main(["--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "imgs")])
    assert not (tmp_path / "imgs").exists()


@pytest.mark.parametrize("preset, asked, size", [("shipped", 0, 128), ("shipped", 256, 256),
                                                 ("default", 0, 256), ("default", 128, 128)])
def test_bench_stage2_size_is_the_presets_unless_asked(preset, asked, size):
    from types import SimpleNamespace

    bench = _script("bench")
    args = SimpleNamespace(device="cpu", preset=preset, stage2_size=asked, batch_size=0, batch=lambda stage: 2)
    cfg = bench._stage_cfg(2, args)
    assert cfg.stage2_size == size
    assert (cfg.ndf, cfg.batch_size) == ((16, 16) if preset == "shipped" else (cfg.ndf, 2))
    if preset == "shipped":  # the shipped stage II's terms, as its config.json has them
        shipped = json.loads((REPO / "models" / "default" / "config.json").read_text(encoding="utf-8"))
        assert (cfg.stage2_consistency, cfg.stage2_paired, cfg.ca) == (
            shipped["stage2_consistency"], shipped["stage2_paired"], shipped["ca"])


def test_reader_scale_check_reads_four_versions_of_the_same_pictures(stage2_run, tmp_path, monkeypatch, capsys):
    mod = _script("reader_scale_check")

    class SizeReader:  # reads right only pictures at stage I's size: the check must show which version is which
        def predict_labels(self, images):
            ok = images.shape[-1] == 16
            n = images.shape[0]
            return {"base": ["丼" if ok else "?"] * n, "topping": ["サーモン" if ok else "?"] * n,
                    "modifier": ["-" if ok else "?"] * n}

    asked = []
    monkeypatch.setattr(mod, "train_reader", lambda cfg, progress=False: asked.append(cfg.blur) or SizeReader())
    # the tiny model's own training names (it has no text encoder for others); the labels are the fake reader's
    (tmp_path / "invented.tsv").write_text("name\tbase\ttopping\tmodifier\nカツカレー\t丼\tサーモン\t-\n"
                                           "ピリ辛サーモン丼\t丼\tサーモン\t-\n", encoding="utf-8")
    assert mod.main([str(stage2_run), "--data", str(tmp_path), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 invented names x 2 seeds" in out
    lines = {ln[:30].strip(): ln[30:].strip() for ln in out.splitlines()[1:]}
    assert lines["stage I (64 px)"] == lines["stage II pooled to 64 px"] == "1.000 / 1.000 / 1.000"
    assert lines["stage II (128 px)"] == lines["stage I upsampled to 128 px"] == "0.000 / 0.000 / 0.000"
    assert mod.main([str(stage2_run), "--data", str(tmp_path), "--seeds", "2", "--crisp"]) == 0
    assert "crisp-trained" in capsys.readouterr().out
    assert asked == [1.2, 0.0]  # the evaluator's reader (blurred), then the crisp one


def _menu_eval(tmp_path, label, invented, train, per_name):
    """A menu run's eval.json as `stackgan evaluate` writes it, with only the fields the summary reads."""
    model = {"faithfulness_train": {"overall": dict(zip(("base", "topping", "modifier", "all"), train)),
                                    "images": 64},
             "faithfulness_invented": {"overall": dict(zip(("base", "topping", "modifier", "all"), invented)),
                                       "per_name": [{"name": n, "n": 32, "base": 1.0, "topping": t, "modifier": m,
                                                     "all": min(t, m)} for n, t, m in per_name]},
             "fid": {"fid": 6.0}, "fid_floor": {"fid": 1.5}, "diversity": {"ratio": 0.7},
             "memorisation": {"feature": {"median": 3.0}, "heldout_feature": {"median": 3.2}},
             "training": {"steps": 18000}}
    d = {"run": f"runs/quality/{label}", "models": {label: model},
         "reader": {"invented_accuracy": {"base": 1.0, "topping": 0.95, "modifier": 0.9, "all": 0.85}}}
    path = tmp_path / label / "eval" / "eval.json"  # where `stackgan evaluate` writes it: RUN/eval
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(d), encoding="utf-8")
    return path


def test_quality_summary_checks_the_invented_names_target_and_lists_names_worst_first(tmp_path):
    qs = _script("quality_summary")
    # needed: base 0.8, topping 0.76, modifier 0.72 (0.8 of the ceilings), all 0.5; training 0.9 / 0.85
    met = _menu_eval(tmp_path, "a", (0.8, 0.76, 0.72, 0.5), (0.95, 0.9, 0.9, 0.8),
                     [("月見そば", 1.0, 1.0), ("冷やしラーメン", 0.9, 0.1)])
    missed = _menu_eval(tmp_path, "b", (0.9, 0.75, 0.8, 0.49), (0.95, 0.84, 0.9, 0.8),
                        [("月見そば", 0.8, 1.0), ("冷やしラーメン", 1.0, 0.3)])
    assert qs.row(met).endswith("| target met")
    line = qs.row(missed)
    assert "target missed: invented topping 0.750 < 0.760, invented all 0.490 < 0.500, training topping 0.840 < 0.85" in line
    assert "base" not in line.split("target missed")[1]  # base 0.9 >= 0.8 is not listed
    table = qs.per_name([met, missed]).splitlines()
    assert "[0] a" in table[0] and "[1] b" in table[0]
    assert table[1].startswith("冷やしラーメン\t0.90/0.10 1.00/0.30 | mean 0.95/0.20")  # worst first
    assert table[2].startswith("月見そば\t1.00/1.00 0.80/1.00 | mean 0.90/1.00")


def test_quality_summary_groups_runs_by_recipe_and_counts_the_seeds_that_meet_the_target(tmp_path):
    qs = _script("quality_summary")
    runs = [("a0", 0, 32, (0.8, 0.76, 0.72, 0.5)), ("a1", 1, 32, (0.9, 0.80, 0.76, 0.6)),
            ("a2", 2, 32, (0.9, 0.70, 0.76, 0.4)), ("b0", 0, 16, (0.9, 0.80, 0.80, 0.6))]
    paths = []
    for label, seed, layer, invented in runs:
        path = _menu_eval(tmp_path, label, invented, (0.95, 0.9, 0.9, 0.8), [("月見そば", 1.0, 1.0)])
        cfg = {"seed": seed, "out": f"runs/quality/{label}", "device": "cpu" if seed else "cuda",
               "part_layer": layer, "part_loss": 3.0, "max_steps": 18000}
        (path.parent.parent / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        paths.append(path)
    lines = qs.by_recipe(paths).splitlines()
    assert len(lines) == 3  # the header, then two recipes: seed, out and device do not make a recipe
    a = next(ln for ln in lines if ln.startswith("part_layer=32 |"))
    assert "| 0, 1, 2 |" in a and "0.867 / 0.753 / 0.747 / 0.500 (0.058 / 0.050 / 0.023 / 0.100)" in a
    assert a.endswith("| 2 of 3 (seeds 0, 1)")  # a2 misses topping and all three
    assert lines[2] == ("part_layer=16 | 0 | 0.900 / 0.800 / 0.800 / 0.600 (0.000 / 0.000 / 0.000 / 0.000) | "
                        "0.800 | 4.0x | 1 of 1 (seeds 0)")
    # a run trained before an option existed has no such key: it groups with the runs that have its default
    later = _menu_eval(tmp_path, "a3", (0.9, 0.80, 0.76, 0.6), (0.95, 0.9, 0.9, 0.8), [("月見そば", 1.0, 1.0)])
    (later.parent.parent / "config.json").write_text(json.dumps(
        {"seed": 3, "out": "runs/quality/a3", "device": "cpu", "part_layer": 32, "part_loss": 3.0, "max_steps": 18000,
         "mbstd": 0, "part_twin": False}), encoding="utf-8")
    assert len(qs.by_recipe([*paths, later]).splitlines()) == 3
    assert "| 0, 1, 2, 3 |" in qs.by_recipe([*paths, later])
    # ... also for an option whose default depends on the stage (off for a stage-I run, as the loader reads it)
    (later.parent.parent / "config.json").write_text(json.dumps(
        {"seed": 3, "out": "runs/quality/a3", "device": "cpu", "part_layer": 32, "part_loss": 3.0, "max_steps": 18000,
         "stage2_consistency": 0.0, "stage2_paired": 0.0}), encoding="utf-8")
    assert "| 0, 1, 2, 3 |" in qs.by_recipe([*paths, later])
    (paths[3].parent.parent / "config.json").unlink()
    with pytest.raises(SystemExit, match="no config.json"):
        qs.by_recipe(paths)
    # the command line: the same report, --help, and a clear error for a file that is not there
    assert qs.main(["--by-recipe", *map(str, paths[:3])]) == qs.by_recipe(paths[:3])
    assert qs.main([str(p) for p in paths[:2]]).splitlines() == [qs.row(p) for p in paths[:2]]
    with pytest.raises(SystemExit) as help_exit:
        qs.main(["--help"])
    assert help_exit.value.code == 0
    with pytest.raises(SystemExit) as bad:
        qs.main([str(paths[0]), str(tmp_path / "nope.json")])
    assert bad.value.code == 2


def _train_default_recipe() -> dict[int, list[str]]:
    """The `stackgan train` command lines of scripts/train_default.sh by stage, as argv lists, with the
    script's variables at their defaults (``S1_STEPS=${S1_STEPS:-12000}`` reads 12000)."""
    import re
    import shlex

    text = (REPO / "scripts" / "train_default.sh").read_text(encoding="utf-8").replace("\\\n", " ")
    defaults = dict(re.findall(r"^(\w+)=\$\{\w+:-([^}]*)\}$", text, flags=re.M))
    commands = {}
    for line in text.splitlines():
        if '"$BIN/stackgan" train ' in line:
            line = re.sub(r"\$(\w+)", lambda m: defaults.get(m.group(1), m.group(0)), line.split('"$BIN/stackgan"')[1])
            argv = shlex.split(line)[1:]
            commands[int(argv[argv.index("--stage") + 1])] = argv
    return commands


def test_the_shipped_recipe_is_the_shipped_models_and_trains_and_resumes(tmp_path):
    """scripts/train_default.sh trains models/default: its options are the shipped configs' (all but
    where the run went, how often it saved, the device and the precision), and they train a tiny
    stage I that resumes, and a stage II on top of it."""
    import dataclasses

    from conftest import tiny_data
    from stackgan.cli import build_parser
    from stackgan.stackgan_config import RESUMABLE_CHANGES, StackGANConfig
    from stackgan.train import stackgan as tr

    commands = _train_default_recipe()
    assert sorted(commands) == [1, 2]
    where = set(RESUMABLE_CHANGES) | {"stage1", "precision", "amp"}
    shipped = {1: REPO / "models" / "default" / "stage1" / "config.json", 2: REPO / "models" / "default" / "config.json"}
    cfgs = {}
    for stage, argv in commands.items():
        cfgs[stage] = StackGANConfig.from_args(build_parser().parse_args(["train", *argv]))
        model = StackGANConfig.from_dict(json.loads(shipped[stage].read_text(encoding="utf-8")))
        compared = [f.name for f in dataclasses.fields(model) if f.name not in where and f.metadata.get("cli", True)]
        differ = {name: (getattr(cfgs[stage], name), getattr(model, name)) for name in compared
                  if getattr(cfgs[stage], name) != getattr(model, name)}
        assert not differ, f"stage {stage}: scripts/train_default.sh and models/default differ: {differ}"
        assert cfgs[stage].max_steps == model.max_steps
    tiny = dict(image_size=16, ngf=8, ndf=8, c_dim=8, z_dim=16, batch_size=8, grid_rows=2, grid_cols=2,
                sample_every=100, ckpt_every=1, device="cpu", precision="fp32", data=None)
    s1 = dataclasses.replace(cfgs[1], out=str(tmp_path / "s1"), max_steps=2, **tiny).validate()
    assert tr.train(s1, data=tiny_data(16))["step"] == 2
    assert tr.train(dataclasses.replace(s1, resume=True, max_steps=3), data=tiny_data(16))["step"] == 3
    s2 = dataclasses.replace(cfgs[2], out=str(tmp_path / "s2"), stage1=s1.out, max_steps=1, **tiny).validate()
    assert tr.train(s2, data=tiny_data(32))["step"] == 1


def _named_photos(folder: Path, size: int, per_name: int = 5) -> Path:
    """``per_name`` flat pictures (a colour and a square) of each tiny training name, with names.tsv."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file\tname"]
    for j, name in enumerate(NAMES):
        for i in range(per_name):
            im = Image.new("RGB", (size, size), (60 * j % 256, 200 - 30 * i, 90))
            im.paste((250, 250 - 40 * j, 40), (size // 4, size // 4, size // 2 + i, size // 2 + i))
            im.save(folder / f"n{j}-{i}.png")
            rows.append(f"n{j}-{i}.png\t{name}")
    (folder / "names.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_stage2_on_renders_scores_five_sets_and_draws_four_rows(stackgan_runs, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("STACKGAN_CACHE", str(tmp_path / "cache"))
    mod = _script("stage2_on_renders")
    data = _named_photos(tmp_path / "photos", 32)
    out = tmp_path / "out"
    args = ["--data", str(data), "--clf-size", "16", "--clf-epochs", "1", "--grid", "3", "--out", str(out)]
    assert mod.main([str(stackgan_runs.s2), *args]) == 0
    said = capsys.readouterr().out
    res = json.loads((out / "stage2_on_renders.json").read_text(encoding="utf-8"))
    assert list(res["detail_fid"]) == list(mod.SETS)
    assert all(v >= 0 and v == v for v in res["detail_fid"].values())
    assert (res["size"], res["stage1_size"], res["pictures"]) == (32, 16, 4)  # one held-out photo per name
    assert "photos pooled, stage II" in said and "x the floor" in said
    # photos / pooled and enlarged / stage II on the pooled photos / own pictures, 3 columns of 32 px
    grid = Image.open(out / "stage2_on_renders.png").convert("RGB")
    assert grid.size == (3 * 34 + 2, 4 * 34 + 2)
    # each column is one name: its photo (a name's own colour in the corner) and the pictures drawn for it
    colours = [grid.getpixel((2 + 34 * k + 1, 3))[0] for k in range(3)]
    assert [NAMES[[60 * j % 256 for j in range(4)].index(c)] for c in colours] == res["grid_names"]


def test_stage2_on_renders_refuses_one_stage_and_too_small_models(stackgan_runs, tmp_path, capsys):
    mod = _script("stage2_on_renders")
    data = str(_named_photos(tmp_path / "photos", 32))
    assert mod.main([str(stackgan_runs.s1), "--data", data, "--out", str(tmp_path / "o")]) == 2
    assert "needs a two-stage model" in capsys.readouterr().err
    assert mod.main([str(stackgan_runs.s2), "--data", data, "--out", str(tmp_path / "o")]) == 2
    assert "at least twice the classifier's input (48 px); this model draws 32 px" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
