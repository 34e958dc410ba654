"""What the panel and the explorer share as ipywidgets: the lazy import and its install hint,
the VBox they derive from, output dicts for Output widgets, and the static fallback outputs.

A viewer without JavaScript (nbconvert's HTML export, GitHub) cannot show a widget; the
fallbacks here are what such a viewer shows instead, while a live front end shows the widget.
"""

from __future__ import annotations

from typing import Any

from ..render.bundles import WIDGET_VIEW, widget_view_bundle

__all__ = [
    "WIDGET_VIEW",
    "VBox",
    "fallback_bundle",
    "ipywidgets_module",
    "output",
    "widget_view_bundle",
]

_HINT = "{what} needs ipywidgets: pip install 'nbchat[notebooks]' (or ipywidgets)"


def ipywidgets_module(what: str = "The chat panel") -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise ImportError(_HINT.format(what=what)) from None
    return ipywidgets


try:
    from ipywidgets import VBox
except ImportError:  # the classes stay importable; making one says what to install

    class VBox:  # type: ignore[no-redef]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            ipywidgets_module(type(self).__name__)


def output(bundle: dict[str, Any]) -> dict[str, Any]:
    """One display_data output, as an Output widget's ``outputs`` holds it."""
    return {"output_type": "display_data", "data": dict(bundle), "metadata": {}}


def fallback_bundle(bundle: dict[str, str]) -> dict[str, Any]:
    """``bundle`` (text/html and text/plain) shown only where widgets cannot be.

    The output also names a widget view whose model id is empty: the way ipywidgets marks a
    view that was closed. A front end with widgets prefers that view and so shows nothing (the
    live widget next to it already shows the same); nbconvert, which drops a widget view it has
    no state for, and viewers without widgets show ``bundle``.
    """
    closed = {"version_major": 2, "version_minor": 0, "model_id": ""}
    return {WIDGET_VIEW: closed, **bundle}
