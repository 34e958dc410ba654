"""Stream accumulation: chunks in, the ChatCompletion a non-streamed call would have returned out.

``handle_chunk()`` is on the hot path of every stream, so it only appends; ``snapshot()`` joins.
"""

from __future__ import annotations

from typing import Any

from ..protocol.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceLogprobs,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
)

__all__ = ["ChatCompletionAccumulator"]


class _ToolCallState:
    __slots__ = ("arguments", "extra", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name = ""
        self.arguments: list[str] = []
        self.extra: dict[str, Any] = {}


class _ChoiceState:
    __slots__ = (
        "content",
        "extra",
        "finish_reason",
        "logprobs",
        "refusal",
        "refusal_logprobs",
        "renumbered",
        "role",
        "saw_logprobs",
        "tool_calls",
        "tool_index_by_id",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, _ToolCallState] = {}
        self.tool_index_by_id: dict[str, int] = {}
        # Server index → our index, for servers that reuse one index for several calls.
        self.renumbered: dict[int, int] = {}
        self.logprobs: list[Any] = []
        self.refusal_logprobs: list[Any] = []
        self.saw_logprobs = False
        self.finish_reason: str | None = None
        # Fields a server adds to the delta (reasoning_content, …): strings are joined.
        self.extra: dict[str, Any] = {}


class ChatCompletionAccumulator:
    """Merge ChatCompletionChunks into one ChatCompletion."""

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceState] = {}
        self._id = ""
        self._created = 0
        self._model = ""
        self._system_fingerprint: str | None = None
        self._service_tier: str | None = None
        self._usage: Any = None
        self.chunks = 0

    @property
    def finished(self) -> bool:
        """True once every choice seen has a finish_reason."""
        return bool(self._choices) and all(
            state.finish_reason is not None for state in self._choices.values()
        )

    def handle_chunk(self, chunk: ChatCompletionChunk) -> None:
        self.chunks += 1
        if not self._id and chunk.id:
            self._id = chunk.id
        if not self._created and chunk.created:
            self._created = chunk.created
        if chunk.model:
            self._model = chunk.model
        if chunk.system_fingerprint:
            self._system_fingerprint = chunk.system_fingerprint
        if chunk.service_tier:
            self._service_tier = chunk.service_tier
        if chunk.usage is not None:
            self._usage = chunk.usage
        if not chunk.choices:
            return
        for choice in chunk.choices:
            state = self._choices.get(choice.index)
            if state is None:
                state = self._choices[choice.index] = _ChoiceState()
            delta = choice.delta
            if delta.content:
                state.content.append(delta.content)
            if delta.refusal:
                state.refusal.append(delta.refusal)
            if delta.role:
                state.role = delta.role
            if delta.tool_calls:
                for call in delta.tool_calls:
                    self._merge_tool_call(state, call)
            if delta.__pydantic_extra__:
                self._merge_extra(state.extra, delta.__pydantic_extra__)
            if choice.logprobs is not None:
                state.saw_logprobs = True
                if choice.logprobs.content:
                    state.logprobs.extend(choice.logprobs.content)
                if choice.logprobs.refusal:
                    state.refusal_logprobs.extend(choice.logprobs.refusal)
            if choice.finish_reason is not None:
                state.finish_reason = choice.finish_reason

    @staticmethod
    def _merge_extra(extra: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, str) and isinstance(extra.get(key), str):
                extra[key] += value
            else:
                extra[key] = value

    @staticmethod
    def _merge_tool_call(state: _ChoiceState, delta: ToolCallDelta) -> None:
        index = delta.index
        if index is None:
            # A server that omits index: one call per id; fragments without id go to the last.
            if delta.id and delta.id in state.tool_index_by_id:
                index = state.tool_index_by_id[delta.id]
            elif delta.id or not state.tool_calls:
                index = max(state.tool_calls, default=-1) + 1
            else:
                index = max(state.tool_calls)
        else:
            sent = index
            index = state.renumbered.get(sent, sent)
            known = state.tool_calls.get(index)
            if delta.id and known is not None and known.id and delta.id != known.id:
                # A server that numbers every call 0: a new id at a used index is a new call,
                # and the fragments that follow at that index belong to it.
                new = state.tool_index_by_id.get(delta.id)
                if new is None:
                    new = max(state.tool_calls) + 1
                state.renumbered[sent] = index = new
        call = state.tool_calls.get(index)
        if call is None:
            call = state.tool_calls[index] = _ToolCallState()
        if delta.id and not call.id:
            call.id = delta.id
            state.tool_index_by_id[delta.id] = index
        if delta.type:
            call.type = delta.type
        function = delta.function
        if function is not None:
            name = function.name
            # Some servers repeat the whole name in every chunk: keep it once.
            if name and name != call.name:
                call.name += name
            if function.arguments:
                call.arguments.append(function.arguments)

    def snapshot(self) -> ChatCompletion:
        """The ChatCompletion so far (complete once the stream has ended)."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            tool_calls = None
            if state.tool_calls:
                tool_calls = [
                    ToolCall(
                        id=call.id,
                        type=call.type,
                        function=FunctionCall(name=call.name, arguments="".join(call.arguments)),
                    )
                    for _, call in sorted(state.tool_calls.items())
                ]
            message: dict[str, Any] = {
                "role": state.role,
                "content": "".join(state.content) if state.content else None,
                "refusal": "".join(state.refusal) if state.refusal else None,
            }
            if tool_calls is not None:
                message["tool_calls"] = tool_calls
            message.update(state.extra)
            logprobs = None
            if state.saw_logprobs:
                logprobs = ChoiceLogprobs(
                    content=list(state.logprobs),
                    refusal=list(state.refusal_logprobs) if state.refusal_logprobs else None,
                )
            choices.append(
                Choice(
                    index=index,
                    message=ChatCompletionMessage(**message),
                    logprobs=logprobs,
                    finish_reason=state.finish_reason,
                )
            )
        # Optional fields only when the stream had them, so that to_dict() shows what create()
        # would have shown rather than a row of nulls.
        optional = {
            "system_fingerprint": self._system_fingerprint,
            "service_tier": self._service_tier,
            "usage": self._usage,
        }
        return ChatCompletion(
            id=self._id,
            object="chat.completion",
            created=self._created,
            model=self._model,
            choices=choices,
            **{key: value for key, value in optional.items() if value is not None},
        )
