"""The one door every request passes: answered from a cassette or the cache, or sent; logged.

Every feature that talks to the server (cells, ``Chat.send``/``asend``, the panel, map rows,
compare columns, the tool loop's rounds) goes through ``answer()`` or ``aanswer()``. A cassette
(NBCHAT_REPLAY) comes first, then the response cache, then the budget — which reserves the
request's estimate until it is settled, so requests sent at once cannot pass it together — and
the server; the exchange is then queued for the store (written in the background). ``Door``
holds the decisions and the record, and does no network I/O; the two wrappers only send.
Nothing here may break a reply.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..protocol.exceptions import APIStatusError, IncompleteStreamError
from ..protocol.listener import ChatListener
from ..protocol.types import ChatCompletion, ChatCompletionChunk
from ..transport.prepared import PreparedRequest
from ..transport.seams import Endpoint, StreamSnapshot
from . import budget, config, prices
from .cache import has_output, play
from .db import Store, StoreWarning, open_store
from .record import Exchange, clean_url, scrub
from .replay import Cassette, Interaction, cassette, miss_error

__all__ = ["Door", "Origin", "Watch", "aanswer", "answer", "current_store", "notebook_path"]


@dataclass(frozen=True)
class Origin:
    """Where a reply that was not sent came from: ``reply.origin``."""

    #: "cache" (the store) or "replay" (a cassette).
    source: str
    #: When the original reply was received.
    time: datetime
    #: What the original cost in US dollars (None: unknown).
    cost: float | None
    #: The store's or the cassette's path.
    where: str


_NO_STORE_FOR_CACHE = "The response cache needs the store, which is off; sending."


class Marked(Protocol):
    """What the door tells of a request it answered (a ``Reply``, a map row's mark): whether
    the store or a cassette answered, the cost, and where a kept answer came from."""

    completions: Sequence[Any]
    cached: bool
    cost: float | None
    origin: Any


class Door:
    """One request's way through the store: decide (cassette, cache, budget), then record.

    ``open()`` answers from a cassette or the cache (playing the reply to the listener), raises
    for a cassette miss or a budget that the request could pass, or returns None: then send
    inside ``sending()`` and hand the completion to ``sent()``. ``cache`` None follows
    ``%config Chat.cache``; ``log=False`` keeps the exchange out of the store. ``reply`` (a
    ``Reply``, or None) gets ``cached``, ``cost`` and ``origin``, summed over a tool loop's rounds.
    """

    __slots__ = (
        "_secrets",
        "cache",
        "client",
        "mode",
        "prepared",
        "reply",
        "reservation",
        "row",
        "started",
        "store",
        "tape",
        "watch",
    )

    def __init__(
        self,
        prepared: PreparedRequest,
        *,
        client: Endpoint,
        session: str | None,
        cache: bool | None = None,
        reply: Marked | None = None,
        log: bool = True,
    ) -> None:
        self.prepared = prepared
        self.client = client
        self.cache = cache
        self.reply = reply
        self._secrets = _secrets(client)
        self.mode, tape_path = config.replay()
        self.tape = cassette(tape_path) if tape_path is not None else None
        self.store = current_store()
        self.row = _exchange_for(prepared, client, session, self._secrets)
        if not log:
            self.row.key = ""  # answered from the cache still, but never kept
        self.reservation: budget.Reservation | None = None
        self.watch: Watch | None = None
        self.started = 0.0

    def open(self, listener: ChatListener) -> ChatCompletion | None:
        """The completion from a cassette or the cache, or None once the budget allows sending."""
        prepared, tape, mode = self.prepared, self.tape, self.mode
        if tape is not None and mode in ("replay", "auto"):
            recorded = tape.take(prepared.key)
            if recorded is not None:
                return self._from_tape(recorded, listener)
            if mode == "replay":
                raise miss_error(tape, prepared.key, prepared.body)
        use_cache = config.cache_default() if self.cache is None else self.cache
        if use_cache:
            store = self.store
            if store is None:
                if config.store_path() is None:
                    _warn_once("cache", _NO_STORE_FOR_CACHE)
            else:
                found = _quietly(store.find, prepared.key)
                if found is not None:
                    return self._from_cache(found, listener)
        self.reservation = budget.reserve(prepared, self.client.profile)
        return None

    @contextmanager
    def sending(self, listener: ChatListener) -> Iterator[Watch]:
        """Around the send: a failure is recorded (and the budget's reservation let go)."""
        self.watch = watch = Watch(listener)
        self.started = time.perf_counter()
        try:
            yield watch
        except BaseException as exc:
            self._failed(exc)
            raise

    def sent(self, completion: ChatCompletion) -> ChatCompletion:
        """Record what the server answered; return it."""
        row, reply = self.row, self.reply
        row.latency = time.perf_counter() - self.started
        sent = getattr(reply, "prepared", None)
        if sent is not None and sent is not self.prepared:
            # Sent again fitted to the server (a refused stream_options): keep what went out.
            row.request = scrub(sent.body, self._secrets)
        watch = self.watch
        if watch is not None and watch.first is not None:
            row.time_to_first_token = watch.first - self.started
        row.take_usage(completion, counted=watch.chunks if watch is not None else 0)
        row.response = scrub(row.response, self._secrets)
        row.cost = prices.cost(completion, self.client.profile, self.prepared.url, row.time)
        self._keep()
        self._settle(row.cost)
        if self.tape is not None and self.mode in ("record", "auto"):
            _record(self.tape, _interaction(row, self.prepared.endpoint), self._secrets)
        _mark(reply, cached=False, cost=row.cost)
        if row.cost is None and reply is not None and hasattr(reply, "notes"):
            note = budget.unpriced_note(completion, self.client.profile, self.prepared.url)
            if note is not None:
                reply.notes.append(note)
        return completion

    # -- what the door does itself ------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        row = self.row
        row.latency = time.perf_counter() - self.started
        _failed(row, exc, self.watch, self._secrets)
        self._keep()
        self._settle(None)
        tape = self.tape
        if tape is not None and self.mode in ("record", "auto") and isinstance(exc, APIStatusError):
            error = {"status": exc.status_code, "body": scrub(exc.body, self._secrets)}
            _record(tape, _interaction(row, self.prepared.endpoint, error=error), self._secrets)

    def _settle(self, cost: float | None) -> None:
        reservation, self.reservation = self.reservation, None
        if reservation is not None:
            reservation.settle(cost)
        else:
            budget.record_spending(cost)

    def _keep(self) -> None:
        if self.store is not None and self.row.key:
            _quietly(self.store.add, self.row)

    def _from_tape(self, recorded: Interaction, listener: ChatListener) -> ChatCompletion:
        row, tape = self.row, self.tape
        assert tape is not None
        row.source = "replay"
        if recorded.error is not None:
            row.status, row.error = "error", recorded.error.get("body")
            self._keep()
            raise _recorded_error(recorded, self.prepared)
        completion = recorded.completion()
        assert completion is not None
        play(completion, stream=self.prepared.stream, listener=listener)
        row.take_usage(completion)
        row.cost = None if recorded.cost is None else 0.0
        self._keep()
        origin = Origin("replay", recorded.recorded, recorded.cost, str(tape.path))
        _mark(self.reply, cached=True, cost=row.cost, origin=origin)
        return completion

    def _from_cache(self, found: Exchange, listener: ChatListener) -> ChatCompletion:
        row, store = self.row, self.store
        assert store is not None
        completion = found.completion()
        assert completion is not None
        play(completion, stream=self.prepared.stream, listener=listener)
        row.source = "cache"
        row.take_usage(completion)
        row.cost = None if found.cost is None else 0.0
        self._keep()
        if self.tape is not None and self.mode in ("record", "auto"):
            # A cassette holds what the notebook needs, wherever the answer came from.
            original = _interaction(found, self.prepared.endpoint)
            original.request = row.request
            _record(self.tape, original, self._secrets)
        origin = Origin("cache", found.time, found.cost, str(store.path))
        _mark(self.reply, cached=True, cost=row.cost, origin=origin)
        return completion


def answer(
    prepared: PreparedRequest,
    *,
    send: Callable[[Watch], ChatCompletion],
    listener: ChatListener | None = None,
    **door: Any,
) -> ChatCompletion:
    """The completion for ``prepared``: replayed, cached, or ``send(listener)``; logged.

    ``door`` are ``Door``'s keywords: ``client``, ``session``, ``cache``, ``reply``, ``log``.
    """
    way = Door(prepared, **door)
    listener = listener or ChatListener()
    if (known := way.open(listener)) is not None:
        return known
    with way.sending(listener) as watch:
        return way.sent(send(watch))


async def aanswer(
    prepared: PreparedRequest,
    *,
    send: Callable[[Watch], Awaitable[ChatCompletion]],
    listener: ChatListener | None = None,
    **door: Any,
) -> ChatCompletion:
    """``answer`` for async code: ``await send(listener)`` sends."""
    way = Door(prepared, **door)
    listener = listener or ChatListener()
    if (known := way.open(listener)) is not None:
        return known
    with way.sending(listener) as watch:
        return way.sent(await send(watch))


def current_store() -> Store | None:
    """The store requests are logged to now, or None (off, or unusable)."""
    try:
        path = config.store_path()
        if path is None:
            return None
        store = open_store(path)
        store.check()
    except Exception as exc:
        _warn_once("store", f"nbchat store unavailable ({exc}); exchanges are not kept.")
        return None
    return None if store.broken else store


def notebook_path() -> str | None:
    """The notebook the kernel runs, where the frontend says: Jupyter's JPY_SESSION_NAME, or
    what the notebook layer found in the kernel's namespace (VS Code), else None."""
    return os.environ.get("JPY_SESSION_NAME") or config.settings.notebook or None


def _recorded_error(recorded: Interaction, prepared: PreparedRequest) -> APIStatusError:
    import httpx

    from ..protocol.exceptions import status_error_from_response

    error = recorded.error or {}
    response = httpx.Response(
        recorded.error_status(),
        json=error.get("body"),
        request=httpx.Request(prepared.method, prepared.url),
    )
    return status_error_from_response(response)


# -- what is kept ---------------------------------------------------------------------------------


class Watch(ChatListener):
    """Passes every hook on, noting the stream, its pieces of output and when the first came
    (what ``send`` is handed: the sender reads them too, not again chunk by chunk)."""

    def __init__(self, inner: ChatListener) -> None:
        self.inner = inner
        self.stream: StreamSnapshot | None = None
        self.first: float | None = None
        #: Pieces of output streamed: the tokens counted when the server sends no usage.
        self.chunks = 0

    def on_request(self, body: dict[str, Any]) -> None:
        self.inner.on_request(body)

    def on_chunk(self, chunk: ChatCompletionChunk, stream: StreamSnapshot) -> None:
        self.stream = stream
        if has_output(chunk):
            self.chunks += 1
            if self.first is None:
                self.first = time.perf_counter()
        self.inner.on_chunk(chunk, stream)

    def on_completion(self, completion: ChatCompletion) -> None:
        self.inner.on_completion(completion)

    def on_tool_results(self, results: list[Any]) -> None:
        self.inner.on_tool_results(results)


def _exchange_for(
    prepared: PreparedRequest, client: Endpoint, session: str | None, secrets: tuple[str, ...]
) -> Exchange:
    body = prepared.body
    return Exchange(
        request=scrub(body, secrets),
        key=prepared.key,
        session=session,
        notebook=_quietly(notebook_path),
        model_requested=body.get("model"),
        server=getattr(client.profile, "kind", None),
        url=clean_url(prepared.url),
        stream=prepared.stream,
    )


def _failed(
    row: Exchange, exc: BaseException, watch: Watch | None, secrets: tuple[str, ...]
) -> None:
    partial = None
    if isinstance(exc, IncompleteStreamError):
        partial = exc.completion
    elif _interruption(exc) and watch is not None and watch.stream is not None:
        partial = getattr(watch.stream, "completion", None)
    if partial is not None and partial.choices:
        row.status = "interrupted"
        row.take_usage(partial, counted=watch.chunks if watch is not None else 0)
        row.response = scrub(row.response, secrets)
    else:
        row.status = "interrupted" if _interruption(exc) else "error"
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, APIStatusError):
        error.update(
            status=exc.status_code,
            code=exc.code,
            param=exc.param,
            request_id=exc.request_id,
            body=exc.body,
        )
    row.error = scrub(error, secrets)


def _interruption(exc: BaseException) -> bool:
    """Ctrl-C, or the task awaiting the request cancelled (an async cell interrupted)."""
    import asyncio

    return isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)


