"""Running the tool calls of one assistant reply: check, confirm, run, and encode each result.

``run_tool_calls()`` answers every tool call with exactly one ToolResult, in order, and only the
tools passed in can run; ``ToolResult.message()`` is the tool message to append to the history.

Decisions, so a user knows what to expect:

- Calls run one after another in the order the model gave them, never concurrently: tools touch
  notebook state, and confirmation prompts must not interleave.
- A call naming a tool that was not passed, arguments that are not JSON or fail validation, a
  tool that raises, and a call the user declines are all answered to the model with
  ``{"error": "..."}`` naming the problem; the tool is not run in the first three cases.
- Confirmation: before running a tool with ``confirm=True``, or any tool when
  ``ToolPolicy.confirm_all`` is on, ``confirm(tool, kwargs)`` is asked. It returns ``"yes"``,
  ``"no"``, ``"always"``, ``"stop"`` (or True / False, or a ``Decision`` that also says who
  decided and what the model is told; anything else counts as no). ``"always"`` adds the tool
  to ``ToolPolicy.approved``, so keep one ToolPolicy per session. ``"stop"`` declines this call
  and answers the calls after it as not run, and the result says ``stopped``: the conversation
  sends nothing more. Without a callback the user is asked with ``input()``
  (``input_confirm``); no input to read means no. Every result records its ``approval``.
- Results: a ``str`` is sent as it is (not JSON-quoted), so a tool can answer in prose; a
  pydantic model as ``model_dump_json()``; a DataFrame as JSON records (a non-default index
  becomes columns), at most ``MAX_RESULT_ROWS`` rows with a note saying how many there were;
  dataclasses, datetimes (ISO 8601), sets, Decimal, UUID, paths, numpy scalars and arrays
  become JSON; NaN and infinity become null; anything else its ``repr()``. Every message is
  cut at ``MAX_RESULT_CHARS`` characters with a note at the end saying so.
- Ctrl-C while tools run raises ToolRunInterrupted (a KeyboardInterrupt) carrying one result
  per call, the unfinished ones answered as interrupted, so the history can stay well-formed.
- Custom tool calls (``type: "custom"``) run the same way, through the same allowlist and
  confirmation: the tool (made with ``custom=True`` or a grammar) receives the model's raw
  input, and its result is a tool message answering the call's id, like a function's. A custom
  call to a function tool, a function call to a custom tool and a kind of call nbchat does not
  know are answered with an error; nothing runs.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

import pydantic_core
from pydantic import BaseModel, TypeAdapter

from ..convert.awaitables import run_awaitable
from ..convert.redact import hide_secrets
from ..convert.tooloutput import ToolOutput
from ..convert.tools import Tool, ToolArgumentsError, tools_by_name
from ..protocol.types import AnyToolCall, CustomToolCall, OtherToolCall, ToolCall

#: A call of any kind, as a reply holds it.
Call = ToolCall | CustomToolCall | OtherToolCall

__all__ = [
    "MAX_RESULT_CHARS",
    "MAX_RESULT_ROWS",
    "ConfirmCallback",
    "Decision",
    "RunTools",
    "ToolPolicy",
    "ToolResult",
    "ToolRunInterrupted",
    "arun_tool_calls",
    "encode_result",
    "input_confirm",
    "known_calls",
    "run_tool_calls",
]

#: A tool message longer than this many characters is cut, with a note (about 5k tokens).
MAX_RESULT_CHARS = 20_000
#: A DataFrame result sends at most this many rows, with a note giving the total.
MAX_RESULT_ROWS = 100

ConfirmCallback = Callable[[Tool, dict[str, Any]], Any]

#: The tools a round may run: names to tools (a Tool, function or model class), or a list.
Tools = Mapping[str, Any] | Iterable[Any] | None


class RoundOptions(TypedDict, total=False):
    """How a round of tool calls runs (``run_tool_calls``/``arun_tool_calls``' keywords).

    ``confirm``: the callback asked before a tool runs where ``policy`` says so (default
    ``input_confirm``), or True to ask before every tool. ``policy``: the session's
    ``ToolPolicy`` ("always" lasts as long as it does). ``max_chars`` (``MAX_RESULT_CHARS``)
    and ``max_rows`` (``MAX_RESULT_ROWS``): how much of a result is sent.
    """

    confirm: ConfirmCallback | bool | None
    policy: ToolPolicy | None
    max_chars: int | None
    max_rows: int


_YES = {"yes", "y", "true", "ok", "run"}
_ALWAYS = {"always", "a"}
_STOP = {"stop", "s", "x"}


@dataclass(frozen=True)
class Decision:
    """A confirmation's answer: ``answer`` (yes, no, always, stop), who gave it (``by``: "user",
    "--yes", "nobody"…), and for a call not run, what the model is told (``message``)."""

    answer: str
    by: str = "user"
    message: str | None = None


@dataclass
class ToolPolicy:
    """Confirmation state of a session: ask for every tool, and the tools approved for good."""

    confirm_all: bool = False
    approved: set[str] = field(default_factory=set)

    def needs_confirmation(self, tool: Tool) -> bool:
        return (tool.confirm or self.confirm_all) and tool.name not in self.approved


@dataclass
class ToolResult:
    """What happened to one tool call, and the tool message that answers it."""

    tool_call_id: str
    name: str
    #: The validated kwargs; the parsed JSON if validation failed; the raw text if not JSON;
    #: a custom tool's input, as the model sent it.
    arguments: dict[str, Any] | str
    ok: bool
    #: The message content sent to the model: the encoded value, or {"error": ...}.
    content: str
    value: Any = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    declined: bool = False
    #: Seconds spent in the tool itself; 0 when it did not run.
    duration: float = 0.0
    #: How the call was allowed or not: "not asked", "approved by user", "always (before)",
    #: "declined by user", "refused: nobody can answer", "stopped by user", "not run: stopped".
    approval: str = "not asked"
    #: The user chose to stop: no further request is sent after this round.
    stopped: bool = False

    @property
    def status(self) -> str:
        """``"ok"``, ``"declined"`` or ``"error"``."""
        return "ok" if self.ok else "declined" if self.declined else "error"

    def message(self) -> dict[str, str]:
        """The protocol tool message: ``{"role": "tool", "tool_call_id": ..., "content": ...}``.

        A custom tool's call is answered the same way: a tool message for its id.
        """
        return {"role": "tool", "tool_call_id": self.tool_call_id, "content": self.content}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for display or logs (the Python value itself is left out)."""
        return {
            "tool_call_id": self.tool_call_id,
            "name": self.name,
            "arguments": json.loads(
                pydantic_core.to_json(self.arguments, fallback=repr, inf_nan_mode="null")
            ),
            "status": self.status,
            "error": self.error,
            "duration": self.duration,
            "content": self.content,
            "approval": self.approval,
        }


