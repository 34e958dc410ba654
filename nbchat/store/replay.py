"""Cassettes: a JSON file of requests and the replies they got, for tests and CI to replay.

``NBCHAT_REPLAY=record`` writes every exchange, ``replay`` answers only from the file (a request
it lacks is a ReplayMissError, and nothing is sent), ``auto`` replays what it has and records
the rest. A cassette holds request bodies and responses, never a header or a credential.
A file that is not one, or an entry of the wrong shape (cassettes are edited by hand), is a
CassetteError naming the file and the entry, before anything is sent.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic

from ..protocol.exceptions import NbchatError, ReplayMissError, RequestValidationError
from ..protocol.types import ChatCompletion
from .record import scrub

__all__ = [
    "FORMAT",
    "Cassette",
    "CassetteError",
    "Interaction",
    "Recorded",
    "cassette",
    "deferred",
    "flush_all",
    "miss_error",
    "recorded_endpoint",
]

FORMAT = 1
_DATA_SHOWN = 64
#: Seconds between two writes of a cassette while recordings keep coming.
WRITE_EVERY = 0.5


class CassetteError(RequestValidationError):
    """A cassette nbchat cannot read: not JSON, not a cassette, or an entry with a field of the
    wrong type or missing. Raised before anything is sent; the message is one line.

    ``cassette`` is the file's path (None for an entry read on its own); ``entry`` (its index in
    ``interactions``) and ``key`` name the entry at fault, None when the file as a whole is.
    """

    def __init__(
        self,
        message: str,
        *,
        cassette: str | None,
        entry: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, field="NBCHAT_CASSETTE")
        self.cassette = cassette
        self.entry = entry
        self.key = key


class _Wrong(NbchatError):
    """What is wrong with an entry, before the cassette and the entry are named."""


@dataclass
class Interaction:
    """One recorded exchange: the request's key and body, and the response or error."""

    key: str
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    #: ``{"status": 400, "body": {...}}`` for a request the server refused.
    error: dict[str, Any] | None = None
    recorded: datetime = field(default_factory=lambda: datetime.now(UTC))
    server: str | None = None
    url: str | None = None
    model: str | None = None
    latency: float | None = None
    cost: float | None = None
    #: Who answered, as the request's key names it (``Client.endpoint``): replaying with no
    #: endpoint set builds requests for this one.
    endpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "recorded": self.recorded.isoformat(),
            "server": self.server,
            "url": self.url,
            "endpoint": self.endpoint,
            "model": self.model,
            "latency": None if self.latency is None else round(self.latency, 3),
            "cost": self.cost,
            "request": _shorten(self.request),
        }
        if self.error is not None:
            data["error"] = self.error
        else:
            data["response"] = self.response
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Interaction:
        """An entry as a cassette keeps it, checked field by field: a hand-edited entry of the
        wrong shape is a CassetteError (the Cassette names its file and index)."""
        try:
            return cls._checked(data)
        except _Wrong as exc:
            key = data.get("key") if isinstance(data, dict) else None
            raise CassetteError(
                f"A cassette entry{_key_text(key)} cannot be read: {exc}",
                cassette=None,
                key=key if isinstance(key, str) else None,
            ) from None

    @classmethod
    def _checked(cls, data: Any, *, reply: bool = True) -> Interaction:
        if not isinstance(data, dict):
            raise _Wrong(f"it is {_kind(data)}, not an object")
        key = _field(data, "key", str)
        if not key:
            raise _Wrong("key is empty")
        recorded = _field(data, "recorded", str)
        try:
            when = datetime.fromisoformat(recorded)
        except ValueError:
            raise _Wrong(f"recorded is {_shown(recorded)}, not an ISO date and time") from None
        response = _field(data, "response", dict, optional=True)
        error = _field(data, "error", dict, optional=True)
        if (response is None) == (error is None):
            has = "both" if response is not None else "neither"
            raise _Wrong(f"it has {has} of response and error (it needs one)")
        interaction = cls(
            key=key,
            request=_field(data, "request", dict, optional=True) or {},
            response=response,
            error=error,
            recorded=when,
            server=_field(data, "server", str, optional=True),
            url=_field(data, "url", str, optional=True),
            model=_field(data, "model", str, optional=True),
            latency=_number(data, "latency"),
            cost=_number(data, "cost"),
            endpoint=_field(data, "endpoint", str, optional=True),
        )
        if error is not None:
            _status(error)
        elif reply:
            _completion(response)
        return interaction

    def _check_reply(self) -> None:
        if self.error is not None:
            _status(self.error)
        elif self.response is not None:
            _completion(self.response)

    def completion(self) -> ChatCompletion | None:
        """The recorded reply, or None for a recorded error."""
        if self.response is None:
            return None
        try:
            return _completion(self.response)
        except _Wrong as exc:
            raise self._error(exc) from None

    def error_status(self) -> int:
        """The HTTP status of a recorded error, 400 to 599 (what replaying it raises)."""
        try:
            return _status(self.error)
        except _Wrong as exc:
            raise self._error(exc) from None

    def _error(self, exc: _Wrong) -> CassetteError:
        return CassetteError(
            f"A cassette entry{_key_text(self.key)} cannot be read: {exc}",
            cassette=None,
            key=self.key,
        )


