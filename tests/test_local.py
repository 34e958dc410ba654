"""nbchat.local as a package: its public names, re-exported from the modules that define them.

The modules have their own tests: test_supervisor.py, test_child.py, test_adapt.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbchat
from nbchat import local
from nbchat.local import adapt, supervisor

ROOT = Path(nbchat.__file__).resolve().parent.parent

PUBLIC = {
    "DEFAULT_CONTEXT": supervisor,
    "INSTALL_HINT": supervisor,
    "LocalServer": supervisor,
    "LocalServerError": supervisor,
    "LocalServerUnavailable": supervisor,
    "adapt_request": adapt,
    "default_model_path": supervisor,
    "explain_broken_stream": adapt,
    "free_port": supervisor,
    "start": supervisor,
    "stop_all": supervisor,
}


def test_the_public_names_are_the_ones_of_the_modules_that_define_them() -> None:
    assert sorted(local.__all__) == sorted(PUBLIC)
    for name, module in PUBLIC.items():
        assert getattr(local, name) is getattr(module, name), name


def test_importing_the_package_loads_no_part_of_the_local_server() -> None:
    # llama_cpp loads native libraries: only starting a server may import it.
    code = "import sys, nbchat.local; print(sorted(m for m in sys.modules if 'llama' in m))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
