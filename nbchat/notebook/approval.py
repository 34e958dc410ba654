"""The approval widget of an agent cell in JupyterLab: Run / Skip / Stop under the proposed code.

The cell waits for a click while it runs: ``agentcell.py`` runs such a cell as an async cell, so
the kernel's loop is free to deliver the click (ipykernel 7.4+ dispatches widget messages while
an async cell awaits) and the agent works in a thread that waits here. Stop, or Ctrl-C (which
sets ``stop``), answers "stop"; the buttons are then closed, the decision line under them
(shown by the Approver) stays in the notebook.
"""

from __future__ import annotations

import threading
from typing import Any

from .widgets import ipywidgets_module

__all__ = ["ApprovalWidget"]

_ANSWERS = {"Run": "yes", "Skip": "no", "Stop": "stop"}


class ApprovalWidget:
    """``ask(prompt)`` shows the buttons and returns "yes", "no" or "stop" once one is clicked."""

    def __init__(self, stop: threading.Event | None = None, *, poll: float = 0.1) -> None:
        self.stop = stop or threading.Event()
        self.poll = poll
        self.box: Any = None

    def ask(self, prompt: str = "") -> str:
        w = ipywidgets_module("The approval buttons")
        chosen: list[str] = []
        clicked = threading.Event()
        buttons = []
        for label, style in (("Run", "success"), ("Skip", "warning"), ("Stop", "danger")):
            button = w.Button(description=label, button_style=style, layout=w.Layout(width="6em"))

            def on_click(_: Any, label: str = label) -> None:
                chosen.append(_ANSWERS[label])
                clicked.set()

            button.on_click(on_click)
            buttons.append(button)
        self.box = w.HBox([w.HTML("<span style='margin-right:0.6em'>Run it?</span>"), *buttons])
        from IPython.display import display

        display(self.box)
        try:
            while not clicked.wait(self.poll):
                if self.stop.is_set():
                    return "stop"
        finally:
            self.box.close()
        return chosen[0]
