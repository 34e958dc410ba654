"""Showing a stored reply like a live one: a completion turned back into the chunks of a stream.

A cached or replayed reply to a streamed request goes through the listener chunk by chunk, a
little faster than a server would send it, so the live view, the panel and the footer all work.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

from ..protocol.listener import ChatListener
from ..protocol.types import ChatCompletion, ChatCompletionChunk, OtherToolCall, ResponseAudio
from ..transport.accumulate import ChatCompletionAccumulator

__all__ = ["MAX_REPLAY_SECONDS", "PACE", "ReplayedStream", "chunks_of", "has_output", "play"]

#: Seconds between replayed chunks, and the most a whole replay may take.
PACE = 0.004
MAX_REPLAY_SECONDS = 0.4
# A few words a chunk, as servers send them.
_PIECE = re.compile(r"\S*\s*")
_PIECE_CHARS = 12
_MOST_PIECES = 200


class ReplayedStream:
    """What a listener's ``on_chunk`` gets as ``stream``: the snapshot so far in ``completion``."""

    def __init__(self) -> None:
        self._accumulator = ChatCompletionAccumulator()
        self._snapshot: ChatCompletion | None = None
        self._seen = -1

    def handle(self, chunk: ChatCompletionChunk) -> None:
        self._accumulator.handle_chunk(chunk)

    @property
    def completion(self) -> ChatCompletion:
        if self._seen != self._accumulator.chunks:
            self._snapshot = self._accumulator.snapshot()
            self._seen = self._accumulator.chunks
        assert self._snapshot is not None
        return self._snapshot


def play(completion: ChatCompletion, *, stream: bool, listener: ChatListener) -> ChatCompletion:
    """Hand a stored ``completion`` to ``listener`` as a stream would (or whole); return it."""
    if stream:
        chunks = list(chunks_of(completion))
        pause = min(PACE, MAX_REPLAY_SECONDS / max(len(chunks), 1))
        replayed = ReplayedStream()
        for chunk in chunks:
            # reply.output_chunks is not counted: these pieces are ours, not the server's
            # tokens, so a footer must not read them as a token count.
            replayed.handle(chunk)
            listener.on_chunk(chunk, replayed)
            if pause > 0:
                time.sleep(pause)
    listener.on_completion(completion)
    return completion


def chunks_of(completion: ChatCompletion) -> Iterator[ChatCompletionChunk]:
    """The chunks a server would stream for ``completion``; accumulated, they give it back."""
    base: dict[str, Any] = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    if completion.system_fingerprint:
        base["system_fingerprint"] = completion.system_fingerprint
    if completion.service_tier:
        base["service_tier"] = completion.service_tier

    def chunk(index: int, delta: dict[str, Any], **choice: Any) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {**base, "choices": [{"index": index, "delta": delta, **choice}]}
        )

    for choice in completion.choices:
        index = choice.index
        message = choice.message
        # Fields a server adds to the message (reasoning_content…) come whole, first.
        yield chunk(index, {"role": message.role, **(message.__pydantic_extra__ or {})})
        logprobs = choice.logprobs
        tokens = (logprobs.content if logprobs is not None else None) or []
        content = message.content or ""
        by_token = bool(tokens) and "".join(t.token for t in tokens) == content
        if by_token:
            # One chunk a token, each with its probabilities, as servers stream them.
            for token in tokens:
                yield chunk(
                    index, {"content": token.token}, logprobs={"content": [token.to_dict()]}
                )
        else:
            for piece in _pieces(content):
                yield chunk(index, {"content": piece})
        for piece in _pieces(message.refusal or ""):
            yield chunk(index, {"refusal": piece})
        audio = message.audio
        if isinstance(audio, ResponseAudio):
            head_audio = audio.to_dict()
            data, transcript = head_audio.pop("data", ""), head_audio.pop("transcript", "")
            yield chunk(index, {"audio": head_audio})
            for piece in _pieces(data, words=False):
                yield chunk(index, {"audio": {"data": piece}})
            for piece in _pieces(transcript):
                yield chunk(index, {"audio": {"transcript": piece}})
        for i, call in enumerate(message.tool_calls or ()):
            if isinstance(call, OtherToolCall):
                # A kind of call nbchat does not know: whole, as it came.
                yield chunk(index, {"tool_calls": [{"index": i, **call.to_dict()}]})
                continue
            body, text = (
                ("function", "arguments") if call.type == "function" else ("custom", "input")
            )
            head = {
                "index": i,
                "id": call.id,
                "type": call.type,
                body: {"name": call.name, text: ""},
            }
            yield chunk(index, {"tool_calls": [head]})
            for piece in _pieces(call.payload, words=False):
                yield chunk(index, {"tool_calls": [{"index": i, body: {text: piece}}]})
        function_call = message.function_call
        if function_call is not None:
            yield chunk(index, {"function_call": {"name": function_call.name, "arguments": ""}})
            for piece in _pieces(function_call.arguments, words=False):
                yield chunk(index, {"function_call": {"arguments": piece}})
        if message.annotations is not None:
            notes = [note.to_dict() for note in message.annotations]
            yield chunk(index, {"annotations": notes})
        last: dict[str, Any] = {"finish_reason": choice.finish_reason}
        if logprobs is not None:
            # Probabilities not sent with the text above (a refusal's, or tokens that do not
            # spell the content) arrive whole with the last chunk.
            rest: dict[str, Any] = {}
            if not by_token and tokens:
                rest["content"] = [t.to_dict() for t in tokens]
            if logprobs.refusal:
                rest["refusal"] = [t.to_dict() for t in logprobs.refusal]
            last["logprobs"] = rest
        yield chunk(index, {}, **last)
    tail = {
        key: value.to_dict() if hasattr(value, "to_dict") else value
        for key, value in (("usage", completion.usage), ("moderation", completion.moderation))
        if value is not None
    }
    if tail:
        yield ChatCompletionChunk.model_validate({**base, "choices": [], **tail})


def _pieces(text: str, *, words: bool = True) -> Iterator[str]:
    if not text:
        return
    # A few words a chunk, but at most about _MOST_PIECES chunks however long the text.
    size = max(_PIECE_CHARS, len(text) // _MOST_PIECES)
    if not words:
        for start in range(0, len(text), size):
            yield text[start : start + size]
        return
    piece = ""
    for word in _PIECE.findall(text):
        piece += word
        if len(piece) >= size:
            yield piece
            piece = ""
    if piece:
        yield piece


def has_output(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries text, a refusal or a tool call (not just a role or usage)."""
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta.content or delta.refusal or delta.tool_calls:
            return True
    return False
