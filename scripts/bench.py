#!/usr/bin/env python
"""Benchmarks: training throughput, generator latency, peak memory, and stage-I against its FLOP floor.

    python scripts/bench.py                      # CPU, and CUDA too when torch sees a GPU
    python scripts/bench.py --device cpu --json bench.json
    python scripts/bench.py --device cuda --batch-size 64

    python scripts/bench.py --device cpu --preset shipped --only train_stage1,train_stage2,train_dcgan

What it measures, at the default widths of `stackgan train` (stage I: 64 px, ngf 128, ndf 64;
stage II: 64 -> 256 px) and `stackgan baseline-dcgan` (64 px, ngf = ndf = 64), or with
``--preset shipped`` at the CPU recipe of the shipped model, read from models/default's configs (stage I:
64 px, ngf 64, ndf 32, batch 32, DiffAugment translation, no CA, mode seeking; stage II: 128 px, ngf 32,
ndf 16, batch 16, its consistency and paired terms; the DCGAN of `stackgan compare`: 64 px, ngf = ndf = 32,
batch 32):

* training throughput (images/s) of stage I, stage II and the DCGAN: the trainers' own step (one
  D + G update, DiffAugment included) on random photos and sentence vectors, in every precision of
  ``--precisions`` (default: fp32, the exact path, and auto, the fast one), built in one process
  and timed in alternation, so that the ratio between them is measured under the same load;
* G's forward latency for 1 and for 8 names (stage I alone, and stage I + II), median of repeats;
* peak memory: each measurement runs in its own process, so its peak RSS (CPU) or
  ``torch.cuda.max_memory_allocated`` (CUDA) is its own;
* stage I's forward FLOPs (``torch.utils.flop_counter``) divided by the measured fp32 matmul
  rate: the time the forward would take at matmul speed, and how far the real forward is from it.

Every measurement prints one row of a table; ``--json`` writes them all.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMB_DIM = 384  # multilingual-e5-small, the default text encoder
BENCHES = ("matmul", "stage1_forward", "latency", "train_stage1", "train_stage2", "train_dcgan")
EXTRA_BENCHES = ("compile_stage1",)  # run only when named in --only


# -- helpers (child side) ------------------------------------------------------------------------------
def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timeit(fn, device, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


# --preset shipped reads the shipped model's configs (trained by scripts/train_default.sh); of them, what
# shapes a step: everything but where the run went, what it read, how long it ran and saved
NOT_THE_STEP = {"data", "stage1", "held_out", "split_seed", "seed", "emb_dim", "precision", "amp"}
SHIPPED_DCGAN = dict(ngf=32, ndf=32, batch_size=32)  # the DCGAN `stackgan compare` trains beside the shipped model


def shipped_options(stage: int) -> dict:
    """The step-shaping options of the shipped model's stage ``stage`` (its config.json)."""
    from stackgan.defaults import shipped_model
    from stackgan.runs import STACKGAN, RunFolder
    from stackgan.stackgan_config import RESUMABLE_CHANGES

    cfg = RunFolder.open(shipped_model() / "stage1" if stage == 1 else shipped_model()).require(STACKGAN)
    skip = RESUMABLE_CHANGES | NOT_THE_STEP
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in skip}


def _stage_cfg(stage: int, args, **kw):
    from stackgan.stackgan_config import StackGANConfig

    base = dict(stage=stage, emb_dim=EMB_DIM, device=args.device, progress=False, batch_size=args.batch(stage),
                stage1="bench" if stage == 2 else None, stage2_size=args.stage2_size or 256)
    if args.preset == "shipped":
        base.update(shipped_options(stage))
        if args.stage2_size:  # asked for: the shipped widths and batch at that size (what 256 px would cost)
            base["stage2_size"] = args.stage2_size
        if args.batch_size:
            base["batch_size"] = args.batch_size
    base.update(kw)
    return StackGANConfig(**base).validate()


def _alternate(steps: dict, device, repeats: int, warmup: int = 2) -> dict[str, list[float]]:
    """Time each of ``steps`` (name -> callable) ``repeats`` times, in alternation, after ``warmup`` calls."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(repeats):
        for k, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[k].append(time.perf_counter() - t0)
    return times


def _per_precision(times: dict[str, list[float]], batch: int, resolved: dict[str, str]) -> dict:
    """img/s per precision and each one's speed-up over the first (fp32)."""
    out: dict = {"precisions": {}}
    first = None
    for k, ts in times.items():
        t = statistics.median(ts)
        first = first or t
        out["precisions"][k] = {"runs_as": resolved[k], "sec_step": t, "img_s": batch / t, "x_first": first / t,
                                "steps_timed": len(ts)}
    last = out["precisions"][list(times)[-1]]
    out.update(sec_step=last["sec_step"], img_s=last["img_s"], speedup=last["x_first"])
    return out


