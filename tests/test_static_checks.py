"""Static checks run with the suite, so CI enforces them: mypy --strict, ruff, and the
Sphinx manual built with warnings as errors (tools pinned in requirements-test.txt)."""
from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)


def test_mypy_strict_is_clean():
    result = run("mypy", "gearman")  # strict = true in pyproject.toml
    assert result.returncode == 0, result.stdout


def test_ruff_is_clean():
    result = run("ruff", "check", "gearman", "tests", "examples", "bench")
    assert result.returncode == 0, result.stdout


def test_sphinx_manual_builds_without_warnings(tmp_path):
    result = run("sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(tmp_path))
    assert result.returncode == 0, result.stdout
