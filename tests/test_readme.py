"""The README says what the project is: its Developing table names every module, in its layer."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _developing() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Developing", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `nbchat/(\w+)/` \| (.*) \|$", section, re.M)
    return dict(rows)


def test_the_developing_table_names_every_module_in_its_layer():
    table = _developing()
    package = ROOT / "nbchat"
    layers = sorted(p.name for p in package.iterdir() if (p / "__init__.py").exists())
    assert sorted(table) == layers
    for layer in layers:
        modules = sorted(p.name for p in (package / layer).glob("*.py") if p.name != "__init__.py")
        named = set(re.findall(r"`(\w+\.py)`", table[layer]))
        assert [m for m in modules if m not in named] == [], layer
        assert [m for m in named if m not in modules] == [], layer