class ToolRunInterrupted(KeyboardInterrupt):
    """Ctrl-C while tools ran; ``results`` still answers every call (the rest as interrupted)."""

    def __init__(self, results: list[ToolResult]) -> None:
        super().__init__("tool calls interrupted")
        self.results = results


# ---------------------------------------------------------------------------------------------
# Running


def known_calls(calls: Iterable[Call] | None) -> list[Call]:
    """The function and custom calls among ``calls``: the kinds a conversation can answer and
    send back (a kind nbchat does not know could not be sent back)."""
    return [call for call in calls or () if isinstance(call, ToolCall | CustomToolCall)]


def run_tool_calls(
    tool_calls: Iterable[Call | Mapping[str, Any]], tools: Tools, **options: Unpack[RoundOptions]
) -> list[ToolResult]:
    """Run the calls of one assistant reply; one ToolResult per call, in the same order.

    ``tools`` maps names to tools (a Tool, function or model class; a list works too) and is
    the only set of code that may run. ``confirm`` is the callback asked where ``policy`` says
    so (default ``input_confirm``); ``confirm=True`` asks before every tool, like
    ``ToolPolicy(confirm_all=True)``. Pass the session's ``policy`` so that "always" lasts;
    without one, it lasts for this reply only.
    """
    from .flow import drive

    return drive(_round(tool_calls, tools, **options))


async def arun_tool_calls(
    tool_calls: Iterable[Call | Mapping[str, Any]], tools: Tools, **options: Unpack[RoundOptions]
) -> list[ToolResult]:
    """Like run_tool_calls(), awaiting async tools and an async ``confirm`` on this loop.

    Sync tools still run in this thread, one after another, like in run_tool_calls().
    """
    from .flow import adrive

    return await adrive(_round(tool_calls, tools, **options))


