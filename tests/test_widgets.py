"""notebook/widgets.py: what the panel and the explorer share as ipywidgets."""

from __future__ import annotations

import sys

import pytest

from nbchat.notebook.widgets import (
    WIDGET_VIEW,
    fallback_bundle,
    ipywidgets_module,
    output,
)


def test_output_is_one_display_data_entry_of_its_own_bundle():
    bundle = {"text/plain": "hi", "text/html": "<b>hi</b>"}
    entry = output(bundle)
    assert entry == {"output_type": "display_data", "data": bundle, "metadata": {}}
    entry["data"]["text/plain"] = "changed"
    assert bundle["text/plain"] == "hi"  # a copy: the caller's bundle is left alone


def test_the_fallback_names_a_closed_widget_view_beside_the_static_bundle():
    bundle = {"text/plain": "5/5 rows", "text/html": "<p>5/5 rows</p>"}
    shown = fallback_bundle(bundle)
    assert shown[WIDGET_VIEW] == {"version_major": 2, "version_minor": 0, "model_id": ""}
    assert {k: v for k, v in shown.items() if k != WIDGET_VIEW} == bundle


def test_without_ipywidgets_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"The explorer needs ipywidgets: pip install"):
        ipywidgets_module("The explorer")


def test_with_ipywidgets_the_module_is_returned():
    import ipywidgets

    assert ipywidgets_module() is ipywidgets
