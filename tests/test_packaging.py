"""The wheel: `pip wheel .` (no dependencies, no network) holds the package with the web app's templates
and static files, the shipped model as data files, and no top-level `web` package (a name another
project owns on the package index); a non-editable install finds that model."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # builds a wheel: 10-30 s
def test_the_wheel_holds_the_package_and_the_page_files(tmp_path):
    import shutil

    src = tmp_path / "src"  # what a fresh clone has that the build reads: no venv, runs or caches
    shutil.copytree(REPO / "stackgan", src / "stackgan", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "models" / "default", src / "models" / "default")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("stackgan-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("stackgan/cli.py", "stackgan/pipeline.py", "stackgan/web/app.py", "stackgan/web/templates/index.html",
                 "stackgan/web/static/app.js", "stackgan/web/static/style.css", "stackgan/stackgan_config.py"):
        assert must in names, must
    assert not [n for n in names if n.startswith("web/")], "a top-level web package must not ship"
    assert not [n for n in names if n.startswith("tests/") or n.endswith(".pt")]
    # the shipped model, as data files that a non-editable install puts under <prefix>/share/stackgan
    data = "stackgan-" + wheel.name.split("-")[1] + ".data/data/share/stackgan/models/default/"
    for f in ("config.json", "G_ema.safetensors", "names.json", "embeddings.safetensors", "metrics.json", "README.md",
              "stage1/config.json", "stage1/G_ema.safetensors"):
        assert data + f in names, data + f


def test_an_installed_shipped_model_is_found_when_the_source_tree_has_none(tmp_path, monkeypatch):
    """What `pip install .` gives: no models/ next to the package, the model under the data path."""
    import stackgan.defaults as d

    monkeypatch.setattr(d, "SOURCE_MODEL", tmp_path / "site-packages" / "models" / "default")  # not there
    installed = tmp_path / "venv" / d.INSTALLED_RELATIVE
    monkeypatch.setattr(d, "installed_model_candidates", lambda: [tmp_path / "user" / d.INSTALLED_RELATIVE, installed])
    assert d.shipped_model() == d.SOURCE_MODEL  # neither: the source path, which the error messages name
    (installed / "stage1").mkdir(parents=True)
    for f in ("config.json", "stage1/config.json"):
        (installed / f).write_text("{}", encoding="utf-8")
    assert d.shipped_model() == installed
    assert str(d.INSTALLED_RELATIVE) == "share/stackgan/models/default"


def test_the_data_paths_are_this_interpreters():
    import sysconfig

    import stackgan.defaults as d

    assert Path(sysconfig.get_paths()["data"]) / d.INSTALLED_RELATIVE in d.installed_model_candidates()
    assert d.shipped_model() == d.SOURCE_MODEL  # in this checkout, the tree's own
