"""The project's own checks run as tests, so CI enforces them: lint, format, layers and types."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ("nbchat", "tests", "benchmarks", "conftest.py")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_to_fix():
    result = _run(sys.executable, "-m", "ruff", "check", *PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tree_is_formatted():
    result = _run(sys.executable, "-m", "ruff", "format", "--check", *PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_follow_the_layers_and_make_no_cycles():
    # The contracts live in pyproject.toml ([tool.importlinter]).
    command = shutil.which("lint-imports")
    assert command is not None, "import-linter is part of the test extra"
    result = _run(command, "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_mypy_finds_no_type_errors():
    result = _run(sys.executable, "-m", "mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr


def test_notebook_kernels_and_subprocesses_import_this_checkout():
    # conftest.py puts this checkout first on PYTHONPATH; without it a kernel would import
    # whatever nbchat is installed (an editable install may point at another checkout).
    result = subprocess.run(
        [sys.executable, "-c", "import nbchat; print(nbchat.__file__)"],
        cwd=ROOT / "notebooks",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve() == ROOT / "nbchat" / "__init__.py"
