"""The SQLite database behind the store: a versioned schema, WAL, and a writer that never blocks.

Exchanges are queued and written by one background thread per file, so a slow, locked or full
disk never holds up a reply; every kind of failure is one warning, and the reply goes on.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import json
import re
import sqlite3
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..protocol.exceptions import NbchatError
from .record import Exchange, ToolCallRecord

__all__ = ["BLOB_PREFIX", "SCHEMA_VERSION", "Store", "StoreWarning", "open_store"]


class StoreWarning(UserWarning):
    """The store could not be read or written; replies are not affected."""


# -- the schema ---------------------------------------------------------------------------------
# MIGRATIONS[n] takes a database from version n to n + 1 (PRAGMA user_version). Append only: a
# released step is never edited, so every older file reaches the current shape the same way.

_V1 = """
CREATE TABLE exchanges (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    session TEXT,
    notebook TEXT,
    model_requested TEXT,
    model TEXT,
    server TEXT,
    url TEXT,
    key TEXT NOT NULL,
    stream INTEGER NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    response TEXT,
    error TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    latency REAL
);
CREATE INDEX exchanges_by_key ON exchanges (key);
CREATE INDEX exchanges_by_time ON exchanges (time)
"""

# Version 2: cost and provenance, finer usage, and images kept once by hash.
_V2 = """
ALTER TABLE exchanges ADD COLUMN source TEXT NOT NULL DEFAULT 'server';
ALTER TABLE exchanges ADD COLUMN status TEXT NOT NULL DEFAULT 'ok';
ALTER TABLE exchanges ADD COLUMN cost REAL;
ALTER TABLE exchanges ADD COLUMN cached_tokens INTEGER;
ALTER TABLE exchanges ADD COLUMN reasoning_tokens INTEGER;
ALTER TABLE exchanges ADD COLUMN finish_reason TEXT;
ALTER TABLE exchanges ADD COLUMN time_to_first_token REAL;
UPDATE exchanges SET status = 'error' WHERE error IS NOT NULL;
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    mime TEXT,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
)
"""


def _move_images_to_blobs(conn: sqlite3.Connection) -> None:
    """Version 1 kept images inline in every request; version 2 keeps each once, by hash."""
    rows = conn.execute("SELECT id, request FROM exchanges WHERE request LIKE '%data:%'").fetchall()
    for row_id, text in rows:
        request = _stash_blobs(conn, json.loads(text))
        conn.execute("UPDATE exchanges SET request = ? WHERE id = ?", (_dumps(request), row_id))


# Version 3: the completion tokens nbchat counted when a server sent no usage.
_V3 = "ALTER TABLE exchanges ADD COLUMN counted_tokens INTEGER"

# Version 4: the tool calls each reply asked for, with how each was approved or refused and
# what the model was told, linked to the exchange whose reply made them.
_V4 = """
CREATE TABLE tool_calls (
    id INTEGER PRIMARY KEY,
    exchange_id INTEGER REFERENCES exchanges (id),
    key TEXT NOT NULL,
    time TEXT NOT NULL,
    session TEXT,
    call_id TEXT,
    name TEXT NOT NULL,
    arguments TEXT,
    status TEXT NOT NULL,
    approval TEXT,
    error TEXT,
    content TEXT,
    duration REAL
);
CREATE INDEX tool_calls_by_exchange ON tool_calls (exchange_id)
"""

# Version 5: the Batch API jobs nbchat.map started, by the key of their input file, so that the
# same map after a kernel restart picks its job up instead of starting (and paying for) another.
_V5 = """
CREATE TABLE batch_jobs (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    endpoint TEXT,
    rows INTEGER,
    time TEXT NOT NULL
)
"""

Migration = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[tuple[Migration, ...], ...] = (
    (_V1,),
    (_V2, _move_images_to_blobs),
    (_V3,),
    (_V4,),
    (_V5,),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = tuple(f.name for f in fields(Exchange) if f.name != "id")
_JSON_COLUMNS = ("request", "response", "error")
_CALL_COLUMNS = tuple(f.name for f in fields(ToolCallRecord) if f.name != "id")

# -- images by hash -------------------------------------------------------------------------------

#: What a data URL becomes in a stored request: the blob's hash in the blobs table.
BLOB_PREFIX = "nbchat-blob:sha256:"
_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,", re.ASCII)
_BLOB_MIN_CHARS = 256
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def _stash_blobs(conn: sqlite3.Connection, value: Any) -> Any:
    """``value`` with each long base64 data URL (images, files) and each recording
    (``input_audio.data``) replaced by a reference to its stored bytes."""
    if isinstance(value, dict):
        audio = value.get("input_audio")
        if isinstance(audio, dict) and isinstance(audio.get("data"), str):
            mime = _AUDIO_TYPES.get(str(audio.get("format")), "application/octet-stream")
            data_url = f"data:{mime};base64,{audio['data']}"
            stashed = _stash_blobs(conn, data_url)
            if stashed != data_url:
                value = {**value, "input_audio": {**audio, "data": stashed}}
        return {key: _stash_blobs(conn, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stash_blobs(conn, item) for item in value]
    if isinstance(value, str) and len(value) >= _BLOB_MIN_CHARS and value.startswith("data:"):
        match = _DATA_URL.match(value)
        if match is None:
            return value
        try:
            data = base64.b64decode(value[match.end() :], validate=True)
        except (binascii.Error, ValueError):
            return value
        digest = hashlib.sha256(data).hexdigest()
        conn.execute(
            "INSERT OR IGNORE INTO blobs (hash, mime, size, data) VALUES (?, ?, ?, ?)",
            (digest, match.group(1), len(data), data),
        )
        return BLOB_PREFIX + digest
    return value


# -- failures -------------------------------------------------------------------------------------

_warned: set[str] = set()
_warned_lock = threading.Lock()

_ADVICE = {
    "corrupt": "it is not a readable SQLite database; move it away and nbchat starts a new one. "
    "Exchanges are not being kept",
    "newer": "it was written by a newer nbchat; exchanges are not being kept",
    "locked": "it is locked by another program; exchanges wait in memory and are written "
    "once it is free",
    "full": "the disk is full; exchanges wait in memory and are written once there is room",
    "readonly": "it cannot be written; exchanges wait in memory",
    "open": "it cannot be opened; exchanges wait in memory",
    "overflow": "too many exchanges are waiting to be written; the oldest were dropped",
    "error": "writing failed; exchanges wait in memory",
}
#: Failures that retrying cannot fix: the store stops trying for this file.
_PERMANENT = ("corrupt", "newer")


def _warn(kind: str, path: Path, detail: str = "") -> None:
    """One warning per kind of failure and process; the reply it happened in goes on."""
    with _warned_lock:
        if kind in _warned:
            return
        _warned.add(kind)
    why = f" ({detail})" if detail else ""
    warnings.warn(f"nbchat store {path}: {_ADVICE[kind]}{why}.", StoreWarning, stacklevel=3)


def _kind(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, _NewerSchema):
        return "newer"
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text:
        return "full"
    if "readonly" in text or "read-only" in text:
        return "readonly"
    if "unable to open" in text:
        return "open"
    if "not a database" in text or "malformed" in text or "encrypted" in text:
        return "corrupt"
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return "corrupt"
    return "error"


class _NewerSchema(NbchatError):
    """A store written by a newer nbchat: left alone (a signal, caught where it is raised)."""


# -- the store ------------------------------------------------------------------------------------


class Store:
    """One database file: ``add()`` queues an exchange; reads see queued ones too.

    ``busy_timeout`` is how long the background writer waits for another writer (another
    kernel) before counting the database as locked and trying again later.
    """

    #: Most exchanges kept in memory while the database cannot be written.
    MAX_PENDING = 10_000
    #: Seconds the writer waits, once woken, for more exchanges to write in the same transaction.
    LINGER = 0.05

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._pending: deque[Exchange | ToolCallRecord] = deque()
        # What spent() adds up, kept as exchanges come and go (a map queues thousands): the
        # billed cost of the queue, and the stored sum as last read (plus what we wrote since).
        self._queued_cost = 0.0
        self._stored_cost: float | None = None
        self._stored_read = 0.0
        self._cond = threading.Condition()
        self._hurry = False
        self._writing = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        #: Set when the file cannot be used at all (corrupt, newer schema).
        self.broken: str | None = None
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._checked = False
        self._commit_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- writing ----------------------------------------------------------------------------------

    def add(self, exchange: Exchange | ToolCallRecord) -> None:
        """Queue ``exchange`` (or a tool call of one) to be written; returns at once."""
        if self.broken:
            return
        with self._cond:
            if len(self._pending) >= self.MAX_PENDING:
                self._queued_cost -= _billed(self._pending.popleft())
                _warn("overflow", self.path)
            self._pending.append(exchange)
            self._queued_cost += _billed(exchange)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name=f"nbchat-store {self.path.name}", daemon=True
                )
                self._thread.start()
            if len(self._pending) == 1:
                # The writer sleeps only on an empty queue: waking it for every exchange of a
                # map (thousands a second) cost the loop a thread switch each time.
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued exchange is written; False if that took longer than timeout."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self.broken is not None or not (self._pending or self._writing), timeout
            )

    def close(self, timeout: float | None = 5.0) -> bool:
        """Write what is queued (waiting at most ``timeout``), then stop the writer."""
        done = self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        return done

    def _write_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        delay = 0.25
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                # A moment for more to come (a map's rows arrive by the hundred): one
                # transaction for them all, and the loop's thread left alone meanwhile.
                self._cond.wait_for(lambda: self._hurry or self._closing, self.LINGER)
                self._hurry = False
                if not self._pending:
                    break
                batch = list(self._pending)
                self._writing = len(batch)
            try:
                if conn is None:
                    conn = self._connect()
                self._insert(conn, batch)
            except Exception as exc:
                kind = _kind(exc)
                _warn(kind, self.path, str(exc))
                if conn is not None:
                    conn.close()
                    conn = None
                with self._cond:
                    self._writing = 0
                    if kind in _PERMANENT:
                        self.broken = kind
                        self._pending.clear()
                        self._queued_cost = 0.0
                        self._cond.notify_all()
                        break
                    self._cond.notify_all()
                    if self._closing:
                        break
                    # Try again later; a new exchange or a flush wakes the writer sooner.
                    self._cond.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.25
        if conn is not None:
            conn.close()

    def _insert(self, conn: sqlite3.Connection, batch: list[Exchange | ToolCallRecord]) -> None:
        """Write ``batch`` in one transaction, then take it off the queue.

        Exchanges go in by the hundred in one statement. Each statement lets go of the GIL and
        must take it back, which a busy event loop (a map's) grants only every few
        milliseconds: one statement a row kept the writer to a few hundred rows a second, the
        queue overflowed and a 30,000-row map at 128 in flight lost half of its log.
        """
        calls = ", ".join("?" for _ in _CALL_COLUMNS)
        call_sql = f"INSERT INTO tool_calls ({', '.join(_CALL_COLUMNS)}) VALUES ({calls})"
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids: list[int | None] = []
            rows: list[list[Any]] = []
            for exchange in batch:
                if isinstance(exchange, ToolCallRecord):
                    # The queue is in order: the exchange that asked for the call is written.
                    ids.extend(_insert_rows(conn, rows))
                    rows = []
                    cursor = conn.execute(call_sql, _call_values(conn, exchange))
                    ids.append(cursor.lastrowid)
                    continue
                rows.append(_values(exchange, _request_json(conn, exchange)))
            ids.extend(_insert_rows(conn, rows))
            # Committing and leaving the queue are one step for spent(): an exchange is
            # counted either queued or stored, never both, never neither.
            with self._commit_lock:
                conn.execute("COMMIT")
                with self._cond:
                    for exchange, row_id in zip(batch, ids, strict=True):
                        exchange.id = row_id
                        self._pending.popleft()
                        self._queued_cost -= _billed(exchange)
                        if self._stored_cost is not None:
                            self._stored_cost += _billed(exchange)
                    self._writing = 0
                    self._cond.notify_all()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- reading ----------------------------------------------------------------------------------

    def find(self, key: str) -> Exchange | None:
        """The latest answered exchange with this request key (the cache), or None."""
        with self._cond:
            for exchange in reversed(self._pending):
                if isinstance(exchange, Exchange) and exchange.key == key and _answers(exchange):
                    return exchange
        rows = self.select(
            "WHERE key = ? AND status = 'ok' AND source != 'cache' AND response IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (key,),
        )
        return rows[0] if rows else None

    #: Seconds a reading of the stored sum is used before the file is read again (another
    #: kernel may have spent meanwhile); what this process writes is added as it is written.
    SPENT_FRESH = 1.0

    def spent(self) -> float:
        """US dollars billed across the store (queued exchanges included)."""
        with self._commit_lock:
            now = time.monotonic()
            if self._stored_cost is None or now - self._stored_read > self.SPENT_FRESH:
                rows = self.query(
                    "SELECT COALESCE(SUM(cost), 0) FROM exchanges WHERE source = 'server'"
                )
                self._stored_cost = float(rows[0][0]) if rows else 0.0
                self._stored_read = now
            with self._cond:
                return max(self._queued_cost, 0.0) + self._stored_cost

    def select(self, where: str = "", params: Iterable[Any] = ()) -> list[Exchange]:
        """Stored exchanges (``where`` is SQL after FROM, with ? placeholders)."""
        rows = self.query(f"SELECT id, {', '.join(_COLUMNS)} FROM exchanges {where}", params)
        return [_exchange(row) for row in rows]

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of any read-only query; [] (and one warning) when the file cannot be read."""
        if self.broken:
            return []
        with self._read_lock:
            try:
                if self._reader is None:
                    self._reader = self._connect(timeout=min(self.busy_timeout, 2.0))
                return self._reader.execute(sql, tuple(params)).fetchall()
            except Exception as exc:
                kind = _kind(exc)
                _warn(kind, self.path, str(exc))
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
                if kind in _PERMANENT:
                    self.broken = kind
                return []

    def tool_calls(self, exchange_id: int | None = None) -> list[ToolCallRecord]:
        """Stored tool calls, oldest first: all, or those of one exchange."""
        where, params = (
            ("", ()) if exchange_id is None else ("WHERE exchange_id = ?", (exchange_id,))
        )
        rows = self.query(
            f"SELECT id, {', '.join(_CALL_COLUMNS)} FROM tool_calls {where} ORDER BY id", params
        )
        return [_tool_call(row) for row in rows]

    def blob(self, digest: str) -> bytes | None:
        """The bytes of an image, file or recording kept by hash (``nbchat-blob:sha256:…`` in a
        stored request)."""
        rows = self.query(
            "SELECT data FROM blobs WHERE hash = ?", (digest.removeprefix(BLOB_PREFIX),)
        )
        return bytes(rows[0][0]) if rows else None

    def check(self) -> None:
        """Open the file once, in the calling thread, so that a corrupt or newer file is
        reported where it was met rather than later from the writer's thread."""
        if not self._checked:
            self._checked = True
            self.query("SELECT 1")

    # -- Batch API jobs ---------------------------------------------------------------------------

    def batch_job(self, key: str) -> str | None:
        """The id of the batch job started for the input file ``key``, or None."""
        rows = self.query("SELECT batch_id FROM batch_jobs WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def keep_batch_job(
        self, key: str, batch_id: str | None, *, endpoint: str = "", rows: int = 0
    ) -> None:
        """Remember (or, with None, forget) the batch job of the input file ``key``; written
        at once, not queued: a job that is not kept may be started and paid for twice."""
        if self.broken:
            return
        try:
            conn = self._connect()
            try:
                if batch_id is None:
                    conn.execute("DELETE FROM batch_jobs WHERE key = ?", (key,))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO batch_jobs (key, batch_id, endpoint, rows, time) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (key, batch_id, endpoint, rows, datetime.now(UTC).isoformat()),
                    )
            finally:
                conn.close()
        except Exception as exc:
            _warn(_kind(exc), self.path, str(exc))

    def pending(self) -> list[Exchange]:
        """The exchanges queued and not yet written."""
        with self._cond:
            return [e for e in self._pending if isinstance(e, Exchange)]

    # -- opening ----------------------------------------------------------------------------------

    def _connect(self, timeout: float | None = None) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout if timeout is None else timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            # WAL: readers never wait for writers, and kernels append side by side.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to schema ``target``, one step at a time; returns the old version."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise _NewerSchema(f"schema {version}; this nbchat knows {SCHEMA_VERSION}")
    if version >= target:
        return version
    # IMMEDIATE: two kernels opening a new file at once must not both run the same step.
    conn.execute("BEGIN IMMEDIATE")
    try:
        old = version = conn.execute("PRAGMA user_version").fetchone()[0]
        while version < target:
            for step in MIGRATIONS[version]:
                if callable(step):
                    step(conn)
                else:
                    for statement in step.split(";"):
                        if statement.strip():
                            conn.execute(statement)
            version += 1
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return old