class Cassette:
    """The interactions of one file, played back in order for requests that repeat."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._loaded: list[Interaction] | None = None
        # How many times each key was played back, so repeats get the next recording.
        self._played: dict[str, int] = defaultdict(int)
        # Keys recorded by this process: a re-recording replaces an old run's entries once.
        self._recorded: set[str] = set()
        # Recorded, not yet in the file: (interaction, first recording of its key here).
        self._unwritten: list[tuple[Interaction, bool]] = []
        self._written = 0.0
        self._timer: threading.Timer | None = None

    @property
    def interactions(self) -> list[Interaction]:
        with self._lock:
            return list(self._load())

    def take(self, key: str) -> Interaction | None:
        """The recording for the next use of ``key`` (the last one again once all are used)."""
        with self._lock:
            entries = self._load()
            matches = [index for index, entry in enumerate(entries) if entry.key == key]
            if not matches:
                return None
            used = self._played[key]
            index = matches[min(used, len(matches) - 1)]
            # Replies are read when played: validating every one as the file loads would cost
            # each recording (the file is read again before each write) a pass over them all.
            try:
                entries[index]._check_reply()
            except _Wrong as exc:
                raise self._unreadable(
                    f"entry {index}{_key_text(key)}: {exc}", entry=index, key=key
                ) from None
            self._played[key] = used + 1
            return entries[index]

    def add(self, interaction: Interaction, *, secrets: tuple[str, ...] = ()) -> None:
        """Record ``interaction`` (an older run's same request is replaced).

        ``secrets`` (``client.secrets``) are masked in the entry first: a cassette is committed.
        The file is rewritten whole: inside ``deferred()`` (a map's rows) recordings are
        written together, at most every ``WRITE_EVERY`` seconds, and at the block's end.
        """
        if secrets:
            interaction = dataclasses.replace(
                interaction,
                request=scrub(interaction.request, secrets),
                response=scrub(interaction.response, secrets),
                error=scrub(interaction.error, secrets),
                url=scrub(interaction.url, secrets),
            )
        with self._lock:
            entries = self._load()
            first = interaction.key not in self._recorded
            if first:
                entries[:] = [i for i in entries if i.key != interaction.key]
                self._recorded.add(interaction.key)
            entries.append(interaction)
            self._unwritten.append((interaction, first))
            if not _deferring or time.monotonic() - self._written >= WRITE_EVERY:
                self._flush_locked()
            elif self._timer is None:
                self._timer = threading.Timer(WRITE_EVERY, self.flush)
                self._timer.daemon = True
                self._timer.start()
                _unflushed.add(self)

    def flush(self) -> None:
        """Write what was recorded and not yet written."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        batch, self._unwritten = self._unwritten, []
        if not batch:
            return
        with _file_lock(self.path):
            # Re-read: another process may have recorded into the same file meanwhile.
            self._loaded = None
            entries = self._load()
            replaced = {interaction.key for interaction, first in batch if first}
            entries[:] = [i for i in entries if i.key not in replaced]
            entries.extend(interaction for interaction, _ in batch)
            self._write(entries)
        self._written = time.monotonic()

    def _load(self) -> list[Interaction]:
        if self._loaded is not None:
            return self._loaded
        if not self.path.exists():
            self._loaded = []
            return self._loaded
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise self._unreadable(str(exc)) from None
        except UnicodeDecodeError as exc:
            raise self._unreadable(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except ValueError as exc:
            raise self._unreadable(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise self._unreadable(f"the file holds {_kind(data)}, not a cassette's object")
        if "interactions" not in data:
            raise self._unreadable("no 'interactions' list")
        version = data.get("nbchat_cassette", FORMAT)
        if not isinstance(version, int) or isinstance(version, bool):
            raise self._unreadable(f"nbchat_cassette is {_shown(version)}, not a format number")
        if version > FORMAT:
            raise self._unreadable(f"made by a newer nbchat (format {version})")
        entries = data["interactions"]
        if not isinstance(entries, list):
            raise self._unreadable(f"interactions is {_kind(entries)}, not a list")
        loaded = []
        for index, item in enumerate(entries):
            try:
                loaded.append(Interaction._checked(item, reply=False))
            except _Wrong as exc:
                key = item.get("key") if isinstance(item, dict) else None
                raise self._unreadable(
                    f"entry {index}{_key_text(key)}: {exc}", entry=index, key=key
                ) from None
        self._loaded = loaded
        return self._loaded

    def _unreadable(self, why: str, *, entry: int | None = None, key: Any = None) -> CassetteError:
        return CassetteError(
            f"NBCHAT_CASSETTE={self.path} is not a cassette nbchat can read: {why}",
            cassette=str(self.path),
            entry=entry,
            key=key if isinstance(key, str) else None,
        )

    def _write(self, entries: list[Interaction]) -> None:
        data = {
            "nbchat_cassette": FORMAT,
            "about": "Requests (no headers, no credentials) and the replies they got, recorded "
            "by nbchat; NBCHAT_REPLAY=replay NBCHAT_CASSETTE=<this file> answers from it.",
            "interactions": [entry.to_dict() for entry in entries],
        }
        text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole and renamed into place: a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def miss_error(cassette: Cassette, key: str, body: dict[str, Any]) -> ReplayMissError:
    """The error for a request the cassette lacks: what it asked, and the nearest recording."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    said = _text(last.get("content"))
    said = said if len(said) <= 60 else said[:59] + "…"
    asked = f"{last.get('role', 'user')} message {said!r}" if said else "this request"
    near = ""
    for interaction in reversed(cassette.interactions):
        recorded = interaction.request
        if recorded.get("messages") == messages:
            fields = sorted(
                name
                for name in set(recorded) | set(body)
                if name not in ("messages", "stream", "stream_options")
                and recorded.get(name) != body.get(name)
            )
            near = f"; a recording with the same messages differs in {', '.join(fields)}"
            break
        if recorded.get("messages", [None])[-1:] == messages[-1:]:
            near = "; a recording has the same last message after different earlier ones"
            break
    return ReplayMissError(
        f"No recorded reply for the {asked} (model {body.get('model')!r}) in the cassette "
        f"{cassette.path}{near}. NBCHAT_REPLAY=replay sends nothing: record it with "
        "NBCHAT_REPLAY=auto or record.",
        key=key,
        cassette=str(cassette.path),
    )


_cassettes: dict[Path, Cassette] = {}
_cassettes_lock = threading.Lock()


def cassette(path: str | Path) -> Cassette:
    """The process's Cassette for ``path``."""
    key = Path(path).expanduser().absolute()
    with _cassettes_lock:
        found = _cassettes.get(key)
        if found is None:
            found = _cassettes[key] = Cassette(key)
        return found


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise writers of one cassette across processes (where the OS has flock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: one recording process at a time
        yield
        return
    # The lock file lives in the temporary directory, not beside a cassette that gets committed.
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"nbchat-cassette-{digest}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return " ".join(content.split())
    if isinstance(content, list):
        return " ".join(
            _text(part.get("text")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _shorten(value: Any) -> Any:
    """A request as kept in a cassette: long data URLs cut (the key, not the body, matches)."""
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > 4 * _DATA_SHOWN:
        return f"{value[:_DATA_SHOWN]}…({len(value):,} characters)"
    return value


# -- checking entries -----------------------------------------------------------------------------


def _field(
    data: dict[str, Any], name: str, kind: type, *, optional: bool = False, where: str = ""
) -> Any:
    if name not in data or (optional and data[name] is None):
        if optional:
            return None
        raise _Wrong(f"{where}{name} is missing")
    value = data[name]
    if not isinstance(value, kind):
        raise _Wrong(f"{where}{name} is {_kind(value)}, not {_KINDS[kind]}")
    return value


def _number(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _Wrong(f"{name} is {_shown(value)}, not a number of 0 or more")
    return float(value)


def _status(error: dict[str, Any] | None) -> int:
    status = _field(error or {}, "status", int, where="error.")
    if isinstance(status, bool) or not 400 <= status <= 599:
        raise _Wrong(f"error.status is {_shown(status)}, not an HTTP error status (400–599)")
    return int(status)


def _completion(response: dict[str, Any]) -> ChatCompletion:
    choices = _field(response, "choices", list, where="response.")
    if not choices:
        raise _Wrong("response.choices is empty: a reply has at least one")
    try:
        return ChatCompletion.model_validate(response)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(["response", *(str(part) for part in first["loc"])])
        more = exc.error_count() - 1
        also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        # "Input should be a valid dictionary or instance of Usage": our class names say nothing.
        why = re.sub(r" or instance of \w+", "", first["msg"])
        got = _shown(first.get("input"))
        raise _Wrong(f"{where} is {got}: {why[0].lower()}{why[1:]}{also}") from None


_KINDS = {str: "a string", dict: "an object", list: "a list", int: "a whole number"}


def _kind(value: Any) -> str:
    """What a JSON value is, in a few words: ``a list``, ``null``, ``the string 'x'``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{'a string' if isinstance(value, str) else 'the number'} {_shown(value)}"


def _shown(value: Any) -> str:
    """A JSON value as it was written, cut to 40 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _key_text(key: Any) -> str:
    if not isinstance(key, str) or not key:
        return ""
    return f" (key {key if len(key) <= 16 else key[:12] + '…'})"


# Cassettes with recordings waiting for their timer; written at exit whatever happens.
_unflushed: set[Cassette] = set()
# Runs inside deferred(): while there are any, recordings are written together.
_deferring = 0
_deferring_lock = threading.Lock()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Write recordings made inside the block together (a map records thousands), and all of
    them by the block's end."""
    global _deferring
    with _deferring_lock:
        _deferring += 1
    try:
        yield
    finally:
        with _deferring_lock:
            _deferring -= 1
        flush_all()


def flush_all() -> None:
    """Write every cassette's pending recordings (at exit, and before reading them back)."""
    for tape in list(_unflushed):
        # At exit there is nobody to tell; a recording that cannot be written is lost.
        with contextlib.suppress(Exception):
            tape.flush()
    _unflushed.clear()


atexit.register(flush_all)


@dataclass(frozen=True)
class Recorded:
    """What a cassette says of the server it was recorded against."""

    #: The base URL its requests went to (credentials never recorded).
    base_url: str | None
    #: The kind of server (``openai``, ``llama-cpp-python``…).
    server: str | None
    #: The model its requests named most often.
    model: str | None
    #: ``Client.endpoint`` of the first recording (None in cassettes made before it was kept).
    endpoint: str | None = None


def recorded_endpoint(tape: Cassette) -> Recorded | None:
    """The endpoint and model ``tape`` was recorded against, or None for an empty cassette:
    replaying builds requests for them, so nothing is asked of any server."""
    interactions = tape.interactions
    if not interactions:
        return None
    first = interactions[0]
    base = first.url
    if base and base.endswith(_COMPLETIONS):
        base = base[: -len(_COMPLETIONS)]
    if base:
        base = base.split("?", 1)[0]
    models = Counter(
        str(i.request.get("model"))
        for i in interactions
        if isinstance(i.request, dict) and i.request.get("model")
    )
    model = models.most_common(1)[0][0] if models else first.model
    return Recorded(
        base_url=base or None, server=first.server, model=model, endpoint=first.endpoint
    )


_COMPLETIONS = "/chat/completions"
