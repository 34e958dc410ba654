from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import decimal
import json
import math
from typing import Any, Literal, Optional

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from nbchat.conversation.toolrun import (
    MAX_RESULT_CHARS,
    MAX_RESULT_ROWS,
    ToolPolicy,
    ToolResult,
    ToolRunInterrupted,
    arun_tool_calls,
    encode_result,
    input_confirm,
    run_tool_calls,
)
from nbchat.convert.tools import as_tool, tool
from nbchat.protocol.types import ChatCompletion, ToolCall, ToolMessage
from tests.reference import PARALLEL_TOOL_CALLS_RESPONSE

CALLS: list[str] = []


def get_weather(location: str, units: Optional[Literal["celsius", "fahrenheit"]] = None) -> dict:  # noqa: UP045
    """获取指定城市的当前天气信息。"""
    CALLS.append(location)
    return {"temperature": {"Beijing, China": 28, "Shanghai, China": 32}[location]}


def explode(reason: str) -> None:
    """Always fails."""
    raise RuntimeError(f"boom: {reason}")


@tool(confirm=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    CALLS.append(f"deleted {path}")
    return f"deleted {path}"


class Weather(BaseModel):
    temperature: int
    condition: str


@dataclasses.dataclass
class Reading:
    sensor: str
    taken: datetime.datetime


async def slow_echo(text: str) -> str:
    await asyncio.sleep(0)
    return text


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def _call(call_id: str, name: str, arguments: str) -> ToolCall:
    return ToolCall(id=call_id, function={"name": name, "arguments": arguments})


def _error(result: ToolResult) -> str:
    return json.loads(result.content)["error"]


# ---------------------------------------------------------------------------------------------
# The loop's building blocks


def test_parallel_calls_all_run_and_answer_in_order() -> None:
    # The reference's parallel-call response, as the client would parse it.
    completion = ChatCompletion.model_validate(PARALLEL_TOOL_CALLS_RESPONSE)
    calls = completion.choices[0].message.tool_calls
    results = run_tool_calls(calls, {"get_weather": get_weather})
    assert CALLS == ["Beijing, China", "Shanghai, China"]
    assert [result.message() for result in results] == [
        {"role": "tool", "tool_call_id": "call_001", "content": '{"temperature":28}'},
        {"role": "tool", "tool_call_id": "call_002", "content": '{"temperature":32}'},
    ]
    for message in (result.message() for result in results):
        assert ToolMessage.model_validate(message).to_dict() == message
    first = results[0]
    assert first.ok is True and first.status == "ok" and first.error is None
    assert first.name == "get_weather"
    assert first.arguments == {"location": "Beijing, China", "units": "celsius"}
    assert first.value == {"temperature": 28}
    assert first.duration >= 0


def test_dict_tool_calls_and_a_list_of_tools_are_accepted() -> None:
    call = {
        "id": "call_abc123",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Beijing, China"}'},
    }
    [result] = run_tool_calls([call], [get_weather])
    assert result.ok and result.tool_call_id == "call_abc123"
    assert result.arguments == {"location": "Beijing, China", "units": None}


def test_unknown_tool_is_not_run_and_answered_with_an_error() -> None:
    calls = [_call("c1", "os_system", '{"cmd": "rm -rf /"}'), _call("c2", "get_weather", "{}")]
    results = run_tool_calls(calls, {"get_weather": get_weather})
    assert len(results) == 2
    assert results[0].ok is False and results[0].status == "error"
    assert _error(results[0]) == "unknown tool 'os_system'; the tools available are: get_weather"
    assert results[0].arguments == {"cmd": "rm -rf /"}
    assert results[0].message()["tool_call_id"] == "c1"
    # The second call had bad arguments: answered, not run.
    assert "location: missing required argument" in _error(results[1])
    assert CALLS == []


def test_only_the_tools_passed_for_this_call_can_run() -> None:
    # A function that exists in the module but was not offered is still unknown.
    [result] = run_tool_calls([_call("c1", "explode", '{"reason": "x"}')], [get_weather])
    assert _error(result).startswith("unknown tool 'explode'")
    assert result.exception is None


def test_invalid_json_arguments_are_answered_not_run() -> None:
    [result] = run_tool_calls([_call("c1", "get_weather", '{"location": ')], [get_weather])
    assert result.ok is False
    assert result.arguments == '{"location": '
    assert _error(result).startswith("arguments for get_weather are not valid JSON")
    assert CALLS == []


def test_wrong_argument_types_are_answered_not_run() -> None:
    [result] = run_tool_calls(
        [_call("c1", "get_weather", '{"location": "x", "units": "kelvin"}')], [get_weather]
    )
    assert result.arguments == {"location": "x", "units": "kelvin"}
    assert _error(result).startswith("invalid arguments for get_weather: units:")
    assert CALLS == []


def test_a_raising_tools_message_reaches_the_model_without_the_secrets_in_it() -> None:
    def query(sql: str) -> str:
        """Run a query."""
        raise ConnectionError("cannot reach postgresql://app:s3cret-pw@db:5432/x as sk-" + "a" * 24)

    [result] = run_tool_calls([_call("c1", "query", '{"sql": "select 1"}')], [query])
    assert result.error == _error(result)
    assert (
        _error(result)
        == "ConnectionError: cannot reach postgresql://app:[hidden]@db:5432/x as [hidden]"
    )
    assert "s3cret-pw" in str(result.exception)  # the notebook keeps the real exception


def test_raising_tool_is_reported_with_type_and_message() -> None:
    calls = [_call("c1", "explode", '{"reason": "disk full"}'), _call("c2", "get_weather", "")]
    results = run_tool_calls(calls, [explode, get_weather])
    failed = results[0]
    assert failed.ok is False
    assert failed.error == "RuntimeError: boom: disk full"
    assert json.loads(failed.content) == {"error": "RuntimeError: boom: disk full"}
    assert isinstance(failed.exception, RuntimeError)
    assert failed.exception.__traceback__ is not None
    assert failed.arguments == {"reason": "disk full"}
    # The raise did not stop the batch.
    assert results[1].message()["tool_call_id"] == "c2"


def test_unsupported_call_type_is_answered() -> None:
    call = ToolCall(id="c1", type="custom", function={"name": "get_weather", "arguments": "{}"})
    [result] = run_tool_calls([call], [get_weather])
    assert _error(result) == "unsupported tool call type 'custom'"


def test_async_tool_runs_in_the_sync_runner() -> None:
    [result] = run_tool_calls([_call("c1", "slow_echo", '{"text": "hi"}')], [slow_echo])
    assert result.ok and result.content == "hi"


def test_arun_tool_calls_awaits_async_tools_and_async_confirm() -> None:
    asked = []

    async def confirm(tool: Any, arguments: dict[str, Any]) -> str:
        asked.append((tool.name, arguments))
        return "yes"

    async def main() -> list[ToolResult]:
        calls = [_call("c1", "slow_echo", '{"text": "a"}'), _call("c2", "nope", "{}")]
        return await arun_tool_calls(calls, [tool(slow_echo, confirm=True)], confirm=confirm)

    results = asyncio.run(main())
    assert [r.status for r in results] == ["ok", "error"]
    assert results[0].content == "a"
    assert asked == [("slow_echo", {"text": "a"})]


# ---------------------------------------------------------------------------------------------
# Confirmation


def test_confirm_yes_runs_the_tool() -> None:
    asked = []

    def confirm(tool: Any, arguments: dict[str, Any]) -> str:
        asked.append((tool.name, arguments))
        return "yes"

    [result] = run_tool_calls(
        [_call("c1", "delete_file", '{"path": "a.txt"}')], [delete_file], confirm=confirm
    )
    assert asked == [("delete_file", {"path": "a.txt"})]
    assert result.ok and CALLS == ["deleted a.txt"]


def test_confirm_no_declines_and_tells_the_model() -> None:
    [result] = run_tool_calls(
        [_call("c1", "delete_file", '{"path": "a.txt"}')],
        [delete_file],
        confirm=lambda tool, arguments: False,
    )
    assert CALLS == []
    assert result.ok is False and result.declined is True and result.status == "declined"
    assert result.message() == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": '{"error":"the user declined to run delete_file"}',
    }