def _billed(exchange: Exchange | ToolCallRecord) -> float:
    if isinstance(exchange, ToolCallRecord):
        return 0.0
    return (exchange.cost or 0.0) if exchange.source == "server" else 0.0


def _answers(exchange: Exchange) -> bool:
    return exchange.status == "ok" and exchange.source != "cache" and exchange.response is not None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _request_json(conn: sqlite3.Connection, exchange: Exchange) -> str:
    """The request as stored: JSON, its images, files and recordings kept apart by hash."""
    text = _dumps(exchange.request)
    if "data:" not in text and '"input_audio"' not in text:
        return text  # nothing to keep apart (every map row): written once, not walked
    return _dumps(_stash_blobs(conn, exchange.request))


def _values(exchange: Exchange, request: str) -> list[Any]:
    values = []
    for name in _COLUMNS:
        if name == "request":
            values.append(request)
            continue
        value = getattr(exchange, name)
        if name in _JSON_COLUMNS:
            value = None if value is None else _dumps(value)
        elif name == "time":
            # UTC with microseconds always: the text sorts and compares as time does.
            value = exchange.time.astimezone(UTC).isoformat(timespec="microseconds")
        elif name == "stream":
            value = int(bool(value))
        values.append(value)
    return values


#: Most exchanges written by one INSERT statement.
_MOST_ROWS_PER_INSERT = 500


