"""What the store's tests share: a fresh store file per test, and nothing left over between them.

``fresh_store`` points NBCHAT_STORE at a temporary file, clears replay and budget variables,
and resets the store's per-process state (open files, cassettes, warnings given) around a test.
"""

from __future__ import annotations

import pytest
from IPython.core.displaypub import DisplayPublisher

from nbchat.store import budget, config, db, exchange, prices, replay


def reset() -> None:
    config.configure(store="", cache=False, budget=None)
    for store in list(db._stores.values()):
        store.close(timeout=5.0)
    db._stores.clear()
    db._warned.clear()
    exchange._warned.clear()
    replay._cassettes.clear()
    budget._warned_unpriced.clear()
    budget._noted_unpriced.clear()
    budget._process_spent = 0.0
    prices._unknown.clear()


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    path = tmp_path / "nbchat.db"
    monkeypatch.setenv("NBCHAT_STORE", str(path))
    for name in ("NBCHAT_REPLAY", "NBCHAT_CASSETTE", "NBCHAT_BUDGET", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    reset()
    yield path
    reset()


def stored(path) -> list:
    """Every exchange in the store at ``path``, once its writer has caught up."""
    store = db.open_store(path)
    assert store.flush(timeout=10)
    return store.select("ORDER BY id")


class Publisher(DisplayPublisher):
    """Collects what a shell displays."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.outputs: list[dict] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.outputs.append(data)

    def clear_output(self, wait=False):
        pass


@pytest.fixture
def store_shell(fresh_store, monkeypatch):
    """A real IPython shell with nbchat loaded, talking to a FakeServer (``shell.server``)."""
    from IPython.testing import globalipapp

    from nbchat.conversation import sessions
    from tests.fakeserver import FakeServer

    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "nbchat")
    publisher = Publisher(shell=shell)
    monkeypatch.setattr(shell, "display_pub", publisher)
    shell.run_line_magic("config", "Chat.display = 'final'")
    shell.run_line_magic("config", "Chat.model = 'fake-model'")
    server = FakeServer()
    monkeypatch.setattr(sessions, "client_for", lambda settings: server.client())
    sessions._sessions.clear()
    shell.server = server
    shell.publisher = publisher
    yield shell
    sessions._sessions.clear()
    shell.run_line_magic("unload_ext", "nbchat")
    shell.config.pop("Chat", None)
    reset()