def test_confirm_always_is_remembered_in_the_policy() -> None:
    asked = []
    policy = ToolPolicy()

    def confirm(tool: Any, arguments: dict[str, Any]) -> str:
        asked.append(arguments["path"])
        return "always"

    calls = [
        _call("c1", "delete_file", '{"path": "a"}'),
        _call("c2", "delete_file", '{"path": "b"}'),
    ]
    run_tool_calls(calls, [delete_file], confirm=confirm, policy=policy)
    # A later reply in the same session is not asked again.
    run_tool_calls(
        [_call("c3", "delete_file", '{"path": "c"}')], [delete_file], confirm=confirm, policy=policy
    )
    assert asked == ["a"]
    assert policy.approved == {"delete_file"}
    assert CALLS == ["deleted a", "deleted b", "deleted c"]


def test_tools_without_confirm_are_not_asked_unless_confirm_all() -> None:
    asked = []

    def confirm(tool: Any, arguments: dict[str, Any]) -> bool:
        asked.append(tool.name)
        return True

    call = _call("c1", "get_weather", '{"location": "Beijing, China"}')
    run_tool_calls([call], [get_weather], confirm=confirm)
    assert asked == []
    run_tool_calls([call], [get_weather], confirm=confirm, policy=ToolPolicy(confirm_all=True))
    assert asked == ["get_weather"]


