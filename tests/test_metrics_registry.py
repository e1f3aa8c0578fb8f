"""The metrics registry: names, selection, one JSON line per metric, shared picture sets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stackgan.errors import ConfigError
from stackgan.metrics import registry
from stackgan.metrics.registry import MetricContext, parse_metrics, register_metric, run_metrics

BUILTIN = ["faithfulness", "fid_in_domain", "fid_detail", "spectrum", "patches", "two_sample", "fid_inception", "diversity", "memorisation",
           "rprecision", "dprobe"]


def test_the_builtin_metrics_in_order_and_their_selection():
    assert registry.metric_names() == BUILTIN
    assert parse_metrics("all") == parse_metrics(None) == parse_metrics(" ") == BUILTIN
    assert parse_metrics("memorisation, faithfulness") == ["faithfulness", "memorisation"]  # the registry's order
    with pytest.raises(ConfigError, match=r"unknown metric\(s\) fid, is in --metrics; known: faithfulness, "):
        parse_metrics("fid,is,diversity")


def test_the_help_of_evaluate_names_every_metric():
    from stackgan.metrics.config import ProtocolOptions

    helptext = {f.name: f.metadata for f in __import__("dataclasses").fields(ProtocolOptions)}["metrics"]
    assert all(name in str(helptext) for name in BUILTIN)


def test_a_name_is_registered_once():
    def one(ctx):
        return {"x": 1}

    try:
        register_metric("test_only_metric", "a test")(one)
        register_metric("test_only_metric", "a test")(one)  # the same function again (a re-import) is fine
        with pytest.raises(ValueError, match="registered twice"):
            register_metric("test_only_metric", "another")(lambda ctx: {})
    finally:
        registry._METRICS.pop("test_only_metric", None)


def test_run_metrics_merges_files_skips_run_metrics_and_writes_one_line_each(tmp_path, monkeypatch):
    calls = []

    def a(ctx):
        calls.append("a")
        return {"a": ctx.shared("pictures", lambda: calls.append("drawn") or [1, 2]), "files": {"ga": "a.png"}}

    def b(ctx):
        calls.append("b")
        return {"b": len(ctx.shared("pictures", lambda: calls.append("drawn") or [9])), "files": {"gb": "b.png"}}

    def needs(ctx):
        raise AssertionError("a run-level metric ran without a run")

    monkeypatch.setattr(registry, "_METRICS", {})
    monkeypatch.setattr(registry, "_load_builtins", lambda: None)
    register_metric("a", "first")(a)
    register_metric("b", "second")(b)
    register_metric("r", "run only", needs_run=True)(needs)
    said = []
    ctx = MetricContext(sampler=None, data=None, clf=None, proto=None, label="m", say=said.append)
    res = run_metrics(ctx, None, jsonl=tmp_path / "m.jsonl")
    assert calls == ["a", "drawn", "b"]  # the shared set is drawn once
    assert res["a"] == [1, 2] and res["b"] == 2 and res["files"] == {"ga": "a.png", "gb": "b.png"}
    assert set(res["metric_seconds"]) == {"a", "b"} and not said  # "all" skips run metrics quietly
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(x["metric"], x["model"]) for x in lines] == [("a", "m"), ("b", "m")]
    assert lines[1]["results"] == {"b": 2, "files": {"gb": "b.png"}}
    run_metrics(ctx, ["r"])
    assert said == ["metric r skipped: it needs a StackGAN run folder"]


def test_no_library_module_reads_the_command_line():
    """Only the CLI entry point reads sys.argv; library code gets what it needs as arguments."""
    root = Path(__file__).resolve().parents[1] / "stackgan"
    readers = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if re.search(r"\bsys\.argv\b", p.read_text(encoding="utf-8"))]
    assert readers == ["cli.py"]
