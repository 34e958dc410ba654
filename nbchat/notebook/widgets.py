"""ipywidgets, imported when a widget is first built, with an install hint when it is missing."""

from __future__ import annotations

from typing import Any

__all__ = ["ipywidgets_module"]


def ipywidgets_module() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise ImportError(
            "The chat panel needs ipywidgets: pip install 'nbchat[notebooks]' (or ipywidgets)"
        ) from None
    return ipywidgets
