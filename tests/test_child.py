"""What runs inside the local server's process: its options, its parent watch, its patches."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbchat
from nbchat.local import child, supervisor

ROOT = Path(nbchat.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

WATCHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from nbchat.local import child
    child._watch_parent(int(sys.argv[1]), Path(sys.argv[2]))
    print("watching", flush=True)
    time.sleep(60)
    """
)


def test_own_options_are_read_from_before_the_double_dash() -> None:
    own = ["--parent=12", "--log=/tmp/nbchat-local-a=b.log", "--no-extra-buffers"]
    assert child._option(own, "--parent") == "12"
    assert child._option(own, "--log") == "/tmp/nbchat-local-a=b.log"
    assert child._option(own, "--port") is None


def test_a_child_whose_parent_closes_its_stdin_removes_its_log_and_exits(tmp_path: Path) -> None:
    log = tmp_path / "nbchat-local-test.log"
    log.write_text("INFO: started\n")
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(os.getpid()), str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    try:
        assert watcher.stdout is not None and watcher.stdin is not None
        assert watcher.stdout.readline().strip() == "watching"
        assert log.exists()
        watcher.stdin.close()  # what happens when the parent dies, however it dies
        assert watcher.wait(10) == 0
        assert not log.exists()
    finally:
        watcher.kill()
        watcher.wait()


def test_a_child_whose_parent_was_killed_removes_its_log_even_if_stdin_stays_open(
    tmp_path: Path,
) -> None:
    log = tmp_path / "nbchat-local-test.log"
    log.write_text("INFO: started\n")
    # The parent starts the watcher with this test's stdin pipe, which stays open after the
    # parent is killed (as when forked children hold it): only the reparenting tells.
    parent_code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        watcher = [sys.executable, "-c", {WATCHER!r}, str(os.getpid()), {str(log)!r}]
        child = subprocess.Popen(watcher)
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=ENV,
        text=True,
    )
    try:
        assert parent.stdout is not None
        watcher_pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "watching"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while log.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not log.exists()
        while _alive(watcher_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(watcher_pid)
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    # An orphan that has exited stays a zombie until init reaps it: that counts as ended.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _fake_app(monkeypatch: pytest.MonkeyPatch, **attributes: object) -> types.ModuleType:
    # Stands in for llama_cpp.server.app, which would load llama.cpp's shared libraries.
    package = types.ModuleType("llama_cpp")
    server = types.ModuleType("llama_cpp.server")
    app = types.ModuleType("llama_cpp.server.app")
    app.__dict__.update(attributes)
    package.server = server  # type: ignore[attr-defined]
    server.app = app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_cpp", package)
    monkeypatch.setitem(sys.modules, "llama_cpp.server", server)
    monkeypatch.setitem(sys.modules, "llama_cpp.server.app", app)
    return app


def test_every_model_call_runs_on_one_thread_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _fake_app(monkeypatch, run_in_threadpool=None, iterate_in_threadpool=None)
    child._one_model_thread()

    def tokens() -> Iterator[str]:
        for _ in range(3):
            yield threading.current_thread().name

    async def serve() -> tuple[list[str], list[str]]:
        calls = [await app.run_in_threadpool(lambda: threading.current_thread().name)]
        calls.append(await app.run_in_threadpool(str.upper, "x"))
        streamed = [name async for name in app.iterate_in_threadpool(tokens())]
        return calls, streamed

    calls, streamed = asyncio.run(serve())
    assert calls[1] == "X"
    assert len(streamed) == 3
    names = {calls[0], *streamed}
    assert len(names) == 1 and names.pop().startswith("model")


def test_an_iterator_that_raises_passes_its_error_on(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _fake_app(monkeypatch, run_in_threadpool=None, iterate_in_threadpool=None)
    child._one_model_thread()

    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("the model broke")

    async def serve() -> list[int]:
        return [item async for item in app.iterate_in_threadpool(broken())]

    with pytest.raises(ValueError, match="the model broke"):
        asyncio.run(serve())


def test_a_server_without_the_threadpool_hooks_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = _fake_app(monkeypatch)
    child._one_model_thread()
    assert not hasattr(app, "run_in_threadpool")


def test_server_settings_in_the_environment_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if supervisor._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    for name in ("PORT", "HOST", "API_KEY", "n_ctx", "CONFIG_FILE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("NBCHAT_KEEP_ME", "yes")
    child._scrub_settings_env()
    for name in ("PORT", "HOST", "API_KEY", "n_ctx", "CONFIG_FILE"):
        assert name not in os.environ
    assert os.environ["NBCHAT_KEEP_ME"] == "yes"
    assert "PATH" in os.environ
