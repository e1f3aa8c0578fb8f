#!/usr/bin/env python
"""Benchmark `stackgan serve` on loopback: latency and throughput of /api/generate on CPU.

Starts the app on waitress in this process (127.0.0.1, a free port), then measures

* the floor: the generator's pure forward time (stage I + II, text vector precomputed), and
  ``Pipeline.generate`` without HTTP (text encoder + generator);
* the latency of one request with n=1 and n=8 pictures (p50, p95; sequential, fixed seeds);
* requests/s with 4 concurrent clients (n=1 each).

Every loop is bounded (--repeats, --concurrent-requests); nothing leaves the machine.

    python scripts/bench_serve.py --checkpoint models/default
    python scripts/bench_serve.py --checkpoint runs/stage2-menu --repeats 10 --json bench.json
    python scripts/bench_serve.py --random-init --ngf 32     # before any model is trained
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAME = "ピリ辛サーモン丼"


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "runs": len(ms)}


def post(port: int, path: str, payload: dict, conn: http.client.HTTPConnection | None = None) -> dict:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    body = json.dumps(payload).encode("utf-8")
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if own:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"{path} answered {resp.status}: {data[:300]!r}")
    return json.loads(data)


def time_rounds(calls: dict, repeats: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds per call: every call once per round, ``warmup`` untimed rounds first."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    out: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for key, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            out[key].append((time.perf_counter() - t0) * 1000)
    return out


def serve_until_closed(server) -> None:
    """waitress's loop; closing the server from another thread ends it with EBADF."""
    try:
        server.run()
    except OSError:
        pass


def forward_fn(pipeline, n: int):
    """The generator alone: stage I (+ II) on a precomputed sentence vector and fixed noise."""
    import torch

    emb = pipeline.embed(NAME).to(pipeline.device).expand(n, -1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, pipeline.cfg1.z_dim, generator=g).to(pipeline.device)
    e1 = torch.randn(n, pipeline.cfg1.c_dim, generator=g).to(pipeline.device)
    e2 = torch.randn(n, pipeline.cfg.c_dim, generator=g).to(pipeline.device)

    from stackgan.utils.device import autocast

    def run():  # in the pipeline's precision, as Pipeline.generate runs it
        with torch.inference_mode(), autocast(pipeline.device, pipeline.precision == "bf16"):
            low = pipeline.g1(z, emb, e1)[0]
            if pipeline.g2 is not None:
                pipeline.g2(low, emb, e2)

    return run


