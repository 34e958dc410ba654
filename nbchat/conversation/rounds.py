"""One request of a send on its way: through the store's door, then on the wire.

``Ask`` is the flow operation for one request: the door answers it from a cassette or the
cache, or checks the budget and lets ``wire()`` send it — again without what the server refused
(learned for the endpoint), streamed chunk by chunk into the listener, a dropped stream
explained. ``Turn`` is what the rounds of one send share.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol.exceptions import BadRequestError, IncompleteStreamError
from ..protocol.listener import ChatListener
from ..protocol.types import ChatCompletion
from ..transport.prepared import PreparedRequest
from ..transport.seams import AsyncSender, SyncSender
from .flow import Complete, Drain, Explain, Op, Open, adrive, drive
from .reply import Reply

if TYPE_CHECKING:
    from ..store.exchange import Watch

__all__ = ["Ask", "Turn", "wire"]


@dataclass
class Turn:
    """One send: the client it sends on, its reply so far, and how its requests are built."""

    #: The client requests go through (an AsyncClient for ``asend``).
    client: SyncSender | AsyncSender
    listener: ChatListener
    reply: Reply
    #: Builds the round's request again from the conversation (after a server refused a field).
    prepare: Callable[[], PreparedRequest]
    #: The door's keywords: session, cache, log.
    door: dict[str, Any]
    #: A blocking client of the same endpoint, for a server's own explanation of a dropped
    #: stream (None: none is asked for).
    sync_client: SyncSender | None = None
    started: float = field(default_factory=time.perf_counter)
    #: The stream being read, whose snapshot is the partial reply if the send is interrupted.
    inflight: Any = None
    #: Fallback notes applied during this send (each is tried once).
    tried: set[str] = field(default_factory=set)

    def counted(self, watch: Watch) -> None:
        """The reply's pieces of output and its first token, from what the door's watch saw
        of a stream (the watch is the request's own)."""
        reply = self.reply
        reply.output_chunks += watch.chunks
        if reply.time_to_first_token is None and watch.first is not None:
            reply.time_to_first_token = watch.first - self.started

    def refit(self, refused: BadRequestError, body: dict[str, Any]) -> PreparedRequest:
        """The request again without what the server refused (learned for the endpoint), or
        ``refused`` raised when nothing can stand in for it."""
        note = self.client.profile.fallback(refused, body)
        if note is None or note in self.tried:
            raise refused
        self.tried.add(note)
        self.reply.notes.append(note)
        prepared = self.prepare()
        self.reply.prepared = prepared
        self.reply.request = prepared.body
        return prepared


class Ask:
    """The flow operation for one request: through the door (cassette, cache, budget, log)."""

    __slots__ = ("prepared", "turn")

    def __init__(self, turn: Turn, prepared: PreparedRequest) -> None:
        self.turn = turn
        self.prepared = prepared

    def run(self) -> ChatCompletion:
        from ..store.exchange import answer

        return answer(self.prepared, send=lambda watch: drive(self._wire(watch)), **self._door())

    def arun(self) -> Awaitable[ChatCompletion]:
        from ..store.exchange import aanswer

        return aanswer(self.prepared, send=lambda watch: adrive(self._wire(watch)), **self._door())

    def _wire(self, watch: Watch) -> Generator[Op, Any, ChatCompletion]:
        return wire(self.turn, self.prepared, watch)

    def _door(self) -> dict[str, Any]:
        turn = self.turn
        return {"listener": turn.listener, "client": turn.client, "reply": turn.reply, **turn.door}


def wire(turn: Turn, prepared: PreparedRequest, watch: Watch) -> Generator[Op, Any, ChatCompletion]:
    """Send ``prepared`` and return its completion, streamed into ``watch`` chunk by chunk."""
    client = turn.client
    while True:
        try:
            if not prepared.stream:
                completion: ChatCompletion = yield Complete(client, prepared)
                watch.on_completion(completion)
                return completion
            stream = yield Open(client, prepared)
            break
        except BadRequestError as exc:
            # A server that lacks a feature the request uses: sent again without it.
            prepared = turn.refit(exc, prepared.body)
    turn.inflight = stream
    try:
        yield Drain(stream, watch.on_chunk)
    except IncompleteStreamError as exc:
        explain = client.profile.explain_broken_stream
        if explain is None or turn.sync_client is None or stream.completion.choices:
            raise
        # Some servers drop a stream they cannot serve without saying why; ask again.
        real = yield Explain(explain, turn.sync_client, prepared.body)
        if real is None:
            raise
        turn.inflight = None
        raise real from exc
    finally:
        turn.counted(watch)  # what arrived counts, an interrupted stream's too
    turn.inflight = None
    completion = stream.completion
    if completion.usage is not None and "stream_options" in prepared.body:
        client.profile.learn("stream_usage", True)
    watch.on_completion(completion)
    return completion
