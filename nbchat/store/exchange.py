"""Where every request meets the store: answered from a cassette or the cache, or sent; logged.

``Chat`` calls ``answer()`` once per request it sends. A cassette (NBCHAT_REPLAY) comes first,
then the response cache, then the budget and the server. Nothing here may break a reply.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..protocol.exceptions import APIStatusError, IncompleteStreamError
from ..protocol.listener import ChatListener
from ..protocol.types import ChatCompletion, ChatCompletionChunk
from ..transport.prepared import PreparedRequest
from . import budget, config, prices
from .cache import has_output, play
from .db import Store, StoreWarning, open_store
from .record import Exchange, clean_url, scrub
from .replay import Cassette, Interaction, cassette, miss_error

__all__ = ["Origin", "answer", "current_store", "notebook_path"]


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


def answer(
    prepared: PreparedRequest,
    *,
    client: Any,
    session: str | None,
    cache: bool | None,
    listener: ChatListener,
    reply: Any,
    send: Callable[[ChatListener], ChatCompletion],
) -> ChatCompletion:
    """The completion for ``prepared``: replayed, cached, or ``send(listener)``; logged.

    ``cache`` None follows ``%config Chat.cache``. ``reply`` gets ``cached``, ``cost`` and
    ``origin`` (summed over the rounds of a tool loop).
    """
    profile = client.profile
    mode, tape_path = config.replay()
    tape = cassette(tape_path) if tape_path is not None else None
    store = current_store()
    row = _exchange_for(prepared, client, session)

    if tape is not None and mode in ("replay", "auto"):
        recorded = tape.take(prepared.key)
        if recorded is not None:
            return _from_tape(recorded, tape, prepared, listener, reply, store, row)
        if mode == "replay":
            raise miss_error(tape, prepared.key, prepared.body)

    use_cache = config.cache_default() if cache is None else cache
    if use_cache:
        if store is None:
            if config.store_path() is None:
                _warn_once("cache", "The response cache needs the store, which is off; sending.")
        else:
            found = _quietly(store.find, prepared.key)
            if found is not None:
                return _from_cache(found, store, prepared, listener, reply, row, tape, mode)

    budget.check_budget(prepared, profile)
    watch = _Watch(listener)
    started = time.perf_counter()
    try:
        completion = send(watch)
    except BaseException as exc:
        row.latency = time.perf_counter() - started
        _failed(row, exc, watch, client)
        _keep(store, row)
        if tape is not None and mode in ("record", "auto") and isinstance(exc, APIStatusError):
            error = {"status": exc.status_code, "body": scrub(exc.body, _secrets(client))}
            _record(tape, _interaction(row, error=error))
        raise
    row.latency = time.perf_counter() - started
    sent = getattr(reply, "prepared", None)
    if sent is not None and sent is not prepared:
        # Sent again fitted to the server (a refused stream_options): keep what went out.
        row.request = scrub(sent.body, _secrets(client))
    if watch.first is not None:
        row.time_to_first_token = watch.first - started
    row.take_usage(completion, counted=watch.chunks)
    row.response = scrub(row.response, _secrets(client))
    row.cost = prices.cost(completion, profile, prepared.url, row.time)
    _keep(store, row)
    budget.record_spending(row.cost)
    if tape is not None and mode in ("record", "auto"):
        _record(tape, _interaction(row))
    _mark(reply, cached=False, cost=row.cost)
    if row.cost is None and reply is not None:
        note = budget.unpriced_note(completion, profile, prepared.url)
        if note is not None:
            reply.notes.append(note)
    return completion


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
    """The notebook the kernel runs, where the frontend says (Jupyter, VS Code), else None."""
    path = os.environ.get("JPY_SESSION_NAME")
    if path:
        return path
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    namespace = getattr(shell, "user_ns", None) or {}
    for name in ("__vsc_ipynb_file__", "__session__"):
        value = namespace.get(name)
        if isinstance(value, str) and value:
            return value
    return None


# -- answering without sending --------------------------------------------------------------------


def _from_tape(
    recorded: Interaction,
    tape: Cassette,
    prepared: PreparedRequest,
    listener: ChatListener,
    reply: Any,
    store: Store | None,
    row: Exchange,
) -> ChatCompletion:
    row.source = "replay"
    if recorded.error is not None:
        row.status, row.error = "error", recorded.error.get("body")
        _keep(store, row)
        raise _recorded_error(recorded, prepared)
    completion = recorded.completion()
    assert completion is not None
    play(completion, stream=prepared.stream, listener=listener)
    row.take_usage(completion)
    row.cost = None if recorded.cost is None else 0.0
    _keep(store, row)
    origin = Origin("replay", recorded.recorded, recorded.cost, str(tape.path))
    _mark(reply, cached=True, cost=row.cost, origin=origin)
    return completion


def _from_cache(
    found: Exchange,
    store: Store,
    prepared: PreparedRequest,
    listener: ChatListener,
    reply: Any,
    row: Exchange,
    tape: Cassette | None,
    mode: str | None,
) -> ChatCompletion:
    completion = found.completion()
    assert completion is not None
    play(completion, stream=prepared.stream, listener=listener)
    row.source = "cache"
    row.take_usage(completion)
    row.cost = None if found.cost is None else 0.0
    _keep(store, row)
    if tape is not None and mode in ("record", "auto"):
        # A cassette holds what the notebook needs, wherever the answer came from.
        original = _interaction(found)
        original.request = row.request
        _record(tape, original)
    _mark(
        reply,
        cached=True,
        cost=row.cost,
        origin=Origin("cache", found.time, found.cost, str(store.path)),
    )
    return completion


def _recorded_error(recorded: Interaction, prepared: PreparedRequest) -> APIStatusError:
    import httpx

    from ..protocol.exceptions import status_error_from_response

    error = recorded.error or {}
    response = httpx.Response(
        int(error.get("status", 500)),
        json=error.get("body"),
        request=httpx.Request(prepared.method, prepared.url),
    )
    return status_error_from_response(response)


# -- what is kept ---------------------------------------------------------------------------------


class _Watch(ChatListener):
    """Passes every hook on, noting the stream and when its first output came."""

    def __init__(self, inner: ChatListener) -> None:
        self.inner = inner
        self.stream: Any = None
        self.first: float | None = None
        #: Pieces of output streamed: the tokens counted when the server sends no usage.
        self.chunks = 0

    def on_request(self, body: dict[str, Any]) -> None:
        self.inner.on_request(body)

    def on_chunk(self, chunk: ChatCompletionChunk, stream: Any) -> None:
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


def _exchange_for(prepared: PreparedRequest, client: Any, session: str | None) -> Exchange:
    body = prepared.body
    return Exchange(
        request=scrub(body, _secrets(client)),
        key=prepared.key,
        session=session,
        notebook=_quietly(notebook_path),
        model_requested=body.get("model"),
        server=getattr(client.profile, "kind", None),
        url=clean_url(prepared.url),
        stream=prepared.stream,
    )


def _failed(row: Exchange, exc: BaseException, watch: _Watch, client: Any) -> None:
    partial = None
    if isinstance(exc, IncompleteStreamError):
        partial = exc.completion
    elif isinstance(exc, KeyboardInterrupt) and watch.stream is not None:
        partial = getattr(watch.stream, "completion", None)
    if partial is not None and partial.choices:
        row.status = "interrupted"
        row.take_usage(partial, counted=watch.chunks)
        row.response = scrub(row.response, _secrets(client))
    else:
        row.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, APIStatusError):
        error.update(
            status=exc.status_code,
            code=exc.code,
            param=exc.param,
            request_id=exc.request_id,
            body=exc.body,
        )
    row.error = scrub(error, _secrets(client))


def _interaction(row: Exchange, error: dict[str, Any] | None = None) -> Interaction:
    return Interaction(
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


def _mark(reply: Any, *, cached: bool, cost: float | None, origin: Origin | None = None) -> None:
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


def _keep(store: Store | None, row: Exchange) -> None:
    if store is not None:
        _quietly(store.add, row)


def _record(tape: Cassette, interaction: Interaction) -> None:
    try:
        tape.add(interaction)
    except Exception as exc:
        _warn_once("cassette", f"Could not write the cassette {tape.path}: {exc}")


def _secrets(client: Any) -> tuple[str, ...]:
    key = getattr(client, "api_key", None)
    return (key,) if key else ()


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
