from __future__ import annotations

from types import SimpleNamespace

from nbchat.notebook.frontend import display_mode, frontend, shows_widgets


class ZMQInteractiveShell:
    pass


class TerminalInteractiveShell:
    pass


def test_the_frontend_is_named_from_the_shell():
    assert frontend(ZMQInteractiveShell()) == "jupyter"
    assert frontend(TerminalInteractiveShell()) == "terminal"
    assert frontend(object()) == "other"


def test_plain_python_has_no_frontend(monkeypatch):
    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert frontend() == "none"
    assert not shows_widgets()


def test_the_display_mode_follows_the_setting_then_the_frontend():
    auto = SimpleNamespace(display="auto")
    assert display_mode(TerminalInteractiveShell(), auto) == "text"
    assert display_mode(ZMQInteractiveShell(), auto) == "live"
    assert display_mode(TerminalInteractiveShell(), SimpleNamespace(display="final")) == "final"
