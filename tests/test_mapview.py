from __future__ import annotations

from nbchat.conversation.mapjob import Outcome
from nbchat.conversation.mapping import MapRun
from nbchat.notebook import mapview


class Bar:
    def __init__(self, total, **options):
        self.options = options
        self.updates: list = []
        self.closed: tuple | None = None

    def update(self, done, errors, tokens, note):
        self.updates.append((done, errors, tokens, note))

    def close(self, done, errors, tokens, *, stopped=None, note=None):
        self.closed = (done, errors, tokens, stopped, note)


def test_the_bar_shows_once_the_run_sends_and_says_how_many_rows_came_from_the_store(monkeypatch):
    made: list[Bar] = []
    monkeypatch.setattr(
        "nbchat.notebook.progress.ProgressView",
        lambda *a, **k: made.append(Bar(*a, **k)) or made[-1],
    )
    run = MapRun(3)
    watcher = mapview.watching("text")(run)
    watcher.update(run)
    assert made == []  # nothing sent yet: no bar (a mistake found first shows none)
    run.sending = True
    run.record(0, Outcome(reply="a", kept=True))
    run.record(1, Outcome(reply="b"))
    watcher.update(run)
    watcher.close(run)
    (bar,) = made
    assert bar.updates[-1] == (2, 0, 0, "1 from the store")
    assert bar.closed == (2, 0, 0, None, "1 from the store")
    assert bar.options["label"] == "nbchat.map"


def test_a_stop_button_stops_the_run_it_belongs_to(monkeypatch):
    made: list[Bar] = []
    monkeypatch.setattr(
        "nbchat.notebook.progress.ProgressView",
        lambda *a, **k: made.append(Bar(*a, **k)) or made[-1],
    )
    run = MapRun(2)
    run.sending = True
    watcher = mapview.watching("widget", "batch", stop_button=True)(run)
    watcher.update(run)
    made[0].options["on_stop"]()
    assert run.stopped and run.stop_reason == "the stop button"
    assert made[0].options["label"] == "nbchat.map (batch)"
