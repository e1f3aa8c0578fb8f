"""The wheel: `pip wheel .` (no dependencies, no network) holds the package with the web app's templates
and static files, and no top-level `web` package (a name another project owns on the package index)."""

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
