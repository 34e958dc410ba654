"""What runs inside the local server's own process: llama-cpp-python's server, patched first.

``main()`` is the child's entry point (``supervisor._child_command``): it watches its parent,
scrubs stray settings, and makes llama.cpp safe and steady on small and virtual CPUs.

The patches: llama.cpp's AMX kernels crash (SIGSEGV in ``ldtilecfg``) on virtual CPUs that
advertise AMX without supporting it, so the supervisor may ask for the model to load without
llama.cpp's extra buffer types (``--no-extra-buffers``). Every model call runs on one thread of
its own. Requests queue rather than interrupt each other (a server flag the supervisor sets),
so a second cell never cuts a stream short.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

__all__ = ["main"]

T = TypeVar("T")


def main(argv: list[str] | None = None) -> None:
    """Run llama-cpp-python's server; called in the subprocess that ``start()`` launches.

    ``argv`` is ``[our options…, "--", server flags…]``; our options are ``--parent=PID``,
    ``--log=PATH`` and ``--no-extra-buffers``.
    """
    import faulthandler

    # A crash in native code then leaves a Python traceback in the log, for the error we raise.
    faulthandler.enable()
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--") if "--" in args else len(args)
    own, server_args = args[:split], args[split + 1 :]
    parent = _option(own, "--parent")
    log = _option(own, "--log")
    if parent is not None:
        _watch_parent(int(parent), Path(log) if log else None)
    if "--no-extra-buffers" in own:
        _disable_extra_buffers()
    _scrub_settings_env()
    _one_model_thread()
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *server_args]
    serve()


def _option(args: list[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in args if a.startswith(name + "=")), None)


def _watch_parent(parent: int, log_path: Path | None = None) -> None:
    """Exit when the process that started us is gone, even if it was killed.

    A parent that was killed cannot remove the server's log, so the server removes it itself.
    """

    def gone() -> None:
        if log_path is not None:
            with contextlib.suppress(OSError):
                log_path.unlink()
        os._exit(0)

    def until_stdin_closes() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        gone()

    def until_reparented() -> None:
        # Covers a parent whose forked children still hold our stdin open.
        while os.getppid() == parent:
            time.sleep(1.0)
        gone()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    if os.name == "posix":
        threading.Thread(target=until_reparented, daemon=True).start()


def _disable_extra_buffers() -> None:
    # llama.cpp has no switch for this on the server's command line; the model parameters do.
    import llama_cpp.llama_cpp as bindings

    defaults = bindings.llama_model_default_params

    def model_params() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = model_params


def _next_or(iterator: Iterator[T], default: object) -> T | object:
    return next(iterator, default)


def _one_model_thread() -> None:
    """Make the server run every model call on one thread of its own.

    It runs them on whichever worker thread is free, and with llama.cpp's OpenMP build each new
    calling thread brings its own team of threads, which then compete for the same cores (with
    2 threads on 2 cores, most requests ran at 20-40 tokens/s instead of 85-95).
    """
    import asyncio
    import functools
    from concurrent.futures import ThreadPoolExecutor

    import llama_cpp.server.app as app

    if not hasattr(app, "run_in_threadpool") or not hasattr(app, "iterate_in_threadpool"):
        return
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
    done = object()

    async def run_in_threadpool(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def iterate_in_threadpool(iterator: Iterable[T]) -> AsyncIterator[T]:
        items = iter(iterator)
        # A sentinel, not StopIteration: that cannot cross a Future.
        while (item := await run_in_threadpool(_next_or, items, done)) is not done:
            yield cast(T, item)

    app.run_in_threadpool = run_in_threadpool
    app.iterate_in_threadpool = iterate_in_threadpool


def _scrub_settings_env() -> None:
    # The server reads its settings from environment variables too (API_KEY, PORT, MODEL…);
    # a stray one in the user's environment must not override the flags we pass.
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    names = {"config_file", "host", "port"}
    names |= set(ModelSettings.model_fields) | set(ServerSettings.model_fields)
    for variable in list(os.environ):
        if variable.lower() in names:
            del os.environ[variable]
