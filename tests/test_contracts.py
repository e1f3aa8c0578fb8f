"""The one-way flow (data -> text -> models -> train -> evaluate -> web) as import contracts, checked in
fresh interpreters: training never loads Flask; inference and the web layer never load training code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _loaded_after(*modules: str) -> set[str]:
    code = ("import importlib, json, sys\n"
            f"for m in {list(modules)!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["stackgan.train.stackgan", "stackgan.train.dcgan", "stackgan.metrics.runs"])
def test_training_and_evaluation_never_load_flask(module):
    loaded = _loaded_after(module)
    assert "flask" not in loaded and not any(m == "stackgan.web" or m.startswith("stackgan.web.") for m in loaded)


@pytest.mark.parametrize("module", ["stackgan.inference", "stackgan.pipeline", "stackgan.web.app"])
def test_inference_and_the_web_never_load_training_code(module):
    loaded = _loaded_after(module)
    assert not [m for m in loaded if m.startswith("stackgan.train")], module


def test_dcgan_inference_loads_neither_training_code_nor_flask():
    loaded = _loaded_after("stackgan.inference_dcgan")
    assert not [m for m in loaded if m.startswith("stackgan.train")]
    assert "flask" not in loaded and not any(m == "stackgan.web" or m.startswith("stackgan.web.") for m in loaded)


def test_the_run_folder_reader_loads_neither_training_code_nor_flask_nor_torch():
    loaded = _loaded_after("stackgan.runs")
    assert not [m for m in loaded if m.startswith("stackgan.train")]
    assert "flask" not in loaded and not any(m == "stackgan.web" or m.startswith("stackgan.web.") for m in loaded)
    assert "torch" not in loaded  # the command line reads a run's kind without loading torch


def test_the_old_schema_path_still_imports():
    from stackgan.stackgan_config import StackGANConfig
    from stackgan.train.stackgan_config import StackGANConfig as Old

    assert Old is StackGANConfig


def test_the_old_dcgan_schema_path_still_imports():
    from stackgan.dcgan_config import DCGANConfig
    from stackgan.train.dcgan import DCGANConfig as FromTrainer
    from stackgan.train.dcgan_config import DCGANConfig as Old

    assert Old is DCGANConfig and FromTrainer is DCGANConfig
