"""The npm MCP reference server for the tests, installed by the tests themselves where Node is
present: ``npm install --prefix`` into a cache directory, once per machine (about 10 s)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

EVERYTHING = "@modelcontextprotocol/server-everything"
#: The version the tests were written against (its tools' names and results).
EVERYTHING_VERSION = "2026.8.31"


def everything_command() -> str | None:
    """The path of ``mcp-server-everything``, installing it first; None without Node and npm
    (or when the registry cannot be reached)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    prefix = base / "nbchat-tests" / f"server-everything-{EVERYTHING_VERSION}"
    command = prefix / "node_modules" / ".bin" / "mcp-server-everything"
    if not command.exists():
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                f"{EVERYTHING}@{EVERYTHING_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0 or not command.exists():
            return None
    return str(command)
