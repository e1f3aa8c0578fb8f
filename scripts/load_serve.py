#!/usr/bin/env python
"""Load check of `stackgan serve` on loopback: does the page stay usable while it is busy?

Starts the app on waitress in this process (127.0.0.1, a free port, the server settings of
`stackgan serve`), measures the page's requests unloaded, then for --seconds runs --clients clients
that each generate --n pictures in a loop, plus --slow connections that send half a request and
stall, and meanwhile measures:

* /api/health latency (target: p95 within 1 s);
* the page's own request (/api/generate, n=1) latency, against its unloaded latency (target: 3x);
* how many stalled connections waitress closed after --channel-timeout.

    python scripts/load_serve.py --checkpoint models/default
    python scripts/load_serve.py --seconds 20 --clients 8 --n 16 --slow 20 --json load.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_serve import percentile, post, serve_until_closed  # noqa: E402

NAME = "月見カレーうどん"


def get_ms(port: int, path: str) -> float:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    conn.close()
    if r.status != 200:
        raise RuntimeError(f"{path} answered {r.status}")
    return (time.perf_counter() - t0) * 1000


def page_ms(port: int, seed: int) -> float:
    t0 = time.perf_counter()
    post(port, "/api/generate", {"name": NAME, "n": 1, "seed": seed})
    return (time.perf_counter() - t0) * 1000


def stats(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1),
            "max_ms": round(max(ms), 1), "n": len(ms)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(REPO / "models" / "default"))
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the loaded phase (default 20)")
    ap.add_argument("--clients", type=int, default=8, help="clients generating in a loop (default 8)")
    ap.add_argument("--n", type=int, default=16, help="pictures per loading request (default 16)")
    ap.add_argument("--slow", type=int, default=20, help="stalled connections (default 20)")
    ap.add_argument("--threads", type=int, default=16, help="waitress threads (default 16, as `stackgan serve`)")
    ap.add_argument("--channel-timeout", type=int, default=30, help="as `stackgan serve` (default 30)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if not 1 <= args.seconds <= 600 or not 1 <= args.clients <= 64 or not 0 <= args.slow <= 1000:
        ap.error("--seconds 1..600, --clients 1..64, --slow 0..1000")

    import logging

    from stackgan.commands.serve_cmd import make_server
    from stackgan.web.app import create_app

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    app = create_app(args.checkpoint, device="cpu", precision=args.precision, max_waiting=args.threads - 2)
    server = make_server(app, "127.0.0.1", 0, args.threads, channel_timeout=args.channel_timeout)
    port = server.effective_port
    threading.Thread(target=serve_until_closed, args=(server,), daemon=True).start()
    out: dict = {"checkpoint": args.checkpoint, "threads": args.threads, "clients": args.clients, "n": args.n,
                 "slow": args.slow, "seconds": args.seconds}
    try:
        for i in range(3):  # warm-up
            page_ms(port, 100 + i)
        out["unloaded"] = {"health": stats([get_ms(port, "/api/health") for _ in range(20)]),
                           "page_n1": stats([page_ms(port, 200 + i) for i in range(20)])}

        slow = []
        for _ in range(args.slow):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
            slow.append(s)
        stop = threading.Event()
        done = [0] * args.clients

        def client(k: int) -> None:
            from http.client import HTTPConnection

            conn = HTTPConnection("127.0.0.1", port, timeout=300)
            seed = 1000 * k
            while not stop.is_set():
                post(port, "/api/generate", {"name": NAME, "n": args.n, "seed": seed}, conn)
                seed += args.n
                done[k] += 1
            conn.close()

        loaders = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(args.clients)]
        for t in loaders:
            t.start()
        health, page = [], []
        t_end = time.perf_counter() + args.seconds
        i = 0
        while time.perf_counter() < t_end:
            health.append(get_ms(port, "/api/health"))
            if i % 4 == 0:
                page.append(page_ms(port, 300 + i))
            i += 1
            time.sleep(0.05)
        stop.set()
        for t in loaders:
            t.join(timeout=300)
        out["loaded"] = {"health": stats(health), "page_n1": stats(page),
                         "loading_requests": sum(done), "loading_pictures": sum(done) * args.n}
        out["page_slowdown_p50"] = round(out["loaded"]["page_n1"]["p50_ms"] / out["unloaded"]["page_n1"]["p50_ms"], 2)
        wait = max(0.0, args.channel_timeout + 2 - args.seconds)
        time.sleep(wait)
        closed = 0
        for s in slow:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                pass
            s.close()
        out["slow_closed_by_server"] = closed
    finally:
        server.close()
    print(json.dumps(out, ensure_ascii=False, indent=1))
    ok = out["loaded"]["health"]["p95_ms"] <= 1000 and out["page_slowdown_p50"] <= 3.0
    print(f"health p95 {out['loaded']['health']['p95_ms']} ms (target <= 1000); page n=1 p50 "
          f"{out['unloaded']['page_n1']['p50_ms']} -> {out['loaded']['page_n1']['p50_ms']} ms "
          f"(x{out['page_slowdown_p50']}, target <= 3); stalled connections closed: {closed}/{args.slow}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