def _train_data(size: int, n: int):
    import torch

    from stackgan.train.stackgan import TrainData

    g = torch.Generator().manual_seed(0)
    names = [f"dish{i}" for i in range(8)]
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % len(names)
    emb = torch.nn.functional.normalize(torch.randn(len(names), EMB_DIM, generator=g), dim=1)
    return TrainData(images, labels, names, emb)


def _stage1_g(cfg):
    from stackgan.models.stackgan import stage1_generator

    return stage1_generator(cfg)


def bench_matmul(args, device) -> dict:
    import torch

    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = _timeit(lambda: a @ b, device, repeats=5 if device.type == "cpu" else 20)
    t = statistics.median(times)
    return {"matmul_n": n, "gflops": 2 * n**3 / t / 1e9, "seconds": t}


def _stage1_flops(G, z, emb) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        G(z, emb)
    return int(fc.get_total_flops())


def bench_stage1_forward(args, device) -> dict:
    """Stage-I forward time vs its FLOPs / the matmul rate (fp32, no autocast)."""
    import torch

    cfg = _stage_cfg(1, args)
    G = _stage1_g(cfg).to(device).eval()
    rate = bench_matmul(args, device)["gflops"] * 1e9
    out = {"matmul_gflops": rate / 1e9}
    for n in (1, 8, 64):
        z = torch.randn(n, cfg.z_dim, device=device)
        emb = torch.randn(n, EMB_DIM, device=device)
        flops = _stage1_flops(G, z, emb)
        with torch.no_grad():
            t = statistics.median(_timeit(lambda: G(z, emb), device, repeats=args.repeats, warmup=2))
        floor = flops / rate
        out[f"b{n}"] = {"gflop": flops / 1e9, "seconds": t, "floor_seconds": floor, "x_floor": t / floor,
                        "achieved_gflops": flops / t / 1e9}
    return out