def _insert_rows(conn: sqlite3.Connection, rows: list[list[Any]]) -> list[int | None]:
    """Insert exchanges' column values, many per statement; their ids, in order.

    A rowid table gives the rows of one statement consecutive ids (one more than the largest
    each), and the transaction holds the write lock: the ids are the last one's and those
    before it.
    """
    ids: list[int | None] = []
    if not rows:
        return ids
    # Within the bound-variable limit of this SQLite build (999 before 3.32, 32,766 since).
    variables = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(_MOST_ROWS_PER_INSERT, variables // len(_COLUMNS)))
    columns = ", ".join(_COLUMNS)
    one = "(" + ", ".join("?" for _ in _COLUMNS) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        sql = f"INSERT INTO exchanges ({columns}) VALUES " + ", ".join([one] * len(chunk))
        cursor = conn.execute(sql, [value for row in chunk for value in row])
        last = cursor.lastrowid
        if last is None:
            raise sqlite3.OperationalError("the store gave no id for the rows it wrote")
        ids.extend(range(last - len(chunk) + 1, last + 1))
    return ids


def _call_values(conn: sqlite3.Connection, call: ToolCallRecord) -> list[Any]:
    if call.exchange_id is None:
        found = conn.execute(
            "SELECT id FROM exchanges WHERE key = ? AND session IS ? ORDER BY id DESC LIMIT 1",
            (call.key, call.session),
        ).fetchone()
        call.exchange_id = found[0] if found else None
    values = []
    for name in _CALL_COLUMNS:
        value = getattr(call, name)
        if name == "arguments":
            value = None if value is None else _dumps(value)
        elif name == "time":
            value = call.time.astimezone(UTC).isoformat(timespec="microseconds")
        values.append(value)
    return values


def _tool_call(row: tuple[Any, ...]) -> ToolCallRecord:
    data = dict(zip(("id", *_CALL_COLUMNS), row, strict=True))
    if data["arguments"] is not None:
        data["arguments"] = json.loads(data["arguments"])
    data["time"] = datetime.fromisoformat(data["time"])
    return ToolCallRecord(**data)


def _exchange(row: tuple[Any, ...]) -> Exchange:
    data = dict(zip(("id", *_COLUMNS), row, strict=True))
    for name in _JSON_COLUMNS:
        if data[name] is not None:
            data[name] = json.loads(data[name])
    data["time"] = datetime.fromisoformat(data["time"])
    data["stream"] = bool(data["stream"])
    return Exchange(**data)


# -- one Store per file and process ---------------------------------------------------------------

_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()
# The same stores by the path they were asked for with (not made absolute).
_named: dict[str | Path, Store] = {}


def open_store(path: str | Path) -> Store:
    """The process's Store for ``path`` (made on first use, flushed when the process exits)."""
    # Every request asks (a map, thousands of times): the path as given finds it at once.
    known = _named.get(path)
    if known is not None and _stores.get(known.path) is known:
        return known
    key = Path(path).expanduser().absolute()
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = Store(key)
        if len(_named) < 64 and Path(path).is_absolute() and "~" not in str(path):
            _named[path] = store  # a relative path may mean another file after a chdir
        return store


@atexit.register
def _flush_at_exit() -> None:
    for store in list(_stores.values()):
        store.close(timeout=5.0)
