"""Stream accumulation: chunks in, the ChatCompletion a non-streamed call would have returned out.

``handle_chunk()`` is on the hot path of every stream, so it only appends; ``snapshot()`` joins.
Every streamed field is joined the way the API streams it: text, refusals, transcripts, tool
arguments, custom tool inputs and the deprecated ``function_call`` in pieces (a name once),
base64 audio in pieces, annotations added as they come. ``obfuscation`` (padding that evens
out the chunks' sizes) belongs to the transport and stays out of the completion.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..protocol.types import (
    AudioDelta,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceLogprobs,
    FunctionCallDelta,
    ToolCallDelta,
)

__all__ = ["ChatCompletionAccumulator"]


class _ToolCallState:
    __slots__ = ("arguments", "extra", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name = ""
        # A function's arguments, or a custom tool's input.
        self.arguments: list[str] = []
        # Fields a server adds to a call (Gemini's extra_content…): the last value wins.
        self.extra: dict[str, Any] = {}

    def to_dict(self) -> dict[str, Any]:
        call: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.type in ("function", "custom") or self.name or self.arguments:
            body, text = ("custom", "input") if self.type == "custom" else ("function", "arguments")
            call[body] = {"name": self.name, text: "".join(self.arguments)}
        # A kind of call nbchat does not know keeps its own body (among the extra fields).
        return {**call, **self.extra}


class _AudioState:
    """A spoken reply as it streams: id and expiry once, base64 audio and transcript in pieces."""

    __slots__ = ("data", "expires_at", "extra", "id", "sent", "transcript")

    def __init__(self) -> None:
        self.id = ""
        self.expires_at: int | None = None
        self.data: list[str] = []
        self.transcript: list[str] = []
        self.sent: set[str] = set()
        self.extra: dict[str, Any] = {}

    def add(self, delta: AudioDelta) -> None:
        self.sent.update(delta.__pydantic_fields_set__)
        if delta.id:
            self.id = delta.id
        if delta.expires_at is not None:
            self.expires_at = delta.expires_at
        if delta.data:
            self.data.append(delta.data)
        if delta.transcript:
            self.transcript.append(delta.transcript)
        if delta.__pydantic_extra__:
            self.extra.update(delta.__pydantic_extra__)

    def to_dict(self) -> dict[str, Any]:
        audio: dict[str, Any] = {}
        if self.id or "id" in self.sent:
            audio["id"] = self.id
        if self.expires_at is not None or "expires_at" in self.sent:
            audio["expires_at"] = self.expires_at
        if self.data or "data" in self.sent:
            audio["data"] = join_base64(self.data)
        if self.transcript or "transcript" in self.sent:
            audio["transcript"] = "".join(self.transcript)
        return {**audio, **self.extra}


def join_base64(pieces: list[str]) -> str:
    """Base64 text sent in pieces, as one: joined as text when the pieces are cuts of one text,
    decoded one by one and encoded again when each piece was encoded on its own (padded)."""
    if not any("=" in piece for piece in pieces[:-1]):
        return "".join(pieces)
    try:
        raw = b"".join(base64.b64decode(piece, validate=True) for piece in pieces)
    except (binascii.Error, ValueError):
        return "".join(pieces)
    return base64.b64encode(raw).decode("ascii")


# Fields of a chunk's choice that may come as null: sent that way, the snapshot keeps them.
_CHOICE_FIELDS = ("index", "logprobs", "finish_reason")


class _ChoiceState:
    __slots__ = (
        "annotations",
        "audio",
        "content",
        "extra",
        "finish_reason",
        "function_call",
        "logprobs",
        "logprobs_sent",
        "message_extra",
        "refusal",
        "refusal_logprobs",
        "renumbered",
        "role",
        "sent",
        "tool_calls",
        "tool_index_by_id",
        "unseen",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, _ToolCallState] = {}
        # The deprecated function_call: a name, then its arguments in pieces.
        self.function_call: _ToolCallState | None = None
        self.audio: _AudioState | None = None
        self.annotations: list[Any] | None = None
        self.tool_index_by_id: dict[str, int] = {}
        # Server index → our index, for servers that reuse one index for several calls.
        self.renumbered: dict[int, int] = {}
        self.logprobs: list[Any] = []
        self.refusal_logprobs: list[Any] = []
        self.finish_reason: str | None = None
        # The names of the fields the stream sent only as null so far (a field with a value
        # shows by its value), and of those its logprobs had: the snapshot has these too, as
        # the unstreamed reply would. Filled on the slow path only: most chunks add nothing.
        self.sent: set[str] = set()
        self.unseen = set(_CHOICE_FIELDS)
        self.logprobs_sent: set[str] = set()
        # Fields a server adds to the choice (vLLM's stop_reason…): the last value wins.
        self.extra: dict[str, Any] = {}
        # Fields a server adds to the delta (reasoning_content, …): strings are joined.
        self.message_extra: dict[str, Any] = {}


class ChatCompletionAccumulator:
    """Merge ChatCompletionChunks into one ChatCompletion.

    The snapshot has the fields the stream sent, with the values they add up to; a field sent
    only as null is there as null, a field never sent is left out.
    """

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceState] = {}
        self._id = ""
        self._created = 0
        self._model = ""
        self._system_fingerprint: str | None = None
        self._service_tier: str | None = None
        self._usage: Any = None
        self._moderation: Any = None
        self._sent: set[str] = set()
        self._given = -1
        self._extra: dict[str, Any] = {}
        self.chunks = 0

    @property
    def finished(self) -> bool:
        """True once every choice seen has a finish_reason."""
        return bool(self._choices) and all(
            state.finish_reason is not None for state in self._choices.values()
        )

    @property
    def has_choices(self) -> bool:
        """True once a chunk carried a choice."""
        return bool(self._choices)

    def handle_chunk(self, chunk: ChatCompletionChunk) -> None:
        self.chunks += 1
        given = chunk.__pydantic_fields_set__
        if len(given) != self._given:
            # Servers send the same fields in every chunk; a field sent only as null shows as a
            # chunk of another width (one with a value shows by its value).
            self._given = len(given)
            self._sent.update(given)
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
        if chunk.moderation is not None:
            self._moderation = chunk.moderation
        if chunk.__pydantic_extra__:
            self._merge_last(self._extra, chunk.__pydantic_extra__)
        if not chunk.choices:
            return
        for choice in chunk.choices:
            state = self._choices.get(choice.index)
            if state is None:
                state = self._choices[choice.index] = _ChoiceState()
            delta = choice.delta
            content = delta.content
            if content is not None and len(delta.__pydantic_fields_set__) == 1:
                state.content.append(content)  # the common chunk: a piece of text, only that
            elif delta.__pydantic_fields_set__:
                self._merge_delta(state, delta)
            logprobs = choice.logprobs
            if logprobs is not None:
                state.logprobs_sent.update(logprobs.__pydantic_fields_set__)
                if logprobs.content:
                    state.logprobs.extend(logprobs.content)
                if logprobs.refusal:
                    state.refusal_logprobs.extend(logprobs.refusal)
            if choice.finish_reason is not None:
                state.finish_reason = choice.finish_reason
            if state.unseen:
                # Until the stream has shown each of them once (most do in their first chunk).
                sent = choice.__pydantic_fields_set__
                for key in tuple(state.unseen):
                    if key in sent:
                        state.sent.add(key)
                        state.unseen.discard(key)
            if choice.__pydantic_extra__:
                self._merge_last(state.extra, choice.__pydantic_extra__)

    def _merge_delta(self, state: _ChoiceState, delta: Any) -> None:
        given = delta.__pydantic_fields_set__
        if len(given) == 1 and delta.tool_calls:
            # The common chunk of a forming call: a piece of its arguments, only that.
            for call in delta.tool_calls:
                self._merge_tool_call(state, call)
            return
        sent = state.sent
        # "" counts: a reply whose text was sent as "" has content "", not null.
        if delta.content is not None:
            state.content.append(delta.content)
        elif "content" in given:
            sent.add("content")
        if delta.refusal is not None:
            state.refusal.append(delta.refusal)
        elif "refusal" in given:
            sent.add("refusal")
        if delta.role:
            state.role = delta.role
        if delta.tool_calls:
            for call in delta.tool_calls:
                self._merge_tool_call(state, call)
        elif "tool_calls" in given:
            sent.add("tool_calls")
        if delta.function_call is not None:
            self._merge_function_call(state, delta.function_call)
        elif "function_call" in given:
            sent.add("function_call")
        if delta.audio is not None:
            if state.audio is None:
                state.audio = _AudioState()
            state.audio.add(delta.audio)
        elif "audio" in given:
            sent.add("audio")
        if delta.annotations is not None:
            # A citation comes whole; those of a later chunk are added to the earlier ones.
            state.annotations = (state.annotations or []) + list(delta.annotations)
        elif "annotations" in given:
            sent.add("annotations")
        if delta.__pydantic_extra__:
            self._merge_extra(state.message_extra, delta.__pydantic_extra__)

    @staticmethod
    def _merge_extra(extra: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is None:
                extra.setdefault(key, None)  # sent as null: kept as null unless a value comes
            elif isinstance(value, str) and isinstance(extra.get(key), str):
                extra[key] += value
            else:
                extra[key] = value

    @staticmethod
    def _merge_last(extra: dict[str, Any], fields: dict[str, Any]) -> None:
        for key, value in fields.items():
            if value is not None or key not in extra:
                extra[key] = value

    @staticmethod
    def _merge_function_call(state: _ChoiceState, delta: FunctionCallDelta) -> None:
        call = state.function_call
        if call is None:
            call = state.function_call = _ToolCallState()
        # Some servers repeat the whole name in every chunk: keep it once.
        if delta.name and delta.name != call.name:
            call.name += delta.name
        if delta.arguments:
            call.arguments.append(delta.arguments)

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
            server_index = index
            index = state.renumbered.get(server_index, server_index)
            known = state.tool_calls.get(index)
            if delta.id and known is not None and known.id and delta.id != known.id:
                # A server that numbers every call 0: a new id at a used index is a new call,
                # and the fragments that follow at that index belong to it.
                new = state.tool_index_by_id.get(delta.id)
                if new is None:
                    new = max(state.tool_calls) + 1
                state.renumbered[server_index] = index = new
        call = state.tool_calls.get(index)
        if call is None:
            call = state.tool_calls[index] = _ToolCallState()
        if delta.id and not call.id:
            call.id = delta.id
            state.tool_index_by_id[delta.id] = index
        if delta.type:
            call.type = delta.type
        body = delta.function if delta.function is not None else delta.custom
        if delta.custom is not None and not delta.type:
            call.type = "custom"
        if body is not None:
            name = body.name
            # Some servers repeat the whole name in every chunk: keep it once.
            if name and name != call.name:
                call.name += name
            piece = body.arguments if isinstance(body, FunctionCallDelta) else body.input
            if piece:
                call.arguments.append(piece)
        if delta.__pydantic_extra__:
            ChatCompletionAccumulator._merge_last(call.extra, delta.__pydantic_extra__)

    def snapshot(self) -> ChatCompletion:
        """The ChatCompletion so far (complete once the stream has ended)."""
        choices = [self._choice(index, self._choices[index]) for index in sorted(self._choices)]
        sent = self._sent
        completion: dict[str, Any] = {
            key: value
            for key, value in (
                ("id", self._id),
                ("object", "chat.completion"),
                ("created", self._created),
                ("model", self._model),
                ("system_fingerprint", self._system_fingerprint),
                ("service_tier", self._service_tier),
                ("usage", self._usage),
                ("moderation", self._moderation),
            )
            if key in sent or (value and key != "object")
        }
        completion.update(self._extra)
        return ChatCompletion(choices=choices, **completion)

    @staticmethod
    def _choice(index: int, state: _ChoiceState) -> Choice:
        sent = state.sent
        message: dict[str, Any] = {"role": state.role}
        if state.content:
            message["content"] = "".join(state.content)
        elif "content" in sent:
            message["content"] = None
        if state.refusal:
            message["refusal"] = "".join(state.refusal)
        elif "refusal" in sent:
            message["refusal"] = None
        if state.tool_calls:
            message["tool_calls"] = [call.to_dict() for _, call in sorted(state.tool_calls.items())]
        elif "tool_calls" in sent:
            message["tool_calls"] = None
        if state.function_call is not None:
            call = state.function_call
            message["function_call"] = {"name": call.name, "arguments": "".join(call.arguments)}
        elif "function_call" in sent:
            message["function_call"] = None
        if state.audio is not None:
            message["audio"] = state.audio.to_dict()
        elif "audio" in sent:
            message["audio"] = None
        if state.annotations is not None:
            message["annotations"] = [note.to_dict() for note in state.annotations]
        elif "annotations" in sent:
            message["annotations"] = None
        message.update(state.message_extra)
        choice: dict[str, Any] = {"message": ChatCompletionMessage.model_validate(message)}
        if "index" in sent:
            choice["index"] = index
        if state.logprobs_sent:
            parts: dict[str, Any] = {}
            if "content" in state.logprobs_sent:
                parts["content"] = list(state.logprobs) if state.logprobs else None
            if "refusal" in state.logprobs_sent:
                parts["refusal"] = list(state.refusal_logprobs) if state.refusal_logprobs else None
            choice["logprobs"] = ChoiceLogprobs(**parts)
        elif "logprobs" in sent:
            choice["logprobs"] = None
        if state.finish_reason is not None or "finish_reason" in sent:
            choice["finish_reason"] = state.finish_reason
        choice.update(state.extra)
        return Choice(**choice)
