"""The Run / Skip / Stop buttons: a click answers the waiting agent; Stop (or the stop flag set
by Ctrl-C) answers stop; the buttons go once answered."""

from __future__ import annotations

import threading

import pytest

from nbchat.notebook.approval import ApprovalWidget

pytest.importorskip("ipywidgets")


def ask_then_click(label: str, stop: threading.Event | None = None) -> tuple[str, ApprovalWidget]:
    widget = ApprovalWidget(stop, poll=0.01)
    answer: list[str] = []
    thread = threading.Thread(target=lambda: answer.append(widget.ask()))
    thread.start()
    while widget.box is None:
        threading.Event().wait(0.01)
    if label:
        button = next(b for b in widget.box.children if getattr(b, "description", "") == label)
        button.click()
    elif stop is not None:
        stop.set()
    thread.join(5)
    return answer[0], widget


@pytest.mark.parametrize(("label", "answer"), [("Run", "yes"), ("Skip", "no"), ("Stop", "stop")])
def test_each_button_answers(label, answer):
    said, widget = ask_then_click(label)
    assert said == answer
    assert widget.box.comm is None  # closed once answered


def test_the_stop_flag_answers_stop_without_a_click():
    said, _ = ask_then_click("", threading.Event())
    assert said == "stop"