def _round(
    tool_calls: Iterable[Call | Mapping[str, Any]],
    tools: Tools,
    *,
    confirm: ConfirmCallback | bool | None = None,
    policy: ToolPolicy | None = None,
    max_chars: int | None = MAX_RESULT_CHARS,
    max_rows: int = MAX_RESULT_ROWS,
) -> Generator[Any, Any, list[ToolResult]]:
    """One round of calls, written once for both sides: it yields what needs I/O — an answer
    to await, a tool to invoke — and ``run_tool_calls`` runs it here while
    ``arun_tool_calls`` awaits it (see ``flow.py``)."""
    calls = [_as_tool_call(call) for call in tool_calls]
    table = tools_by_name(tools)
    policy, ask = _confirmation(confirm, policy)
    results: list[ToolResult] = []
    try:
        for call in calls:
            if results and results[-1].stopped:
                results.append(_not_run(call, max_chars))
                continue
            step = _prepare(call, table, max_chars)
            if isinstance(step, ToolResult):
                results.append(step)
                continue
            tool, kwargs = step
            approval = _already(tool, policy)
            if policy.needs_confirmation(tool):
                decision = _ask(ask, tool, kwargs)
                if inspect.isawaitable(decision):
                    try:
                        decision = yield _Settle(decision)
                    except Exception as exc:
                        decision = exc
                refusal, approval = _apply_decision(decision, call, tool, kwargs, policy, max_chars)
                if refusal is not None:
                    results.append(refusal)
                    continue
            started = time.perf_counter()
            try:
                value = yield _Invoke(tool, kwargs)
            except (Exception, SystemExit) as exc:
                # A tool that calls exit() is a failed call, not the end of the session.
                results.append(_raised(call, kwargs, exc, time.perf_counter() - started, max_chars))
            else:
                duration = time.perf_counter() - started
                results.append(_success(call, kwargs, value, duration, max_chars, max_rows))
            results[-1].approval = approval
    except KeyboardInterrupt as exc:
        raise ToolRunInterrupted(_interrupted(calls, results, max_chars)) from exc
    return results


class RunTools:
    """Run one round of tool calls (``run_tool_calls``/``arun_tool_calls``)."""

    __slots__ = ("calls", "options", "toolbox")

    def __init__(self, calls: Any, toolbox: Any, **options: Any) -> None:
        self.calls = calls
        self.toolbox = toolbox
        self.options = options

    def run(self) -> Any:
        return run_tool_calls(self.calls, self.toolbox, **self.options)

    def arun(self) -> Any:
        return arun_tool_calls(self.calls, self.toolbox, **self.options)


