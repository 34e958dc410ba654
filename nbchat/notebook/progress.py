"""The progress of a long run (``nbchat.map``): rows, errors, tokens, rate and time left, as
tqdm's notebook bar (with a Stop button where a click can reach the kernel) or text on stderr.

A finished notebook bar is replaced by one static line, HTML and text ("nbchat.map: 5 of 5 rows,
0 errors, 1,234 tokens, 2.3 s"): a saved or exported notebook keeps no widget state, and would
otherwise show the bar's Python repr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["MODES", "ProgressView", "progress_mode"]

#: ``widget`` (notebook bar), ``text`` (stderr), ``final`` (one line at the end), ``off``.
MODES = ("auto", "widget", "text", "final", "off")


def progress_mode(mode: str | bool = "auto") -> str:
    """The mode ``auto`` stands for here: the notebook bar in a Jupyter kernel, else text."""
    from .frontend import choose_mode, shows_widgets

    return choose_mode(
        mode, MODES, what="progress", auto=lambda: "widget" if shows_widgets() else "text"
    )


def _postfix(errors: int, tokens: int, note: str | None) -> str:
    parts = [f"{errors:,} error{'s' if errors != 1 else ''}", f"{tokens:,} tokens"]
    if note:
        parts.append(note)
    return ", ".join(parts)


class ProgressView:
    """One run's bar. ``update()`` as often as you like (tqdm limits the redraws); ``close()``.

    ``on_stop`` adds a Stop button to the notebook bar; without it the bar says how to stop
    (interrupt the kernel), since a click cannot reach a kernel busy with a blocking cell.
    """

    def __init__(
        self,
        total: int | None,
        *,
        mode: str | bool = "auto",
        label: str = "nbchat.map",
        unit: str = "row",
        on_stop: Callable[[], None] | None = None,
        file: TextIO | None = None,
        display: Callable[..., Any] | None = None,
    ) -> None:
        self.mode = progress_mode(mode)
        self.total = total
        self.label = label
        self._on_stop = on_stop
        self._file = file
        self._started = time.monotonic()
        self._handle: Any = None
        self._box: Any = None
        self._bar: Any = None
        self._button: Any = None
        self._hint: Any = None
        self._closed = False
        self.stop_requested = False
        if self.mode == "widget":
            self._open_widget(unit, display)
        elif self.mode == "text":
            from tqdm.std import tqdm

            self._bar = tqdm(
                total=total,
                desc=label,
                unit=unit,
                file=file or sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
                leave=True,
            )

    def _open_widget(self, unit: str, display: Callable[..., Any] | None) -> None:
        """The bar and its button, shown under a display id that ``close`` replaces."""
        import ipywidgets
        from IPython.display import display as ipython_display
        from tqdm.notebook import tqdm

        from ..render.bundles import widget_view_bundle

        show = display or ipython_display
        self._bar = tqdm(total=self.total, desc=self.label, unit=unit, display=False, leave=True)
        parts: list[Any] = [self._bar.container]
        if self._on_stop is not None:
            self._button = ipywidgets.Button(
                description="Stop",
                icon="stop",
                button_style="warning",
                tooltip="Stop: no request starts after this; the rows done are kept.",
            )
            self._button.on_click(self._stop_clicked)
            parts.append(self._button)
        else:
            self._hint = ipywidgets.HTML(
                "<small>To stop, interrupt the kernel (■): the rows done are kept.</small>"
            )
            parts.append(self._hint)
        self._box = ipywidgets.HBox(parts)
        rows = f"{self.total:,} rows" if self.total is not None else "rows"
        stand_in = f"{self.label}: sending {rows} (a progress bar)"
        self._handle = show(widget_view_bundle(self._box, stand_in), raw=True, display_id=True)

    @property
    def box(self) -> Any:
        """The notebook bar's widgets while the run lasts (None in the other modes)."""
        return self._box

    def _stop_clicked(self, _button: Any = None) -> None:
        if self.stop_requested:
            return
        self.stop_requested = True
        if self._button is not None:
            self._button.disabled = True
            self._button.description = "Stopping…"
        if self._on_stop is not None:
            self._on_stop()

    def update(self, done: int, errors: int = 0, tokens: int = 0, note: str | None = None) -> None:
        bar = self._bar
        if bar is None or self._closed:
            return
        bar.set_postfix_str(_postfix(errors, tokens, note), refresh=False)
        if done != bar.n:
            bar.update(done - bar.n)
        elif note:
            bar.refresh()

    def close(
        self,
        done: int,
        errors: int = 0,
        tokens: int = 0,
        *,
        stopped: str | None = None,
        note: str | None = None,
    ) -> str:
        """Finish the bar; returns the one-line summary (also shown in ``final`` mode, and what
        the notebook bar leaves in the output). ``note`` joins the counts (rows kept)."""
        rows = f"{done:,} of {self.total:,} rows" if self.total is not None else f"{done:,} rows"
        took = time.monotonic() - self._started
        summary = f"{self.label}: {rows}, {_postfix(errors, tokens, note)}, {took:.1f} s"
        if stopped:
            summary += f"; stopped ({stopped})"
        if self._closed:
            return summary
        self._closed = True
        bar = self._bar
        if bar is not None:
            bar.set_postfix_str(
                _postfix(errors, tokens, f"stopped ({stopped})" if stopped else note),
                refresh=False,
            )
            if done != bar.n:
                bar.update(done - bar.n)
            bar.close()
        if self._button is not None:
            self._button.disabled = True
            self._button.description = "Stopped" if stopped else "Done"
        if self._hint is not None:
            self._hint.value = ""
        if self._handle is not None:
            self._leave_line(summary)
        if self.mode == "final":
            out = self._file or sys.stdout
            out.write(summary + "\n")
            out.flush()
        return summary

    def _leave_line(self, summary: str) -> None:
        """Replace the bar with the summary: what a saved or exported notebook shows."""
        from ..render.markdown import escape, html_bundle

        line = html_bundle(f'<div class="nbchat-progress">{escape(summary)}</div>', summary)
        try:
            self._handle.update(line, raw=True)
        finally:
            self._handle = None
            if self._box is not None:
                for widget in (*self._box.children, self._box):
                    widget.close()
                self._box = None
