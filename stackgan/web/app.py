"""The Flask app: type an invented dish name, get pictures.

``create_app(pipeline_or_path)`` builds the app around one :class:`stackgan.inference.Pipeline`,
loaded once at start. Every model call runs under ``torch.inference_mode()`` behind a lock, so
the threads of a WSGI server (waitress in ``stackgan serve``) can share it safely. The web layer
only calls the small inference API (``generate``, ``variations``, ``explore``, ``neighbours``,
``info``); it never imports training code.

Routes::

    GET  /                      the page (templates/index.html, static/app.js + style.css)
    GET  /api/health            {"status": "ok", ...}
    GET  /api/model             what is loaded: stages, sizes, text encoder, data, metrics
    POST /api/generate          {"name", "n", "seed"?, "truncation"?} -> images, seeds, neighbours
    POST /api/variations        {"name", "seed", "n", "sigma"} -> images around one picture
    POST /api/explore           {"name", "seed", "offsets": [..]} -> one picture moved along directions
    GET  /api/image.png         ?name=&seed=&stage=1|2 -> one picture as a PNG download

Under ``flask run`` use ``flask --app stackgan.web.app run`` (the module builds ``app`` lazily on first
access, from ``$STACKGAN_CHECKPOINT`` or the shipped ``models/default``) or the factory
``flask --app 'stackgan.web.app:create_app()' run``.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import logging
import math
import os
import re
import secrets
import threading
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map

from stackgan.defaults import DEFAULT_MODEL, default_model
from stackgan.errors import CheckpointError, UserError

log = logging.getLogger(__name__)
access_log = logging.getLogger("stackgan.access")  # one line per request: method, path, status, ms


MAX_NAME_CHARS = 64
MAX_N = 16
MAX_SEED = 2**31 - 1
MAX_SIGMA = 2.0
MAX_OFFSET = 3.0
MAX_BODY_BYTES = 16 * 1024
# example chips: names the shipped model draws well (two training names' neighbours, two invented combinations);
# a dish far from the menu, such as 抹茶チーズケーキ, still gets pictures, with a note that says it is far
EXAMPLES = ("ピリ辛サーモン丼", "月見カレーうどん", "冷やし月見そば", "焦がし醤油ラーメン")

# Zero-width (non-)joiners are format characters that real text (emoji, some scripts) needs.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}


class BadRequest(UserError):
    """A request the API refuses with a 400 and this message."""


# -- validation ---------------------------------------------------------------------------------
def clean_name(value: Any) -> str:
    """The dish name of a request: a string, NFKC-normalised and trimmed, 1..64 characters,
    without control characters. Raises :class:`BadRequest` with a message for the page."""
    if value is None:
        raise BadRequest("name is required")
    if not isinstance(value, str):
        raise BadRequest("name must be a string")
    for ch in value:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Co", "Zl", "Zp") or (cat == "Cf" and ch not in _ALLOWED_FORMAT):
            raise BadRequest(f"name contains a control character (U+{ord(ch):04X})")
    name = unicodedata.normalize("NFKC", value).strip()
    if not name:
        raise BadRequest("name is empty: type a dish name, e.g. ピリ辛サーモン丼")
    if len(name) > MAX_NAME_CHARS:
        raise BadRequest(f"name is too long: {len(name)} characters, at most {MAX_NAME_CHARS}")
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in name):
        raise BadRequest("name has no visible character (only spaces, joiners or combining marks)")
    return name


def clean_int(value: Any, field: str, lo: int, hi: int, default: int | None = None) -> int:
    """A JSON integer in [lo, hi]; bools, floats and strings are refused."""
    if value is None:
        if default is None:
            raise BadRequest(f"{field} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{field} must be an integer, got {_describe(value)}")
    if not lo <= value <= hi:
        raise BadRequest(f"{field} must be between {lo} and {hi}, got {_number(value)}")
    return value


def _number(value: int) -> str:
    """An integer for a message: huge ones (thousands of digits) by their size only."""
    return str(value) if value.bit_length() <= 64 else f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"


def clean_float(value: Any, field: str, lo: float, hi: float, default: float | None = None) -> float:
    """A finite JSON number in [lo, hi]; bools and strings are refused."""
    if value is None:
        if default is None:
            raise BadRequest(f"{field} is required")
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{field} must be a number, got {_describe(value)}")
    if isinstance(value, int) and not lo <= value <= hi:  # before float(): a huge int overflows it
        raise BadRequest(f"{field} must be between {lo:g} and {hi:g}, got {_number(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise BadRequest(f"{field} must be a finite number, got {value}")
    if not lo <= value <= hi:
        raise BadRequest(f"{field} must be between {lo:g} and {hi:g}, got {value:g}")
    return value


def clean_seed(value: Any, required: bool = False) -> int:
    """A seed in [0, 2**31 - 1]; missing (or null) means a fresh random seed unless required."""
    if value is None and not required:
        return secrets.randbelow(MAX_SEED - MAX_N)
    return clean_int(value, "seed", 0, MAX_SEED - MAX_N)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, float):
        return "a fractional number" if math.isfinite(value) else "a non-finite number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int):
        return "a number"
    return type(value).__name__


class UnsupportedMediaType(BadRequest):
    """A POST whose body is not declared as JSON (415)."""


def read_json_object(allowed: set[str]) -> dict[str, Any]:
    """The request body as a JSON object with only the ``allowed`` keys (``Content-Type:
    application/json`` required, so that a plain HTML form of another site cannot post here)."""
    if request.mimetype != "application/json":
        got = (request.mimetype or "none")[:60]
        raise UnsupportedMediaType(f"send the request body as JSON with Content-Type: application/json (got {got})")
    raw = request.get_data(cache=False)  # raises 413 past MAX_CONTENT_LENGTH
    if not raw.strip():
        raise BadRequest("the request body is empty: send a JSON object")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except ValueError:  # an integer of more than 4300 digits
        raise BadRequest("the request body is not valid JSON: a number in it is too long") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {_describe(body)}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        shown = ", ".join(k[:40] for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise BadRequest(f"unknown field(s): {shown}; allowed: {', '.join(sorted(allowed))}")
    return body


# -- images -------------------------------------------------------------------------------------
def png_bytes(image) -> bytes:
    """One [-1, 1] float image [C, H, W] -> PNG bytes."""
    import io

    from stackgan.utils.viz import to_pil, to_uint8

    buf = io.BytesIO()
    to_pil(to_uint8(image[None])[0]).save(buf, format="PNG")
    return buf.getvalue()


def data_url(image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _images(result, seeds: list[int] | None = None) -> list[dict[str, Any]]:
    stage1 = result.stage1
    stage2 = getattr(result, "stage2", None)
    seeds = list(seeds if seeds is not None else getattr(result, "seeds", None) or [])
    out = []
    for i in range(stage1.shape[0]):
        item: dict[str, Any] = {"stage1": data_url(stage1[i]),
                                "stage2": data_url(stage2[i]) if stage2 is not None else None}
        if i < len(seeds):
            item["seed"] = int(seeds[i])
        out.append(item)
    return out


# -- the app ------------------------------------------------------------------------------------
class ServerBusy(Exception):
    """Too many requests are already waiting for the model: answered 503 with Retry-After."""


class SmallestFirstLock:
    """The model's lock: one holder at a time, and on release the waiter with the smallest cost
    (pictures still to draw; ties in arrival order) goes next, so a page's one picture is not stuck
    behind other clients' 16-picture requests. At most ``max_waiting`` may wait; more raise
    :class:`ServerBusy` at once, so waiting requests can never take every server thread."""

    def __init__(self, max_waiting: int = 14):
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._busy = False
        self._waiting: list[tuple[float, int]] = []
        self._tickets = itertools.count()

    @contextmanager
    def hold(self, cost: float):
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise ServerBusy(f"{len(self._waiting)} requests are waiting for the model")
            entry = (float(cost), next(self._tickets))
            heapq.heappush(self._waiting, entry)
            try:
                while self._busy or self._waiting[0] != entry:
                    self._cond.wait()
            except BaseException:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
                self._cond.notify_all()
                raise
            heapq.heappop(self._waiting)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


#: pictures drawn per turn of the model lock: a large request is drawn in turns, so that smaller ones
#: interleave (picture i depends on seed + i only, so the pictures are the same up to float rounding)
CHUNK = 4


class ModelService:
    """The loaded pipeline, its lock and the few facts the page needs about it."""

    def __init__(self, pipeline, source: str, max_waiting: int = 14):
        self.pipeline = pipeline
        self.source = source  # for the server's own log and console
        # what clients see: the model folder's name, never where it lies on the server
        self.public_source = Path(source).name or source if os.sep in source or "/" in source else source
        self.lock = SmallestFirstLock(max_waiting)
        self.loaded_at = time.time()
        self._info: dict[str, Any] | None = None

    def call(self, method: str, *args, cost: float = 0.0, **kwargs):
        import torch

        with self.lock.hold(cost), torch.inference_mode():
            return getattr(self.pipeline, method)(*args, **kwargs)

    def generate(self, name: str, n: int, seed: int, truncation: float = 1.0):
        """``pipeline.generate`` drawn in turns of :data:`CHUNK` pictures (the same pictures up to float rounding)."""
        if n <= CHUNK:
            return self.call("generate", name, n, seed=seed, truncation=truncation, cost=n)
        import torch

        parts = [self.call("generate", name, min(CHUNK, n - i), seed=seed + i, truncation=truncation, cost=n - i)
                 for i in range(0, n, CHUNK)]
        first = parts[0]
        return type(first)(torch.cat([p.stage1 for p in parts]),
                           torch.cat([p.stage2 for p in parts]) if first.stage2 is not None else None,
                           [s for p in parts for s in p.seeds], torch.cat([p.z for p in parts]))

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = _jsonable(self.call("info"))
        return self._info

    def n_directions(self) -> int:
        return int(self.info().get("explore_directions", 0) or 0)


def _jsonable(obj: Any) -> Any:
    """Info dicts may hold paths, tuples or tensors: make them plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return str(obj)


