from __future__ import annotations

import io

import pytest

from nbchat.notebook.progress import ProgressView, progress_mode


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
    assert summary == "nbchat.map: 6 of 10 rows, 1 error, 2,000 tokens; stopped (Ctrl-C)"


def test_final_mode_prints_one_line_at_the_end_only():
    out = io.StringIO()
    view = ProgressView(3, mode="final", file=out)
    view.update(2, 0, 10)
    assert out.getvalue() == ""
    view.close(3, 0, 15)
    assert out.getvalue() == "nbchat.map: 3 of 3 rows, 0 errors, 15 tokens\n"


def test_the_notebook_bar_has_a_stop_button_that_calls_back_once():
    shown = []
    stops = []
    view = ProgressView(5, mode="widget", on_stop=lambda: stops.append(1), display=shown.append)
    box = shown[0]
    bar, button = box.children
    assert button.description == "Stop"
    button.click()
    button.click()
    assert stops == [1]
    assert button.disabled and button.description == "Stopping…"
    view.update(3, 1, 50)
    view.close(3, 1, 50, stopped="the stop button")
    progress = bar.children[1]
    assert progress.value == 3 and progress.max == 5
    # tqdm's notebook bar writes its text with figure spaces.
    assert "stopped (the stop button)" in bar.children[2].value.replace("\u2007", " ")
    assert button.description == "Stopped"


def test_without_a_stop_callback_the_bar_says_how_to_stop():
    shown = []
    ProgressView(5, mode="widget", display=shown.append)
    hint = shown[0].children[1]
    assert "interrupt the kernel" in hint.value


def test_off_shows_nothing():
    out = io.StringIO()
    view = ProgressView(5, mode="off", file=out)
    view.update(1)
    view.close(5)
    assert out.getvalue() == ""