class _Settle:
    """An awaitable answer (an async ``confirm``): run to its end here, or awaited."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Any) -> None:
        self.awaitable = awaitable

    def run(self) -> Any:
        return run_awaitable(self.awaitable)

    async def arun(self) -> Any:
        return await self.awaitable


class _Invoke:
    """A tool called with its checked arguments: ``invoke`` here, ``ainvoke`` awaited."""

    __slots__ = ("kwargs", "tool")

    def __init__(self, tool: Tool, kwargs: dict[str, Any]) -> None:
        self.tool = tool
        self.kwargs = kwargs

    def run(self) -> Any:
        return self.tool.invoke(self.kwargs)

    def arun(self) -> Any:
        return self.tool.ainvoke(self.kwargs)


def _confirmation(
    confirm: ConfirmCallback | bool | None, policy: ToolPolicy | None
) -> tuple[ToolPolicy, ConfirmCallback]:
    if policy is None:
        policy = ToolPolicy()
    if confirm is True and not policy.confirm_all:
        # A copy sharing ``approved``: "always" still reaches the caller's policy.
        policy = ToolPolicy(confirm_all=True, approved=policy.approved)
    ask = confirm if callable(confirm) else input_confirm
    return policy, ask


def input_confirm(tool: Tool, arguments: Mapping[str, Any]) -> str:
    """Ask on the terminal or notebook with input(): ``"yes"``, ``"no"`` or ``"always"``."""
    shown = ", ".join(f"{key}={_short_repr(value)}" for key, value in arguments.items())
    try:
        answer = input(f"Run {tool.name}({shown})? [y]es / [n]o / [a]lways: ")
    except EOFError:
        return "no"
    answer = answer.strip().lower()
    if answer in _ALWAYS:
        return "always"
    return "yes" if answer in _YES else "no"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_CALLS: TypeAdapter[Any] = TypeAdapter(AnyToolCall)


def _as_tool_call(call: Any) -> Call:
    if isinstance(call, ToolCall | CustomToolCall | OtherToolCall):
        return call
    if isinstance(call, Mapping):
        return _CALLS.validate_python(dict(call))
    if isinstance(call, BaseModel):
        return _CALLS.validate_python(call.model_dump())
    raise TypeError(f"a tool call must be a ToolCall or a dict, not {type(call).__name__}")


def _prepare(
    call: Call, table: dict[str, Tool], max_chars: int | None
) -> ToolResult | tuple[Tool, dict[str, Any]]:
    name = call.name
    raw = call.payload
    if isinstance(call, OtherToolCall) or (isinstance(call, ToolCall) and call.type != "function"):
        return _failure(call, raw, f"unsupported tool call type {call.type!r}", max_chars)
    custom = isinstance(call, CustomToolCall)
    shown = raw if custom else _parsed_or_raw(raw)
    tool = table.get(name)
    if tool is None:
        available = ", ".join(sorted(table)) or "none"
        message = f"unknown tool {name!r}; the tools available are: {available}"
        return _failure(call, shown, message, max_chars)
    if tool.custom != custom:
        kinds = ("a custom tool", "a function") if tool.custom else ("a function", "a custom tool")
        message = f"{name} is {kinds[0]}; it was called as {kinds[1]}"
        return _failure(call, shown, message, max_chars)
    try:
        kwargs = tool.validate(raw)
    except ToolArgumentsError as exc:
        return _failure(call, shown, exc.message, max_chars, exception=exc)
    return tool, kwargs


def _ask(ask: ConfirmCallback, tool: Tool, kwargs: dict[str, Any]) -> Any:
    try:
        return ask(tool, dict(kwargs))
    except Exception as exc:
        # A broken confirmation never lets a call through.
        return exc


def _apply_decision(
    decision: Any,
    call: Call,
    tool: Tool,
    kwargs: dict[str, Any],
    policy: ToolPolicy,
    max_chars: int | None,
) -> tuple[ToolResult | None, str]:
    """(None, approval) to go ahead, or (the ToolResult of a call not run, approval)."""
    declined = f"the user declined to run {tool.name}"
    if isinstance(decision, Exception):
        result = _failure(call, kwargs, declined, max_chars, exception=decision)
        result.declined = True
        result.error = f"confirmation failed: {type(decision).__name__}: {decision}"
        result.approval = "declined: the confirmation failed"
        return result, result.approval
    by, message = "user", None
    if isinstance(decision, Decision):
        by, message, decision = decision.by, decision.message, decision.answer
    answer = decision.strip().lower() if isinstance(decision, str) else None
    if answer in _ALWAYS:
        policy.approved.add(tool.name)
        return None, f"always, by {by}"
    if decision is True or answer in _YES:
        # A Decision by nobody in particular: the callback let it through without asking.
        return None, f"approved by {by}" if by else "not asked"
    if answer in _STOP:
        text = message or f"the user stopped the run; {tool.name} was not run"
        result = _failure(call, kwargs, text, max_chars)
        result.declined = result.stopped = True
        result.approval = f"stopped by {by}"
        return result, result.approval
    result = _failure(call, kwargs, message or declined, max_chars)
    result.declined = True
    result.approval = "refused: nobody can answer" if by == "nobody" else f"declined by {by}"
    return result, result.approval


def _already(tool: Tool, policy: ToolPolicy) -> str:
    """The approval of a call that is not asked about."""
    if tool.name in policy.approved and (tool.confirm or policy.confirm_all):
        return "always (approved before)"
    return "not asked"


def _not_run(call: Call, max_chars: int | None) -> ToolResult:
    """A call after the user chose to stop: answered, not run."""
    message = f"not run: the user stopped the run before {call.name}"
    result = _failure(call, _shown_input(call), message, max_chars)
    result.declined = result.stopped = True
    result.approval = "not run: stopped"
    return result


def _success(
    call: Call,
    kwargs: dict[str, Any],
    value: Any,
    duration: float,
    max_chars: int | None,
    max_rows: int,
) -> ToolResult:
    try:
        content = encode_result(value, max_chars=max_chars, max_rows=max_rows)
    except Exception as exc:
        message = f"the result could not be encoded: {type(exc).__name__}: {exc}"
        result = _failure(call, kwargs, message, max_chars, exception=exc)
        result.value = value
        result.duration = duration
        return result
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        arguments=call.payload if isinstance(call, CustomToolCall) else kwargs,
        ok=True,
        content=content,
        value=value,
        duration=duration,
    )


def _raised(
    call: Call,
    kwargs: dict[str, Any],
    exc: BaseException,
    duration: float,
    max_chars: int | None,
) -> ToolResult:
    # The error goes to the model as %chat fix's does: a password in a URL, a key, hidden.
    text = hide_secrets(str(exc))
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    result = _failure(call, kwargs, message, max_chars, exception=exc)
    result.duration = duration
    return result


def _failure(
    call: Call,
    arguments: dict[str, Any] | str,
    message: str,
    max_chars: int | None,
    *,
    exception: BaseException | None = None,
) -> ToolResult:
    return ToolResult(
        tool_call_id=call.id,
        name=call.name,
        # A custom tool's input is shown as the model sent it.
        arguments=call.payload if isinstance(call, CustomToolCall) else arguments,
        ok=False,
        content=_cap(_compact_json({"error": message}), max_chars),
        error=message,
        exception=exception,
    )


def _compact_json(value: Any) -> str:
    # The same spacing as encoded results: no spaces, no ASCII escapes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _interrupted(
    calls: Sequence[Call], done: list[ToolResult], max_chars: int | None
) -> list[ToolResult]:
    rest = [
        _failure(call, _shown_input(call), "interrupted by the user", max_chars)
        for call in calls[len(done) :]
    ]
    return [*done, *rest]


def _shown_input(call: Call) -> dict[str, Any] | str:
    return call.payload if isinstance(call, CustomToolCall) else _parsed_or_raw(call.payload)


def _parsed_or_raw(raw: str) -> dict[str, Any] | str:
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return raw
    return data if isinstance(data, dict) else raw


# ---------------------------------------------------------------------------------------------
# Encoding results


def encode_result(
    value: Any, *, max_chars: int | None = MAX_RESULT_CHARS, max_rows: int = MAX_RESULT_ROWS
) -> str:
    """The tool message content for a tool's return value (see the module docstring)."""
    if isinstance(value, ToolOutput):
        # Bounded by the tool that made it (MCP results at 100,000 characters).
        return value.text
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        text = _to_json(value, max_rows)
    return _cap(text, max_chars)


