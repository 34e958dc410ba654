"""Cassettes: a JSON file of requests and the replies they got, for tests and CI to replay.

``NBCHAT_REPLAY=record`` writes every exchange, ``replay`` answers only from the file (a request
it lacks is a ReplayMissError, and nothing is sent), ``auto`` replays what it has and records
the rest. A cassette holds request bodies and responses, never a header or a credential.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..protocol.exceptions import ReplayMissError, RequestValidationError
from ..protocol.types import ChatCompletion

__all__ = ["FORMAT", "Cassette", "Interaction", "cassette", "miss_error"]

FORMAT = 1
_DATA_SHOWN = 64


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

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "recorded": self.recorded.isoformat(),
            "server": self.server,
            "url": self.url,
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
    def from_dict(cls, data: dict[str, Any]) -> Interaction:
        return cls(
            key=str(data["key"]),
            request=data.get("request") or {},
            response=data.get("response"),
            error=data.get("error"),
            recorded=datetime.fromisoformat(data["recorded"]),
            server=data.get("server"),
            url=data.get("url"),
            model=data.get("model"),
            latency=data.get("latency"),
            cost=data.get("cost"),
        )

    def completion(self) -> ChatCompletion | None:
        return None if self.response is None else ChatCompletion.model_validate(self.response)


class Cassette:
    """The interactions of one file, played back in order for requests that repeat."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._loaded: list[Interaction] | None = None
        # How many times each key was played back, so repeats get the next recording.
        self._played: dict[str, int] = defaultdict(int)
        # Keys recorded by this process: a re-recording replaces an old run's entries once.
        self._recorded: set[str] = set()

    @property
    def interactions(self) -> list[Interaction]:
        with self._lock:
            return list(self._load())

    def take(self, key: str) -> Interaction | None:
        """The recording for the next use of ``key`` (the last one again once all are used)."""
        with self._lock:
            matches = [i for i in self._load() if i.key == key]
            if not matches:
                return None
            used = self._played[key]
            self._played[key] = used + 1
            return matches[min(used, len(matches) - 1)]

    def add(self, interaction: Interaction) -> None:
        """Record ``interaction`` and rewrite the file (an older run's same request is replaced)."""
        with self._lock, _file_lock(self.path):
            # Re-read: another process may have recorded into the same file meanwhile.
            self._loaded = None
            entries = self._load()
            if interaction.key not in self._recorded:
                entries[:] = [i for i in entries if i.key != interaction.key]
                self._recorded.add(interaction.key)
            entries.append(interaction)
            self._write(entries)

    def _load(self) -> list[Interaction]:
        if self._loaded is not None:
            return self._loaded
        if not self.path.exists():
            self._loaded = []
            return self._loaded
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or "interactions" not in data:
                raise ValueError("no 'interactions' list")
            if int(data.get("nbchat_cassette", FORMAT)) > FORMAT:
                raise ValueError(f"made by a newer nbchat (format {data['nbchat_cassette']})")
            self._loaded = [Interaction.from_dict(item) for item in data["interactions"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RequestValidationError(
                f"NBCHAT_CASSETTE={self.path} is not a cassette nbchat can read: {exc}",
                field="NBCHAT_CASSETTE",
            ) from None
        return self._loaded

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
