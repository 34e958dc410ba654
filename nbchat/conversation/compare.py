"""The engine of ``nbchat.compare``: the same prompt to several models (or settings) at once,
each a fresh ``Chat`` on its own thread, every request checked before any is sent. It shows
nothing: the columns stream into the view it is given (``notebook/sidebyside.py``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.exceptions import NbchatError, RequestValidationError, first_line
from ..protocol.listener import ChatListener
from .chat import Chat, Reply
from .prompt import Prompt

if TYPE_CHECKING:
    from ..transport.client import AsyncClient, Client

__all__ = ["Columns", "column_labels", "compare", "compare_entries"]

# Seconds between two looks at the columns while they stream.
_TICK = 0.05


def compare_entries(models: Any) -> list[dict[str, Any]]:
    """The settings of each entry: a model name, or a dict of settings (with ``model``)."""
    if isinstance(models, (str, Mapping)) or not isinstance(models, Sequence):
        raise RequestValidationError(
            "models must be a list of model names or of dicts of settings", field="models"
        )
    if not models:
        raise RequestValidationError("models is empty: name at least one", field="models")
    entries: list[dict[str, Any]] = []
    for entry in models:
        if isinstance(entry, str) and entry.strip():
            entries.append({"model": entry.strip()})
        elif isinstance(entry, Mapping):
            entries.append(dict(entry))
        else:
            raise RequestValidationError(
                f"models: {entry!r} is neither a model name nor a dict of settings",
                field="models",
            )
    return entries


def column_labels(entries: Sequence[Mapping[str, Any]], models: Sequence[str]) -> list[str]:
    """One label per column: the model each request names, and the settings that differ."""
    labels = []
    for settings, model in zip(entries, models, strict=True):
        rest = ", ".join(f"{k}={v!r}" for k, v in settings.items() if k != "model")
        labels.append(f"{model} · {rest}" if rest else model)
    plain = list(labels)
    for i, label in enumerate(plain):
        if plain.count(label) > 1:
            labels[i] = f"{label} #{plain[: i + 1].count(label)}"
    return labels


def compare(
    prompt: Any,
    models: Sequence[Any],
    *,
    system: str | None = None,
    client: Client | AsyncClient | None = None,
    show: Callable[[list[str]], Columns] | None = None,
    **options: Any,
) -> list[Reply | Exception]:
    """Send ``prompt`` to every entry of ``models`` at once; ``show(labels)`` makes the view
    the columns stream into (``nbchat.compare`` shows them side by side). ``options`` are a
    Prompt's (``stream``, ``schema``…) and request fields, for every column; each entry's
    settings go on top. The public ``nbchat.compare`` (notebook/compareview.py) says the rest;
    unstreamed requests still running at Ctrl-C are left to finish unseen.
    """
    entries = compare_entries(models)
    base = Prompt.of(prompt, **{k: v for k, v in options.items() if v is not None})
    if base.stream is None:
        base = base.with_(stream=True)
    if client is None:
        from .endpoint import default_client

        client = default_client()
    if not hasattr(client, "send_stream") or _is_async(client):
        raise RequestValidationError(
            "compare sends on a Client (its columns stream on threads); pass nbchat.Client(...)",
            field="client",
        )
    plans = []
    used = []
    for given in entries:
        column = base.with_(**given)
        chat = Chat(system=system, client=client)
        # Every entry's request is checked (and its model found) before any is sent.
        try:
            prepared = chat.prepare(column)
        except RequestValidationError:
            raise
        except (TypeError, ValueError) as exc:
            raise RequestValidationError(f"schema: {first_line(exc)}", field="schema") from None
        plans.append((chat, column))
        used.append(str(prepared.body.get("model")))
    labels = column_labels(entries, used)
    view = show(labels) if show is not None else _Unseen()
    results: list[Reply | Exception | None] = [None] * len(plans)
    done = [threading.Event() for _ in plans]

    def run(position: int) -> None:
        chat, column = plans[position]
        try:
            reply = chat.send(column, listener=view.listener(position))
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "reply", None)
            results[position] = partial
            view.finish(position, reply=partial)
        except Exception as exc:
            results[position] = exc
            view.finish(
                position, reply=exc.reply if isinstance(exc, NbchatError) else None, error=exc
            )
        else:
            results[position] = reply
            view.finish(position, reply=reply)
        finally:
            done[position].set()

    threads = [
        threading.Thread(target=run, args=(i,), name=f"nbchat-compare-{i}", daemon=True)
        for i in range(len(plans))
    ]
    for thread in threads:
        thread.start()
    try:
        while not all(event.is_set() for event in done):
            view.refresh()
            done[next(i for i, e in enumerate(done) if not e.is_set())].wait(_TICK)
    except KeyboardInterrupt:
        view.stopping.set()
        # Streams end at their next chunk; a second Ctrl-C stops waiting for them.
        with contextlib.suppress(KeyboardInterrupt):
            for event in done:
                event.wait(1.0)
    finally:
        view.close()
    return [
        result
        if result is not None
        else NbchatError("not finished: interrupted before its reply arrived")
        for result in results
    ]


class Columns(Protocol):
    """What the columns of a comparison stream into: a listener each, told when each ends."""

    stopping: threading.Event

    def listener(self, position: int) -> ChatListener: ...

    def finish(self, position: int, *, reply: Any = None, error: Any = None) -> None: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


class _Unseen:
    """Columns nobody watches."""

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def listener(self, position: int) -> ChatListener:
        return ChatListener()

    def finish(self, position: int, *, reply: Any = None, error: Any = None) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _is_async(client: Client | AsyncClient) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(client, "send_completion", None))