def _to_json(value: Any, max_rows: int) -> str:
    def fallback(item: Any) -> Any:
        return _jsonable(item, max_rows)

    try:
        return pydantic_core.to_json(value, fallback=fallback, inf_nan_mode="null").decode()
    except pydantic_core.PydanticSerializationError:
        pass
    try:
        # Bytes that are not UTF-8 text.
        encoded = pydantic_core.to_json(
            value, fallback=fallback, inf_nan_mode="null", bytes_mode="base64"
        )
        return encoded.decode()
    except pydantic_core.PydanticSerializationError:
        return repr(value)


def _jsonable(value: Any, max_rows: int) -> Any:
    """JSON-ready data for the types pydantic does not know; a repr() for the rest."""
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(value, pandas.DataFrame):
            return _frame_records(value, max_rows)
        if isinstance(value, pandas.Series):
            return _frame_records(value.to_frame(), max_rows)
        if isinstance(value, pandas.Index):
            return _jsonable_list(value.tolist(), max_rows)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.generic):
            return value.item()
        if isinstance(value, numpy.ndarray):
            return value.tolist()
    return repr(value)


def _jsonable_list(values: list[Any], max_rows: int) -> Any:
    if len(values) <= max_rows:
        return values
    return {
        "note": f"showing the first {max_rows} of {len(values)} values",
        "values": values[:max_rows],
    }


def _frame_records(frame: Any, max_rows: int) -> Any:
    index = frame.index
    default_index = type(index).__name__ == "RangeIndex" and index.start == 0 and index.step == 1
    if not default_index:
        # An index name that is also a column name: keep the columns, lose the index.
        with contextlib.suppress(ValueError):
            frame = frame.reset_index()
    total = len(frame)
    shown = frame.head(max_rows)
    try:
        records = json.loads(shown.to_json(orient="records", date_format="iso"))
    except ValueError:
        # Repeated column names cannot be record keys.
        columns = [str(column) for column in shown.columns]
        values = json.loads(shown.to_json(orient="values", date_format="iso"))
        records = {"columns": columns, "data": values}
    if total > max_rows:
        return {"note": f"showing the first {max_rows} of {total} rows", "records": records}
    return records


def _cap(text: str, max_chars: int | None) -> str:
    if max_chars is None or len(text) <= max_chars:
        return text
    return (
        text[:max_chars]
        + f"\n[truncated: the result has {len(text)} characters; the first {max_chars} are shown]"
    )