def test_confirm_true_asks_for_every_tool_with_input(monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = []

    def fake_input(prompt: str) -> str:
        prompts.append(prompt)
        return "n"

    monkeypatch.setattr("builtins.input", fake_input)
    call = _call("c1", "get_weather", '{"location": "Beijing, China", "units": "celsius"}')
    [result] = run_tool_calls([call], [get_weather], confirm=True)
    assert prompts == [
        "Run get_weather(location='Beijing, China', units='celsius')? [y]es / [n]o / [a]lways: "
    ]
    assert result.declined and CALLS == []


def test_confirm_true_always_reaches_the_callers_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("builtins.input", lambda prompt: "a")
    policy = ToolPolicy()
    call = _call("c1", "get_weather", '{"location": "Beijing, China"}')
    run_tool_calls([call], [get_weather], confirm=True, policy=policy)
    assert policy.approved == {"get_weather"}
    assert policy.confirm_all is False


def test_input_confirm_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    made = as_tool(delete_file)
    for typed, expected in [("y", "yes"), ("YES", "yes"), ("always", "always"), ("", "no")]:
        monkeypatch.setattr("builtins.input", lambda prompt, typed=typed: typed)
        assert input_confirm(made, {"path": "x"}) == expected

    def no_stdin(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", no_stdin)
    assert input_confirm(made, {"path": "x"}) == "no"


def test_unclear_confirm_answer_counts_as_no() -> None:
    [result] = run_tool_calls(
        [_call("c1", "delete_file", '{"path": "a"}')],
        [delete_file],
        confirm=lambda tool, arguments: "maybe",
    )
    assert result.declined and CALLS == []


def test_confirm_callback_that_raises_declines() -> None:
    def broken(tool: Any, arguments: dict[str, Any]) -> str:
        raise ValueError("widget gone")

    [result] = run_tool_calls(
        [_call("c1", "delete_file", '{"path": "a"}')], [delete_file], confirm=broken
    )
    assert result.declined and CALLS == []
    assert result.error == "confirmation failed: ValueError: widget gone"
    assert _error(result) == "the user declined to run delete_file"


def test_invalid_arguments_are_not_shown_for_confirmation() -> None:
    asked = []
    run_tool_calls(
        [_call("c1", "delete_file", '{"file": "a"}')],
        [delete_file],
        confirm=lambda tool, arguments: asked.append(arguments) or True,
    )
    assert asked == []


def test_interrupt_answers_every_call() -> None:
    def interrupt(seconds: int) -> None:
        raise KeyboardInterrupt

    calls = [
        _call("c1", "get_weather", '{"location": "Beijing, China"}'),
        _call("c2", "interrupt", '{"seconds": 1}'),
        _call("c3", "get_weather", '{"location": "Shanghai, China"}'),
    ]
    with pytest.raises(ToolRunInterrupted) as info:
        run_tool_calls(calls, [get_weather, interrupt])
    assert isinstance(info.value, KeyboardInterrupt)
    results = info.value.results
    assert [r.tool_call_id for r in results] == ["c1", "c2", "c3"]
    assert [r.status for r in results] == ["ok", "error", "error"]
    assert _error(results[2]) == "interrupted by the user"
    assert CALLS == ["Beijing, China"]


# ---------------------------------------------------------------------------------------------
# Results as message content


def test_str_result_is_sent_as_is() -> None:
    assert encode_result("晴天, 28°C") == "晴天, 28°C"
    assert encode_result('{"already": "json"}') == '{"already": "json"}'


def test_pydantic_result_uses_model_dump_json() -> None:
    value = Weather(temperature=28, condition="晴天")
    assert encode_result(value) == value.model_dump_json()
    assert json.loads(encode_result(value)) == {"temperature": 28, "condition": "晴天"}


def test_dataframe_result_is_records() -> None:
    frame = pd.DataFrame({"city": ["Beijing", "Shanghai"], "temp": [28, 32]})
    assert json.loads(encode_result(frame)) == [
        {"city": "Beijing", "temp": 28},
        {"city": "Shanghai", "temp": 32},
    ]


def test_dataframe_index_is_kept_as_a_column() -> None:
    frame = pd.DataFrame({"temp": [28, 32]}, index=pd.Index(["Beijing", "Shanghai"], name="city"))
    assert json.loads(encode_result(frame)) == [
        {"city": "Beijing", "temp": 28},
        {"city": "Shanghai", "temp": 32},
    ]


def test_large_dataframe_is_capped_with_a_note() -> None:
    frame = pd.DataFrame({"n": range(MAX_RESULT_ROWS + 50)})
    data = json.loads(encode_result(frame))
    assert data["note"] == f"showing the first {MAX_RESULT_ROWS} of {MAX_RESULT_ROWS + 50} rows"
    assert len(data["records"]) == MAX_RESULT_ROWS
    assert data["records"][-1] == {"n": MAX_RESULT_ROWS - 1}


def test_dataframe_with_dates_nan_and_repeated_columns() -> None:
    frame = pd.DataFrame({"when": pd.to_datetime(["2024-05-01"]), "x": [math.nan]})
    assert json.loads(encode_result(frame)) == [{"when": "2024-05-01T00:00:00.000", "x": None}]
    repeated = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert json.loads(encode_result(repeated)) == {"columns": ["a", "a"], "data": [[1, 2]]}


def test_dataframe_inside_a_dict_and_a_series() -> None:
    frame = pd.DataFrame({"a": [1]})
    assert json.loads(encode_result({"table": frame})) == {"table": [{"a": 1}]}
    series = pd.Series([1, 2], name="v")
    assert json.loads(encode_result(series)) == [{"v": 1}, {"v": 2}]


def test_dataclass_datetime_set_and_other_values() -> None:
    value = {
        "reading": Reading("t1", datetime.datetime(2024, 5, 1, 12, 30)),
        "day": datetime.date(2024, 5, 1),
        "tags": {"hot"},
        "price": decimal.Decimal("1.10"),
        "nan": float("nan"),
        "pair": (1, 2),
    }
    assert json.loads(encode_result(value)) == {
        "reading": {"sensor": "t1", "taken": "2024-05-01T12:30:00"},
        "day": "2024-05-01",
        "tags": ["hot"],
        "price": "1.10",
        "nan": None,
        "pair": [1, 2],
    }


def test_numpy_scalars_and_arrays() -> None:
    value = {"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True), "a": np.arange(3)}
    assert json.loads(encode_result(value)) == {"n": 3, "x": 0.5, "ok": True, "a": [0, 1, 2]}


def test_none_and_unknown_objects() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<Thing 1>"

    assert encode_result(None) == "null"
    assert encode_result({"thing": Thing()}) == '{"thing":"<Thing 1>"}'
    # Bytes that are not text arrive as (URL-safe) base64.
    assert base64.urlsafe_b64decode(json.loads(encode_result(b"\xff\xfe"))) == b"\xff\xfe"
    assert encode_result(b"text") == '"text"'


def test_long_results_are_cut_with_a_note() -> None:
    text = encode_result("x" * (MAX_RESULT_CHARS + 10))
    assert text.startswith("x" * MAX_RESULT_CHARS)
    assert text.endswith(
        f"[truncated: the result has {MAX_RESULT_CHARS + 10} characters; "
        f"the first {MAX_RESULT_CHARS} are shown]"
    )
    assert encode_result("abcdef", max_chars=None) == "abcdef"


def test_tool_results_are_encoded_in_the_message() -> None:
    def frame_tool() -> pd.DataFrame:
        return pd.DataFrame({"a": [1, 2]})

    def model_tool() -> Weather:
        return Weather(temperature=1, condition="c")

    results = run_tool_calls(
        [_call("c1", "frame_tool", ""), _call("c2", "model_tool", "{}")], [frame_tool, model_tool]
    )
    assert results[0].content == '[{"a":1},{"a":2}]'
    assert isinstance(results[0].value, pd.DataFrame)
    assert results[1].content == '{"temperature":1,"condition":"c"}'


def test_to_dict_is_plain_data() -> None:
    [result] = run_tool_calls(
        [_call("c1", "get_weather", '{"location": "Beijing, China"}')], [get_weather]
    )
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["status"] == "ok"
    assert data["arguments"] == {"location": "Beijing, China", "units": None}


def test_tool_calling_exit_is_a_failed_call() -> None:
    def leave() -> None:
        raise SystemExit(3)

    [result] = run_tool_calls([_call("c1", "leave", "{}")], [leave])
    assert result.error == "SystemExit: 3"


def test_async_confirm_that_raises_declines_in_the_sync_runner() -> None:
    async def broken(tool: Any, arguments: dict[str, Any]) -> str:
        raise RuntimeError("no widget")

    [result] = run_tool_calls(
        [_call("c1", "delete_file", '{"path": "a"}')], [delete_file], confirm=broken
    )
    assert result.declined and CALLS == []
    assert result.error == "confirmation failed: RuntimeError: no widget"


# ---------------------------------------------------------------------------------------------
# Custom tool calls


@tool(custom=True)
def shout(text: str) -> str:
    """Say it loud."""
    CALLS.append(f"shout {text}")
    return text.upper()


def _custom(call_id: str, name: str, text: str) -> dict[str, Any]:
    return {"id": call_id, "type": "custom", "custom": {"name": name, "input": text}}


def test_a_custom_call_runs_its_tool_with_the_raw_input() -> None:
    [result] = run_tool_calls([_custom("c1", "shout", 'hi {"x": 1}')], [shout, get_weather])
    assert result.ok and result.content == 'HI {"X": 1}'
    assert result.arguments == 'hi {"x": 1}'  # the input as the model sent it
    assert CALLS == ['shout hi {"x": 1}']
    assert result.message() == {"role": "tool", "tool_call_id": "c1", "content": 'HI {"X": 1}'}


def test_custom_and_function_calls_run_in_one_round_in_order() -> None:
    calls = [
        _custom("c1", "shout", "a"),
        _call("c2", "get_weather", '{"location": "Beijing, China"}'),
    ]
    results = run_tool_calls(calls, [shout, get_weather])
    assert [r.tool_call_id for r in results] == ["c1", "c2"]
    assert all(r.ok for r in results)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            _custom("c1", "rm_rf", "/"),
            "unknown tool 'rm_rf'; the tools available are: get_weather, shout",
        ),
        (
            _custom("c1", "get_weather", "Paris"),
            "get_weather is a function; it was called as a custom tool",
        ),
        (
            {"id": "c1", "type": "function", "function": {"name": "shout", "arguments": "{}"}},
            "shout is a custom tool; it was called as a function",
        ),
        (
            {"id": "c1", "type": "web_search", "web_search": {}},
            "unsupported tool call type 'web_search'",
        ),
    ],
    ids=["not-allowed", "function-as-custom", "custom-as-function", "unknown-kind"],
)
def test_a_custom_call_outside_the_allowlist_runs_nothing(call: Any, message: str) -> None:
    [result] = run_tool_calls(
        [call],
        {"shout": shout, "get_weather": get_weather} if "get_weather" in message else [shout],
    )
    assert not result.ok and _error(result) == message
    assert CALLS == []


def test_a_custom_call_is_confirmed_like_a_function() -> None:
    asked: list[tuple[str, dict]] = []

    def confirm(tool: Any, arguments: dict[str, Any]) -> str:
        asked.append((tool.name, arguments))
        return "no"

    [result] = run_tool_calls(
        [_custom("c1", "shout", "hey")],
        [shout],
        confirm=confirm,
        policy=ToolPolicy(confirm_all=True),
    )
    assert asked == [("shout", {"text": "hey"})]
    assert result.declined and CALLS == []


def test_custom_calls_run_in_the_async_runner_too() -> None:
    results = asyncio.run(arun_tool_calls([_custom("c1", "shout", "x")], [shout]))
    assert results[0].ok and results[0].content == "X"