def load_model(pipeline_or_path: Any = None, device: str = "cpu", precision: str = "fp32") -> ModelService:
    """A :class:`ModelService` from a Pipeline object, a run folder / checkpoint path, or (None)
    ``$STACKGAN_CHECKPOINT`` / the shipped ``models/default``."""
    if pipeline_or_path is not None and not isinstance(pipeline_or_path, (str, os.PathLike)):
        return ModelService(pipeline_or_path, source=type(pipeline_or_path).__name__)
    path = Path(pipeline_or_path) if pipeline_or_path else default_model()
    if not path.exists():
        hint = (" (the shipped model folder is missing; train one with `stackgan train` and pass "
                "--checkpoint RUN_FOLDER)" if path == DEFAULT_MODEL else "")
        raise CheckpointError(f"no model at {path}{hint}")
    from stackgan.inference import load_pipeline

    t0 = time.perf_counter()
    pipeline = load_pipeline(path, device=device, precision=precision)
    log.info("loaded %s in %.1f s", path, time.perf_counter() - t0)
    return ModelService(pipeline, source=str(path))


class _NoMergeMap(Map):
    """No redirect from //x to /x: werkzeug builds that redirect's absolute Location from the client's
    Host header, so a crafted Host would be reflected; a doubled slash is a 404 instead."""

    def __init__(self, *args, **kwargs):
        kwargs["merge_slashes"] = False
        super().__init__(*args, **kwargs)