def bench_latency(args, device) -> dict:
    """G forward for 1 and 8 names (one picture each): stage I, and stage I + II."""
    import torch

    from stackgan.models.stackgan import stage2_generator

    cfg1 = _stage_cfg(1, args)
    cfg2 = _stage_cfg(2, args)
    G1 = _stage1_g(cfg1).to(device).eval()
    G2 = stage2_generator(cfg2).to(device).eval()
    out = {}
    for n in (1, 8):
        z = torch.randn(n, cfg1.z_dim, device=device)
        emb = torch.randn(n, EMB_DIM, device=device)
        with torch.no_grad():
            t1 = statistics.median(_timeit(lambda: G1(z, emb), device, repeats=args.repeats, warmup=2))
            low = G1(z, emb)[0]
            t2 = statistics.median(_timeit(lambda: G2(G1(z, emb)[0], emb), device,
                                           repeats=max(2, args.repeats // 2), warmup=1))
        out[f"names{n}"] = {"stage1_ms": t1 * 1e3, "stage1_2_ms": t2 * 1e3, "stage2_size": int(G2(low, emb)[0].shape[-1])
                            if n == 1 else None}
    return out


def _bench_trainer(stage: int, args, device) -> dict:
    from stackgan.train.stackgan import Stage1Ref, StackGANTrainer

    steps, resolved = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in args.precision_list:
            cfg = _stage_cfg(stage, args, precision=prec)
            stage1 = None
            if stage == 2:
                cfg1 = _stage_cfg(1, args)
                stage1 = Stage1Ref(cfg1, _stage1_g(cfg1).eval(), Path("bench"), None, None)
            data = _train_data(cfg.out_size, max(4 * cfg.batch_size, 16))
            tr = StackGANTrainer(cfg, data, Path(tmp) / prec, stage1=stage1, device=device)
            steps[prec], resolved[prec] = tr.train_step, tr.precision
        times = _alternate(steps, device, repeats=args.steps)
    return {"batch_size": cfg.batch_size, "size": cfg.out_size, "ngf": cfg.ngf, "ndf": cfg.ndf,
            "diffaugment": cfg.diffaugment, "ca": cfg.ca, "mode_seeking": cfg.mode_seeking, "name_loss": cfg.name_loss,
            "stage2_consistency": cfg.stage2_consistency, "stage2_paired": cfg.stage2_paired,
            **_per_precision(times, cfg.batch_size, resolved)}


def bench_train_stage1(args, device) -> dict:
    return _bench_trainer(1, args, device)


def bench_train_stage2(args, device) -> dict:
    return _bench_trainer(2, args, device)


def bench_compile_stage1(args, device) -> dict:
    """torch.compile of stage I's G and D modules (the trainer's own step otherwise), in the fast
    precision: the first compiled step's time (the compile cost), eager and compiled step times
    after it, and the training minutes after which compiling has paid for itself."""
    import torch

    from stackgan.train.stackgan import StackGANTrainer

    prec = args.precision_list[-1]
    cfg = _stage_cfg(1, args, precision=prec)
    data = _train_data(cfg.out_size, max(4 * cfg.batch_size, 16))
    with tempfile.TemporaryDirectory() as tmp:
        eager = StackGANTrainer(cfg, data, Path(tmp) / "eager", device=device)
        comp = StackGANTrainer(cfg, data, Path(tmp) / "compiled", device=device)
        comp.G = torch.compile(comp.G)
        comp.D.encode = torch.compile(comp.D.encode)
        t0 = time.perf_counter()
        comp.train_step()
        comp.train_step()  # a second graph may be traced (e.g. grad mode of the second call)
        compile_s = time.perf_counter() - t0
        times = _alternate({"eager": eager.train_step, "compiled": comp.train_step}, device, repeats=args.steps)
    te, tc = statistics.median(times["eager"]), statistics.median(times["compiled"])
    gain = te - tc  # seconds saved per step once compiled
    extra = compile_s - 2 * tc
    breakeven = (extra / gain) * te / 60 if gain > 0 else float("inf")
    return {"precision": eager.precision, "batch_size": cfg.batch_size, "compile_s": compile_s,
            "eager_sec_step": te, "compiled_sec_step": tc, "speedup": te / tc,
            "breakeven_minutes": breakeven, "pays_within_10_min": breakeven <= 10}


def bench_train_dcgan(args, device) -> dict:
    """The DCGAN trainer's own step (bce, Adam 2e-4 / 0.5) at its defaults, or the shipped preset's widths."""
    import torch

    from stackgan.train.dcgan import DCGANTrainer
    from stackgan.dcgan_config import DCGANConfig

    opts = dict(ngf=64, ndf=64, batch_size=args.batch(1))
    if args.preset == "shipped":
        opts.update(SHIPPED_DCGAN)
    if args.batch_size:
        opts["batch_size"] = args.batch_size
    steps, resolved = {}, {}
    for prec in args.precision_list:
        cfg = DCGANConfig(data="bench", image_size="64", device=args.device, precision=prec, **opts).validate()
        tr = DCGANTrainer(cfg, progress=False)
        g = torch.Generator().manual_seed(0)
        tr.images = torch.randint(0, 256, (4 * cfg.batch_size, 3, 64, 64), dtype=torch.uint8, generator=g).to(device)
        tr.build_models()
        order = torch.randperm(tr.images.shape[0], generator=g).to(device)
        steps[prec], resolved[prec] = (lambda tr=tr, order=order: tr._step(order, 0)), tr.precision
    times = _alternate(steps, device, repeats=args.steps)
    return {"size": 64, "ngf": opts["ngf"], "ndf": opts["ndf"], "batch_size": opts["batch_size"],
            **_per_precision(times, opts["batch_size"], resolved)}


def run_child(name: str, args) -> dict:
    import torch

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = globals()[f"bench_{name}"](args, device)
    res["wall_s"] = time.perf_counter() - t0
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["rss_after_import_mb"] = base_rss
    if device.type == "cuda":
        res["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        res["gpu"] = torch.cuda.get_device_name(device)
    res["threads"] = torch.get_num_threads()
    return res


# -- parent side -------------------------------------------------------------------------------------
def _rows(device: str, name: str, r: dict) -> list[tuple[str, str, str]]:
    if "error" in r:
        return [(device, name, f"failed: {r['error']}")]
    mem = f"{r['peak_cuda_mb']:.0f} MB cuda" if "peak_cuda_mb" in r else f"{r['peak_rss_mb']:.0f} MB rss"
    if name == "matmul":
        return [(device, name, f"{r['gflops']:.1f} GFLOP/s fp32 ({r['matmul_n']}^3)")]
    if name == "compile_stage1":
        return [(device, name, f"compile {r['compile_s']:.0f} s; step {r['eager_sec_step'] * 1e3:.0f} ms eager, "
                               f"{r['compiled_sec_step'] * 1e3:.0f} ms compiled ({r['speedup']:.2f}x, {r['precision']}); "
                               f"pays for itself after {r['breakeven_minutes']:.1f} min of training")]
    if name.startswith("train_"):
        rows = []
        for prec, p in r["precisions"].items():
            rows.append((device, f"{name} {prec}" + (f" ({p['runs_as']})" if p["runs_as"] != prec else ""),
                         f"{p['img_s']:.2f} img/s  ({p['sec_step'] * 1e3:.0f} ms/step, {p['x_first']:.2f}x the first; "
                         f"batch {r['batch_size']}, {r['size']} px, ngf {r['ngf']} ndf {r['ndf']}; peak {mem})"))
        return rows
    if name == "latency":
        return [(device, f"G latency, {k[5:]} name(s)",
                 f"stage I {v['stage1_ms']:.1f} ms, stage I+II {v['stage1_2_ms']:.1f} ms (peak {mem})")
                for k, v in r.items() if k.startswith("names")]
    if name == "stage1_forward":
        return [(device, f"stage-I forward, batch {k[1:]}",
                 f"{v['seconds'] * 1e3:.2f} ms for {v['gflop']:.2f} GFLOP: {v['achieved_gflops']:.1f} GFLOP/s; "
                 f"matmul floor {v['floor_seconds'] * 1e3:.2f} ms -> {v['x_floor']:.1f}x the floor")
                for k, v in r.items() if k.startswith("b")]
    return [(device, name, json.dumps(r))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="all", help="cpu, cuda, or all (cpu + cuda when present)")
    p.add_argument("--only", default=",".join(BENCHES),
                   help="comma-separated subset of " + ",".join(BENCHES + EXTRA_BENCHES))
    p.add_argument("--steps", type=int, default=3, help="timed training steps per precision (after two warm-up steps)")
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes")
    p.add_argument("--batch-size", type=int, default=0,
                   help="training batch; 0: 64 on CUDA, 8 on CPU (stage II: 16 on CUDA, 2 on CPU)")
    p.add_argument("--stage2-size", type=int, default=0, choices=(0, 128, 256),
                   help="stage II's output size; 0: the preset's (256 for default, 128 for shipped)")
    p.add_argument("--preset", default="default", choices=("default", "shipped"),
                   help="widths and batches: the commands' defaults, or the shipped model's CPU recipe")
    p.add_argument("--precisions", default="fp32,auto",
                   help="training benchmarks: the precisions timed in alternation (fp32, bf16, auto); the "
                        "speed-up is each one's against the first")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--timeout", type=int, default=900, help="seconds per measurement")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads in each measurement (0: torch's default). On a busy shared machine "
                        "1 thread can be many times faster than 2: the threads spin waiting for each other")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    def batch(stage: int) -> int:
        if args.batch_size:
            return args.batch_size
        cuda = args.device.startswith("cuda")
        return (64 if cuda else 8) if stage == 1 else (16 if cuda else 2)

    args.batch = batch
    args.precision_list = [x.strip() for x in args.precisions.split(",") if x.strip()]
    bad_prec = [x for x in args.precision_list if x not in ("fp32", "bf16", "auto")]
    if bad_prec or not args.precision_list or len(set(args.precision_list)) != len(args.precision_list):
        print(f"error: --precisions takes distinct values from fp32, bf16, auto; got {args.precisions!r}",
              file=sys.stderr)
        return 2
    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(run_child(args.child, args)))
        return 0

    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if args.device == "all" and not torch.cuda.is_available():
        devices = ["cpu"]
    if any(d.startswith("cuda") for d in devices) and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in BENCHES + EXTRA_BENCHES]
    if bad:
        print(f"error: unknown benchmark {', '.join(bad)}; choose from {', '.join(BENCHES + EXTRA_BENCHES)}",
              file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    results: dict = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                     "results": {}}
    print(f"{'device':<6}  {'measurement':<26}  result")
    for dev in devices:
        results["results"][dev] = {}
        for name in names:
            cmd = [sys.executable, __file__, "--child", name, "--device", dev, "--steps", str(args.steps),
                   "--repeats", str(args.repeats), "--batch-size", str(args.batch_size),
                   "--stage2-size", str(args.stage2_size), "--threads", str(args.threads),
                   "--preset", args.preset, "--precisions", args.precisions]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
                if proc.returncode != 0:
                    r = {"error": (proc.stderr.strip().splitlines() or ["exit " + str(proc.returncode)])[-1]}
                else:
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
            except subprocess.TimeoutExpired:
                r = {"error": f"took longer than --timeout {args.timeout} s"}
            results["results"][dev][name] = r
            for row in _rows(dev, name, r):
                print(f"{row[0]:<6}  {row[1]:<26}  {row[2]}", flush=True)
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)
    failed = [f"{d}/{n}" for d, rs in results["results"].items() for n, r in rs.items() if "error" in r]
    if failed:
        print(f"error: {len(failed)} measurement(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
