"""`stackgan serve`: the web page and its JSON API on a production WSGI server (waitress)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Optional

from stackgan.commands import add_trust_argument, apply_trust_argument
from stackgan.config import PRECISIONS, Config, opt
from stackgan.errors import ConfigError

DESCRIPTION = """\
Serve the web page (type an invented dish name, get pictures) and its JSON API with waitress.
The model is loaded once at start from --checkpoint (a StackGAN run folder or checkpoint; default:
the shipped model in models/default). Inference runs on --device (cpu by default) behind a lock,
so --threads only lets requests queue and stream concurrently; pictures are deterministic for
(name, seed).

API: POST /api/generate {"name", "n", "seed"}, POST /api/variations, POST /api/explore,
GET /api/image.png?name=&seed=, GET /api/health, GET /api/model.
"""

EPILOG = """\
examples:
  stackgan serve                                        # http://127.0.0.1:8000/
  stackgan serve --checkpoint runs/stackgan/menu --port 8080
  stackgan serve --host 0.0.0.0 --threads 8             # reachable from other machines
development server with reload:
  STACKGAN_CHECKPOINT=runs/stackgan/menu flask --app stackgan.web.app run --debug
"""


@dataclasses.dataclass
class ServeConfig(Config):
    checkpoint: Optional[str] = opt(None, "StackGAN run folder or checkpoint (default: models/default)")
    host: str = opt("127.0.0.1", "interface to listen on (0.0.0.0 = every interface)")
    port: int = opt(8000, "TCP port (0: any free port)", min=0, max=65535)
    threads: int = opt(16, "waitress worker threads; at most threads - 2 requests wait for the model (more get a "
                           "503 with Retry-After), so two threads always answer /api/health and the page's files",
                       min=3, max=64)
    channel_timeout: int = opt(30, "close a connection idle (or sending its request slowly) for this many seconds",
                               min=1, max=3600)
    connection_limit: int = opt(200, "most open connections; more wait in the listen backlog", min=1, max=10_000)
    device: str = opt("cpu", "torch device for inference (cpu, cuda, auto)")
    precision: str = opt("auto", "inference precision: auto (bf16 where the device runs it natively: 1.6x faster "
                                 "for 8 pictures on such a CPU, invisible in the pictures), fp32 or bf16",
                         choices=PRECISIONS)

    def check(self) -> None:
        if not self.host.strip():
            raise ConfigError("--host must not be empty")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve",
        help="serve the web page and JSON API (waitress)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ServeConfig.add_arguments(p)
    add_trust_argument(p)  # a run folder without G_ema.safetensors is served from its checkpoint
    p.set_defaults(func=run)
    return p


MAX_HEADER_BYTES = 16 * 1024


def make_server(app, host: str, port: int, threads: int, channel_timeout: int = 30, connection_limit: int = 200):
    """The waitress server of ``stackgan serve``. Bodies above the app's limit (Flask's
    ``MAX_CONTENT_LENGTH``, 16 KiB) are refused by waitress from their Content-Length, with a 413,
    before any byte of them is read or spooled to disk; headers are capped at 16 KiB.

    Slow clients are harmless by design: waitress reads requests on its event loop and hands a
    request to a worker thread only once it has fully arrived, so a connection that holds its
    headers open costs a socket, not a thread, and is closed after ``channel_timeout`` seconds of
    silence; at most ``connection_limit`` are open at once. The compute per request is capped by the
    app (at most 16 pictures), so ``threads`` requests at a time bound the work."""
    from waitress import create_server

    return create_server(app, host=host, port=port, threads=threads, ident="stackgan",
                         clear_untrusted_proxy_headers=True,
                         max_request_body_size=int(app.config["MAX_CONTENT_LENGTH"]),
                         max_request_header_size=MAX_HEADER_BYTES, channel_timeout=channel_timeout,
                         connection_limit=connection_limit, cleanup_interval=min(30, channel_timeout))


def run(args: argparse.Namespace) -> int:
    apply_trust_argument(args)
    cfg = ServeConfig.from_args(args)
    from stackgan.utils.device import resolve_device
    from stackgan.web.app import create_app

    import logging

    # the model it loads and one line per request (method, path, status, ms) on standard error
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    device = str(resolve_device(cfg.device))
    app = create_app(cfg.checkpoint, device=device, precision=cfg.precision, max_waiting=cfg.threads - 2)
    service = app.extensions["stackgan"]
    try:
        server = make_server(app, cfg.host, cfg.port, cfg.threads, cfg.channel_timeout, cfg.connection_limit)
    except OSError as exc:  # port in use, unknown host, no permission
        raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None
    host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
    print(f"model: {service.source} on {device} ({service.pipeline.precision})")
    print(f"serving on http://{host}:{server.effective_port}/  ({cfg.threads} threads; Ctrl-C stops)",
          flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.close()
    return 0
