from __future__ import annotations

import io
import re

import pytest

from nbchat.notebook.progress import ProgressView, progress_mode
from nbchat.render.bundles import WIDGET_VIEW


class Shown:
    """A display that records what it shows and the updates of its one handle."""

    def __init__(self):
        self.bundles = []

    def __call__(self, bundle, raw=True, display_id=True):
        self.bundles.append(bundle)
        return self

    def update(self, bundle, raw=True):
        self.bundles.append(bundle)


def test_modes_and_what_auto_means_outside_a_kernel():
    assert progress_mode(True) == "text"  # no Jupyter kernel in the tests
    assert progress_mode(False) == "off"
    assert progress_mode("widget") == "widget"
    with pytest.raises(ValueError, match="progress must be one of"):
        progress_mode("loud")


def test_the_text_bar_shows_rows_errors_tokens_and_the_stop():
    out = io.StringIO()
    view = ProgressView(10, mode="text", file=out)
    view.update(4, 1, 1234)
    summary = view.close(6, 1, 2000, stopped="Ctrl-C")
    text = out.getvalue()
    assert "6/10" in text
    assert "1 error, 2,000 tokens, stopped (Ctrl-C)" in text
    assert re.fullmatch(
        r"nbchat\.map: 6 of 10 rows, 1 error, 2,000 tokens, \d+\.\d s; stopped \(Ctrl-C\)",
        summary,
    )


def test_final_mode_prints_one_line_at_the_end_only():
    out = io.StringIO()
    view = ProgressView(3, mode="final", file=out)
    view.update(2, 0, 10)
    assert out.getvalue() == ""
    view.close(3, 0, 15)
    assert re.fullmatch(
        r"nbchat\.map: 3 of 3 rows, 0 errors, 15 tokens, \d+\.\d s\n", out.getvalue()
    )


def test_the_notebook_bar_has_a_stop_button_that_calls_back_once():
    shown = Shown()
    stops = []
    view = ProgressView(5, mode="widget", on_stop=lambda: stops.append(1), display=shown)
    bar, button = view.box.children
    assert button.description == "Stop"
    button.click()
    button.click()
    assert stops == [1]
    assert button.disabled and button.description == "Stopping…"
    view.update(3, 1, 50)
    progress = bar.children[1]
    view.close(3, 1, 50, stopped="the stop button")
    assert progress.value == 3 and progress.max == 5
    assert button.description == "Stopped"


def test_without_a_stop_callback_the_bar_says_how_to_stop():
    view = ProgressView(5, mode="widget", display=Shown())
    hint = view.box.children[1]
    assert "interrupt the kernel" in hint.value


def test_off_shows_nothing():
    out = io.StringIO()
    view = ProgressView(5, mode="off", file=out)
    view.update(1)
    view.close(5)
    assert out.getvalue() == ""


def test_a_finished_notebook_bar_leaves_a_static_line_as_html_and_text():
    shown = Shown()
    view = ProgressView(5, mode="widget", display=shown)
    # While it runs: the widget, and a line of text for viewers without widgets.
    assert shown.bundles[0][WIDGET_VIEW]["model_id"] == view.box.model_id
    assert shown.bundles[0]["text/plain"] == "nbchat.map: sending 5 rows (a progress bar)"
    view.update(5, 0, 120)
    view.close(5, 0, 120)
    line = shown.bundles[-1]
    assert WIDGET_VIEW not in line
    assert re.fullmatch(
        r"nbchat\.map: 5 of 5 rows, 0 errors, 120 tokens, \d+\.\d s", line["text/plain"]
    )
    assert line["text/plain"] in line["text/html"] and "HBox" not in line["text/html"]
    assert view.box is None