class _App(Flask):
    url_map_class = _NoMergeMap


def create_app(pipeline_or_path: Any = None, *, device: str = "cpu", max_n: int = MAX_N,
               max_body_bytes: int = MAX_BODY_BYTES, warm_up: bool = True, precision: str = "fp32",
               max_waiting: int = 14) -> Flask:
    """The Flask app around one pipeline (a ``Pipeline`` object or a path to load).

    ``warm_up`` draws one picture of a new name at once, so that the text encoder is loaded (or
    fails, with its message) at start rather than on the first visitor's request.
    """
    service = load_model(pipeline_or_path, device=device, precision=precision)
    service.lock.max_waiting = max_waiting
    if warm_up:
        t0 = time.perf_counter()
        service.call("generate", EXAMPLES[0], 1, seed=0)
        log.info("warm-up picture in %.1f s", time.perf_counter() - t0)
    app = _App(__name__, static_folder="static", template_folder="templates")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.json.sort_keys = False
    app.json.ensure_ascii = False  # Japanese stays readable in responses
    app.extensions["stackgan"] = service
    started = time.time()

    def api_error(status: int, message: str) -> tuple[Response, int]:
        # echoed input may hold lone surrogates (not encodable) or be long: keep the message sendable
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        if len(message) > 500:
            message = message[:500] + "..."
        return jsonify(error=message, status=status), status

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest):
        return api_error(415 if isinstance(exc, UnsupportedMediaType) else 400, str(exc))

    @app.errorhandler(ServerBusy)
    def _busy(exc: ServerBusy):
        resp, status = api_error(503, "the server is busy drawing other pictures; try again in a moment")
        resp.headers["Retry-After"] = "1"
        return resp, status

    @app.errorhandler(UserError)
    def _user_error(exc: UserError):  # raised by the pipeline for a request it cannot serve
        return api_error(400, str(exc))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if not request.path.startswith("/api/"):
            return exc
        messages = {413: f"the request body is too large (at most {max_body_bytes} bytes)",
                    404: f"no such API route: {request.path}",
                    405: f"{request.method} is not allowed on {request.path}"}
        return api_error(exc.code or 500, messages.get(exc.code, exc.description or exc.name))

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        log.exception("internal error on %s", request.path)  # the details go to the log, not the client
        return api_error(500, "internal error: the server could not make this picture; see its log")

    @app.before_request
    def _start_clock() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    def _headers(resp: Response) -> Response:
        if access_log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - g.t0) * 1000 if "t0" in g else float("nan")
            path = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in request.path[:200])
            access_log.info("%s %s %d %.1f ms", request.method, path, resp.status_code, ms)
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path.startswith("/api/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.get("/")
    def index():
        return render_template("index.html", examples=EXAMPLES, max_n=max_n,
                               max_name=MAX_NAME_CHARS, name=request.args.get("name", "")[:200],
                               max_sigma=MAX_SIGMA, max_offset=MAX_OFFSET)

    @app.get("/api/health")
    def health():
        return jsonify(status="ok", model=service.public_source, uptime_s=round(time.time() - started, 1))

    @app.get("/api/model")
    def model():
        info = dict(service.info())
        info["limits"] = {"max_n": max_n, "max_name_chars": MAX_NAME_CHARS, "max_seed": MAX_SEED - MAX_N,
                          "max_sigma": MAX_SIGMA, "max_offset": MAX_OFFSET}
        info["source"] = service.public_source
        return jsonify(info)

    @app.post("/api/generate")
    def generate():
        body = read_json_object({"name", "n", "seed", "truncation"})
        name = clean_name(body.get("name"))
        n = clean_int(body.get("n"), "n", 1, max_n, default=4)
        seed = clean_seed(body.get("seed"))
        truncation = clean_float(body.get("truncation"), "truncation", 0.05, 1.0, default=1.0)
        t0 = time.perf_counter()
        result = service.generate(name, n, seed=seed, truncation=truncation)
        neighbours = service.call("neighbours", name, k=5)
        familiar = service.call("familiarity", name) if hasattr(service.pipeline, "familiarity") else None
        ms = (time.perf_counter() - t0) * 1000
        return jsonify(name=name, seed=seed, n=n, truncation=truncation,
                       images=_images(result), neighbours=_neighbours(neighbours), familiarity=familiar,
                       elapsed_ms=round(ms, 1))

    @app.post("/api/variations")
    def variations():
        body = read_json_object({"name", "seed", "n", "sigma"})
        name = clean_name(body.get("name"))
        seed = clean_seed(body.get("seed"), required=True)
        n = clean_int(body.get("n"), "n", 1, max_n, default=8)
        sigma = clean_float(body.get("sigma"), "sigma", 0.0, MAX_SIGMA, default=0.3)
        t0 = time.perf_counter()
        result = service.call("variations", name, seed, n, sigma, cost=n)
        ms = (time.perf_counter() - t0) * 1000
        return jsonify(name=name, seed=seed, sigma=sigma, images=_images(result, seeds=[]),
                       elapsed_ms=round(ms, 1))

    @app.post("/api/explore")
    def explore():
        body = read_json_object({"name", "seed", "offsets"})
        name = clean_name(body.get("name"))
        seed = clean_seed(body.get("seed"), required=True)
        k = service.n_directions()
        offsets = body.get("offsets")
        if not isinstance(offsets, list):
            raise BadRequest(f"offsets must be a list of {k} numbers, got {_describe(offsets)}")
        if len(offsets) != k:
            raise BadRequest(f"offsets must have {k} numbers (one per direction), got {len(offsets)}")
        offsets = [clean_float(v, f"offsets[{i}]", -MAX_OFFSET, MAX_OFFSET) for i, v in enumerate(offsets)]
        t0 = time.perf_counter()
        result = service.call("explore", name, seed, offsets, cost=1)
        ms = (time.perf_counter() - t0) * 1000
        return jsonify(name=name, seed=seed, offsets=offsets, images=_images(result, seeds=[]),
                       elapsed_ms=round(ms, 1))

    @app.get("/api/image.png")
    def image_png():
        args = request.args
        name = clean_name(args.get("name"))
        seed = clean_int(_query_int(args.get("seed"), "seed"), "seed", 0, MAX_SEED - MAX_N)
        stage = clean_int(_query_int(args.get("stage", "2"), "stage"), "stage", 1, 2)
        result = service.generate(name, 1, seed=seed)
        if result.stage2 is None:
            stage = 1  # a stage-I model: its pictures are the final ones
        image = result.stage2[0] if stage == 2 else result.stage1[0]
        resp = Response(png_bytes(image), mimetype="image/png")
        resp.headers["Content-Disposition"] = f"attachment; filename=stackgan-seed{seed}-stage{stage}.png"
        return resp

    return app


_QUERY_INT = re.compile(r"-?[0-9]+")


def _query_int(value: str | None, field: str) -> int | None:
    """An integer from the query string: ASCII digits with an optional minus sign, at most 18 digits."""
    if value is None or value == "":
        return None
    value = value.strip()
    if not _QUERY_INT.fullmatch(value):
        shown = value[:20].encode("utf-8", "backslashreplace").decode("utf-8")
        raise BadRequest(f"{field} must be an integer, got {shown!r}" + ("..." if len(value) > 20 else ""))
    if len(value.lstrip("-")) > 18:
        raise BadRequest(f"{field} is out of range: a number of {len(value.lstrip('-'))} digits")
    return int(value)


def _neighbours(items) -> list[dict[str, Any]]:
    return [{"name": str(name), "similarity": round(float(sim), 4)} for name, sim in items]


def __getattr__(attr: str):
    """``flask --app stackgan.web.app run`` looks up ``app``: build it on first access, not at import."""
    if attr in ("app", "application"):
        global app
        app = create_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