def _interaction(row: Exchange, endpoint: str, error: dict[str, Any] | None = None) -> Interaction:
    return Interaction(
        endpoint=endpoint or None,
        key=row.key,
        request=row.request,
        response=None if error is not None else row.response,
        error=error,
        recorded=row.time,
        server=row.server,
        url=row.url,
        model=row.model or row.model_requested,
        latency=row.latency,
        cost=row.cost,
    )


def _mark(
    reply: Marked | None, *, cached: bool, cost: float | None, origin: Origin | None = None
) -> None:
    """Fold one round into the reply: cached only if every round was, cost summed."""
    if reply is None:
        return
    if not getattr(reply, "completions", None):
        reply.cached, reply.cost = cached, cost
    else:
        reply.cached = reply.cached and cached
        reply.cost = None if reply.cost is None or cost is None else reply.cost + cost
    if origin is not None:
        reply.origin = origin


def _record(tape: Cassette, interaction: Interaction, secrets: tuple[str, ...]) -> None:
    try:
        tape.add(interaction, secrets=secrets)
    except Exception as exc:
        _warn_once("cassette", f"Could not write the cassette {tape.path}: {exc}")


def _secrets(client: Endpoint) -> tuple[str, ...]:
    """Every credential the client holds, in every form a server could echo it
    (``Client.secrets``): masked in what the store and a cassette keep."""
    return tuple(getattr(client, "secrets", ()))


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(kind: str, message: str) -> None:
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    warnings.warn(message, StoreWarning, stacklevel=3)


def _quietly(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``, or None and one warning: the store never breaks a reply."""
    try:
        return function(*args)
    except Exception as exc:
        _warn_once(f"failed:{type(exc).__name__}", f"nbchat store: {type(exc).__name__}: {exc}")
        return None