def random_pipeline(ngf: int, stages: int, text_encoder: str, precision: str = "fp32"):
    """An untrained 64 px (-> 256 px) Pipeline with the given width, for timing only."""
    import torch

    from stackgan.inference import Pipeline
    from stackgan.models.init import init_weights
    from stackgan.models.stackgan import stage1_generator, stage2_generator
    from stackgan.text import load_text_encoder
    from stackgan.stackgan_config import StackGANConfig

    enc = load_text_encoder(text_encoder)
    names = ["カツカレー", "きつねうどん", "味噌ラーメン", "親子丼", "天ぷらそば", "鮭の塩焼き", "抹茶パフェ", "牛丼"]
    torch.manual_seed(0)
    common = dict(text_encoder=text_encoder, emb_dim=enc.dim, ngf=ngf, image_size=64, stage2_size=256)
    cfg1 = StackGANConfig(**common).validate()
    g1 = init_weights(stage1_generator(cfg1))
    cfg, g2 = cfg1, None
    if stages == 2:
        cfg = StackGANConfig(stage=2, stage1="random-init", **common).validate()
        g2 = init_weights(stage2_generator(cfg))
    return Pipeline(cfg, g1, g2, cfg1, names, enc.encode(names), precision=precision)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(REPO / "models" / "default"),
                    help="StackGAN run folder or checkpoint (default: models/default)")
    ap.add_argument("--repeats", type=int, default=20, help="timed requests per measurement (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests first (default 3)")
    ap.add_argument("--concurrent-requests", type=int, default=40,
                    help="requests in the 4-client throughput test (default 40)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients (default 4)")
    ap.add_argument("--threads", type=int, default=4, help="waitress threads (default 4)")
    ap.add_argument("--torch-threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="inference precision, as `stackgan serve --precision` (default auto, as serve)")
    ap.add_argument("--random-init", action="store_true",
                    help="time an untrained model of the given widths instead of a checkpoint "
                         "(latency does not depend on the weights; no training data needed)")
    ap.add_argument("--ngf", type=int, default=32, help="--random-init: G width (default 32)")
    ap.add_argument("--stages", type=int, default=2, choices=(1, 2), help="--random-init: 1 or 2 (default 2)")
    ap.add_argument("--text-encoder", default="e5", help="--random-init: text encoder spec (default e5)")
    args = ap.parse_args(argv)
    for opt in ("repeats", "concurrent_requests", "clients", "threads"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be >= 1")
    args.repeats = min(args.repeats, 1000)
    args.concurrent_requests = min(args.concurrent_requests, 10_000)

    import torch
    from waitress import create_server

    from stackgan.errors import UserError
    from stackgan.web.app import create_app

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    import logging

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # 4 clients queue behind the lock
    try:
        if args.random_init:
            model = random_pipeline(args.ngf, args.stages, args.text_encoder, args.precision)
            args.checkpoint = f"random-init ngf={args.ngf} stages={args.stages} text={args.text_encoder}"
        else:
            model = args.checkpoint
        app = create_app(model, device="cpu", precision=args.precision)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pipeline = app.extensions["stackgan"].pipeline
    load_before = [round(x, 2) for x in os.getloadavg()]
    results: dict = {"checkpoint": args.checkpoint, "torch_threads": torch.get_num_threads(),
                     "waitress_threads": args.threads, "info": app.extensions["stackgan"].info()}

    # -- HTTP on loopback, beside the floor (no HTTP), measured in interleaved rounds so that a
    # -- busy machine slows every measurement alike ----------------------------------------------
    server = create_server(app, host="127.0.0.1", port=0, threads=args.threads)
    port = server.effective_port
    thread = threading.Thread(target=serve_until_closed, args=(server,), daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        calls = {}
        for n in (1, 8):
            calls[f"generator_forward_n{n}"] = forward_fn(pipeline, n)
            calls[f"pipeline_generate_n{n}"] = lambda n=n: pipeline.generate(NAME, n, seed=1234)
            calls[f"http_generate_n{n}"] = lambda n=n: post(port, "/api/generate",
                                                            {"name": NAME, "n": n, "seed": 1234}, conn)
        for key, ms in time_rounds(calls, args.repeats, args.warmup).items():
            results[key] = summary(ms)
        conn.close()

        def client(k: int) -> int:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            done = 0
            for i in range(k):
                post(port, "/api/generate", {"name": NAME, "n": 1, "seed": 1000 + i}, c)
                done += 1
            c.close()
            return done

        per_client = [args.concurrent_requests // args.clients + (i < args.concurrent_requests % args.clients)
                      for i in range(args.clients)]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            done = sum(pool.map(client, per_client))
        wall = time.perf_counter() - t0
        results["concurrent"] = {"clients": args.clients, "requests": done, "seconds": round(wall, 2),
                                 "requests_per_s": round(done / wall, 2)}
    finally:
        server.close()
        thread.join(timeout=5)

    results["load_average"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


def print_report(r: dict) -> None:
    print(f"checkpoint {r['checkpoint']}  torch threads {r['torch_threads']}  waitress threads {r['waitress_threads']}")
    print(f"{'measurement':<28}{'p50 ms':>10}{'p95 ms':>10}{'runs':>6}")
    for key in ("generator_forward_n1", "pipeline_generate_n1", "http_generate_n1",
                "generator_forward_n8", "pipeline_generate_n8", "http_generate_n8"):
        s = r.get(key)
        if s:
            print(f"{key:<28}{s['p50_ms']:>10.1f}{s['p95_ms']:>10.1f}{s['runs']:>6}")
    c = r["concurrent"]
    print(f"{c['clients']} concurrent clients, n=1: {c['requests']} requests in {c['seconds']} s "
          f"= {c['requests_per_s']} requests/s")
    for n in (1, 8):
        fwd, http_ = r.get(f"generator_forward_n{n}"), r.get(f"http_generate_n{n}")
        if fwd and http_:
            print(f"n={n}: HTTP p50 is {http_['p50_ms'] / max(fwd['p50_ms'], 1e-9):.2f}x the generator forward "
                  f"(+{http_['p50_ms'] - fwd['p50_ms']:.1f} ms: noise, neighbours, PNG, base64, JSON, HTTP; "
                  f"the name's vector is cached after its first request)")
    if r.get("load_average"):
        print(f"load average before/after: {r['load_average']['before']} / {r['load_average']['after']} "
              f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
