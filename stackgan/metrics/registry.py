"""The metrics registry: every metric of `stackgan evaluate` and `stackgan compare` by name.

A metric is a function of a :class:`MetricContext` (the sampler, the real data, the classifiers, the
protocol, where pictures go) that returns a dict of results to merge into the model's results, or
None when it does not apply (the R-precision of a DCGAN). It is registered under a name::

    @register_metric("fid_in_domain", "FID/KID on in-domain classifier features, with the floor")
    def fid_in_domain(ctx): ...

and picked by name: ``--metrics faithfulness,fid_in_domain`` (``all``: every one that applies). Picture
sets that several metrics use (the training names' pictures, the name-matched FID set) are drawn once
per context, on first use, so any subset of metrics gives the same numbers as the full run. Each metric
also leaves one JSON line in ``metrics.jsonl`` beside the report (as stylegan2-ada's
``metric-*.jsonl``): its name, the model, its results and its time.

The built-in metrics live with the code they call (:mod:`stackgan.metrics.evaluate` for those of any
sampler, :mod:`stackgan.metrics.runeval` for those that need a StackGAN run); :func:`metric_names`
imports both.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable

from stackgan.errors import ConfigError

ALL = "all"


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    help: str
    fn: Callable[["MetricContext"], dict | None]
    needs_run: bool = False  # needs a StackGAN run (its pipeline, checkpoints), not only a sampler


_METRICS: dict[str, Metric] = {}


def register_metric(name: str, help: str, needs_run: bool = False):
    """Decorator: register ``fn(ctx) -> dict | None`` as the metric ``name`` (in the order of registration)."""
    def wrap(fn):
        if name in _METRICS and _METRICS[name].fn is not fn:
            raise ValueError(f"metric {name!r} is registered twice")
        _METRICS[name] = Metric(name, help, fn, needs_run)
        return fn
    return wrap


def _load_builtins() -> None:
    from stackgan.metrics import evaluate, runeval  # noqa: F401  (registers their metrics)


def metrics() -> dict[str, Metric]:
    """Every registered metric, by name, in the order they run."""
    _load_builtins()
    return dict(_METRICS)


def metric_names() -> list[str]:
    return list(metrics())


def parse_metrics(spec: str | None) -> list[str]:
    """``all`` / None / "" -> every metric; else the comma-separated names, checked, in the registry's order."""
    known = metric_names()
    if spec is None or not spec.strip() or spec.strip() == ALL:
        return known
    asked = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in asked if s not in known]
    if bad:
        raise ConfigError(f"unknown metric(s) {', '.join(bad)} in --metrics; known: {', '.join(known)} (or all)")
    return [n for n in known if n in asked]


@dataclasses.dataclass
class RunContext:
    """What the run-level metrics need besides a sampler (``stackgan evaluate`` on a StackGAN run)."""

    info: Any  # stackgan.metrics.runs.RunInfo
    desc: dict  # make_sampler's description (``pipeline``, ``sampler``, ``stage``)
    device: Any
    dprobe_steps: int = 0
    dprobe_names: int = 4


@dataclasses.dataclass
class MetricContext:
    """Everything a metric may read; picture sets shared between metrics are drawn once, lazily."""

    sampler: Callable  # (name, n, seed) -> uint8 [n, 3, H, W]
    data: Any  # stackgan.metrics.realdata.RealData
    clf: Any  # the in-domain classifier: features for FID/KID, diversity and memorisation
    proto: Any  # stackgan.metrics.evaluate.Protocol
    reader: Any = None  # reads faithfulness when given (the menu's attribute reader), else clf
    inception: Any = None  # a loaded inception network for the Inception FID/KID, or None
    out: Path | None = None  # where pictures go (None: none are written)
    label: str = "model"
    say: Callable[[str], None] = lambda s: None
    run: RunContext | None = None
    cache: dict = dataclasses.field(default_factory=dict)

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """``make()`` once per context under ``key`` (the picture sets several metrics use)."""
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]


def run_metrics(ctx: MetricContext, names: list[str] | None = None, jsonl: str | Path | None = None) -> dict:
    """Run the metrics ``names`` (all when None) on ``ctx``; their results merged into one dict. Metrics
    that need a run are skipped without one (and said so when they were asked for by name)."""
    table = metrics()
    names = list(table) if names is None else names
    asked_all = names == list(table)
    res: dict = {}
    seconds: dict[str, float] = {}
    for name in names:
        m = table[name]
        if m.needs_run and ctx.run is None:
            if not asked_all:
                ctx.say(f"metric {name} skipped: it needs a StackGAN run folder")
            continue
        t0 = time.perf_counter()
        got = m.fn(ctx)
        seconds[name] = round(time.perf_counter() - t0, 2)
        if got is None:
            continue
        for key, value in got.items():  # pictures of several metrics gather in one "files"
            if key == "files" and isinstance(res.get("files"), dict):
                res["files"] = {**res["files"], **value}
            else:
                res[key] = value
        if jsonl is not None:
            _append_jsonl(jsonl, {"metric": name, "model": ctx.label, "results": got, "seconds": seconds[name],
                                  "timestamp": time.time()})
    res["metric_seconds"] = seconds
    return res


def _append_jsonl(path: str | Path, record: dict) -> None:
    from stackgan.metrics.report import jsonable

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(jsonable(record), ensure_ascii=False) + "\n")


__all__ = ["ALL", "Metric", "MetricContext", "RunContext", "register_metric", "metrics", "metric_names",
           "parse_metrics", "run_metrics"]
