from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from nbchat.store import db
from nbchat.store.db import BLOB_PREFIX, SCHEMA_VERSION, Store, StoreWarning, migrate
from nbchat.store.record import Exchange
from tests import storeutil
from tests.storeutil import reset

ROOT = Path(__file__).resolve().parent.parent
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()
IMAGE_URL = f"data:image/png;base64,{PNG}"

fresh_store = storeutil.fresh_store


def exchange(key: str = "k1", **changes) -> Exchange:
    fields = {
        "request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        "key": key,
        "response": {"choices": [{"index": 0, "message": {"content": "hello"}}]},
    }
    fields.update(changes)
    return Exchange(**fields)


@pytest.fixture(autouse=True)
def _clean():
    reset()
    yield
    reset()


def test_a_new_store_is_at_the_current_schema_in_wal_mode(tmp_path):
    store = Store(tmp_path / "sub" / "nbchat.db")
    store.add(exchange())
    assert store.flush(timeout=10)
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 1
    store.close()


def test_written_exchanges_read_back_whole(tmp_path):
    store = Store(tmp_path / "nbchat.db")
    original = exchange(session="s", cost=0.25, prompt_tokens=3, stream=True, latency=1.5)
    store.add(original)
    store.flush(timeout=10)
    (back,) = store.select()
    assert back.id == original.id is not None
    assert (back.session, back.cost, back.prompt_tokens, back.stream) == ("s", 0.25, 3, True)
    assert back.request == original.request and back.response == original.response
    assert back.time == original.time
    store.close()


def test_an_older_schema_is_migrated_forward_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, target=1) == 0
    request = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": IMAGE_URL}}]}]}  # fmt: skip
    conn.execute(
        "INSERT INTO exchanges (time, key, request, response, error, prompt_tokens) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ("2024-01-02T03:04:05.000000+00:00", "old", json.dumps(request), "{}", None, 7),
    )
    conn.execute(
        "INSERT INTO exchanges (time, key, request, error) VALUES (?, ?, ?, ?)",
        ("2024-01-02T03:05:00.000000+00:00", "bad", "{}", json.dumps({"message": "no"})),
    )
    conn.close()

    store = Store(path)
    rows = store.select("ORDER BY id")
    assert [r.key for r in rows] == ["old", "bad"]
    assert [r.status for r in rows] == ["ok", "error"]
    assert rows[0].source == "server" and rows[0].prompt_tokens == 7 and rows[0].cost is None
    # The inline image moved to the blobs table, kept once by hash.
    url = rows[0].request["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith(BLOB_PREFIX)
    assert store.blob(url) == base64.b64decode(PNG)
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    store.close()


def test_images_are_stored_once_by_hash_however_many_turns_carry_them(tmp_path):
    store = Store(tmp_path / "nbchat.db")
    part = {"type": "image_url", "image_url": {"url": IMAGE_URL}}
    for turn in range(3):
        messages = [{"role": "user", "content": [part]}] * (turn + 1)
        store.add(exchange(f"k{turn}", request={"model": "m", "messages": messages}))
    store.flush(timeout=10)
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1
    (size,) = conn.execute("SELECT size FROM blobs").fetchone()
    assert size == len(base64.b64decode(PNG))
    assert PNG not in Path(store.path).read_bytes().decode("latin-1")
    store.close()


def test_recordings_and_files_are_stored_once_by_hash_too(tmp_path):
    from nbchat.convert.audio import audio_part, wav_from_pcm16
    from nbchat.convert.files import file_part

    wav = wav_from_pcm16(b"\x01\x02" * 500)
    pdf = b"%PDF-1.4 " + b"z" * 500
    parts = [audio_part(wav).to_dict(), file_part(pdf).to_dict()]
    store = Store(tmp_path / "nbchat.db")
    for turn in range(3):
        messages = [{"role": "user", "content": parts}] * (turn + 1)
        store.add(exchange(f"k{turn}", request={"model": "m", "messages": messages}))
    store.flush(timeout=10)
    conn = sqlite3.connect(store.path)
    rows = conn.execute("SELECT mime, size FROM blobs ORDER BY mime").fetchall()
    assert rows == [("application/pdf", len(pdf)), ("audio/wav", len(wav))]
    stored = json.loads(conn.execute("SELECT request FROM exchanges").fetchone()[0])
    sent = stored["messages"][0]["content"][0]["input_audio"]
    assert sent["format"] == "wav" and sent["data"].startswith("nbchat-blob:sha256:")
    assert store.blob(sent["data"]) == wav
    store.close()


def test_find_returns_the_latest_answer_and_skips_errors_and_copies(tmp_path):
    store = Store(tmp_path / "nbchat.db")
    store.add(exchange("k", response={"n": 1}))
    store.add(exchange("k", response={"n": 2}))
    store.add(exchange("k", response={"n": 3}, source="cache"))
    store.add(exchange("k", response=None, status="error", error={"message": "x"}))
    store.add(exchange("k", response={"n": 4}, status="interrupted"))
    # Queued exchanges are found before they are written…
    assert store.find("k").response == {"n": 2}
    store.flush(timeout=10)
    # …and the same one after.
    assert store.find("k").response == {"n": 2}
    assert store.find("other") is None
    store.close()


def test_spent_sums_what_servers_billed_including_queued_exchanges(tmp_path):
    store = Store(tmp_path / "nbchat.db")
    store.add(exchange(cost=0.5))
    store.flush(timeout=10)
    store.add(exchange(cost=0.25))
    store.add(exchange(cost=0.0, source="cache"))
    store.add(exchange(cost=None))
    assert store.spent() == pytest.approx(0.75)
    store.close()


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        f"""
        import sys
        from nbchat.store.db import Store
        from nbchat.store.record import Exchange
        store = Store({str(path)!r})
        for i in range(150):
            store.add(Exchange(request={{"i": i}}, key=sys.argv[1] + str(i), session=sys.argv[1]))
        assert store.close(timeout=60)
        """
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, name], env=env, stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    conn = sqlite3.connect(path)
    counts = dict(conn.execute("SELECT session, count(*) FROM exchanges GROUP BY session"))
    assert counts == {"a": 150, "b": 150}
    assert conn.execute("SELECT count(DISTINCT key) FROM exchanges").fetchone()[0] == 300


def test_a_locked_database_is_one_warning_and_loses_nothing_once_free(tmp_path):
    path = tmp_path / "nbchat.db"
    Store(path).close()  # create it
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
    store = Store(path, busy_timeout=0.05)
    with pytest.warns(StoreWarning, match="locked") as caught:
        store.add(exchange("a"))
        store.add(exchange("b"))
        assert store.flush(timeout=0.3) is False
    assert len([w for w in caught if issubclass(w.category, StoreWarning)]) == 1
    # Reads still answer (WAL), queued exchanges included.
    assert store.find("b") is not None
    holder.execute("ROLLBACK")
    holder.close()
    assert store.flush(timeout=10)
    assert [e.key for e in store.select("ORDER BY id")] == ["a", "b"]
    store.close()


def test_a_corrupt_file_is_one_warning_and_the_store_stands_aside(tmp_path):
    path = tmp_path / "nbchat.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    store = Store(path)
    with pytest.warns(StoreWarning, match="not a readable SQLite database") as caught:
        store.check()
        assert store.find("k") is None
        store.add(exchange())
        assert store.flush(timeout=5)
        assert store.spent() == 0.0
    assert len(caught) == 1
    assert store.broken == "corrupt"
    assert path.read_bytes().startswith(b"this is not a database")
    store.close()


def test_a_file_from_a_newer_nbchat_is_left_alone(tmp_path):
    path = tmp_path / "nbchat.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = Store(path)
    with pytest.warns(StoreWarning, match="newer nbchat"):
        store.check()
    assert store.broken == "newer"
    store.add(exchange())
    assert store.pending() == []
    store.close()


def test_a_place_that_cannot_be_written_warns_and_keeps_the_exchange_waiting(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = Store(blocker / "nbchat.db")  # a directory that cannot exist
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.add(exchange())  # returns at once: nothing raises into the reply
        assert store.flush(timeout=0.3) is False
    assert len([w for w in caught if issubclass(w.category, StoreWarning)]) == 1
    assert len(store.pending()) == 1
    store.close(timeout=0.5)


def test_warnings_are_given_once_per_kind_of_failure(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            db._warn("locked", tmp_path)
        db._warn("full", tmp_path)
    assert [str(w.message).split(": ", 1)[1][:8] for w in caught] == ["it is lo", "the disk"]


def test_failures_are_sorted_into_kinds():
    assert db._kind(sqlite3.OperationalError("database is locked")) == "locked"
    assert db._kind(sqlite3.OperationalError("database or disk is full")) == "full"
    assert db._kind(sqlite3.DatabaseError("file is not a database")) == "corrupt"
    assert db._kind(sqlite3.DatabaseError("database disk image is malformed")) == "corrupt"
    assert db._kind(sqlite3.OperationalError("attempt to write a readonly database")) == "readonly"
    assert db._kind(sqlite3.OperationalError("unable to open database file")) == "open"


def test_one_store_per_file_and_process(fresh_store):
    assert db.open_store(fresh_store) is db.open_store(str(fresh_store))
    assert db.open_store(fresh_store) is not db.open_store(fresh_store.with_name("other.db"))


def test_tool_calls_are_written_after_their_exchange_and_linked_to_it(tmp_path):
    from nbchat.store.record import ToolCallRecord

    store = Store(tmp_path / "calls.db")
    store.add(Exchange(request={"messages": []}, key="k", session="s", cost=0.5))
    store.add(
        ToolCallRecord(
            key="k",
            session="s",
            name="run_python",
            status="ok",
            approval="approved by user",
            arguments={"code": "1"},
        )
    )
    store.add(ToolCallRecord(key="unknown", session="s", name="x"))
    assert all(isinstance(e, Exchange) for e in store.pending())  # tool calls are not exchanges
    assert store.spent() == 0.5
    assert store.flush(5)
    calls = store.tool_calls()
    exchange = store.select()[0]
    assert [(c.name, c.exchange_id) for c in calls] == [("run_python", exchange.id), ("x", None)]
    assert calls[0].arguments == {"code": "1"} and calls[0].approval == "approved by user"
    assert store.tool_calls(exchange.id) == calls[:1]
    store.close()


def test_a_version_3_database_gains_the_tool_calls_table(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=3)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
    store = Store(path)
    assert store.tool_calls() == []
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == 5


def test_a_batch_job_is_kept_by_its_input_files_key_and_can_be_forgotten(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.batch_job("k1") is None
    store.keep_batch_job("k1", "batch_7", endpoint="http://x/v1", rows=3)
    store.keep_batch_job("k2", "batch_8")
    assert (store.batch_job("k1"), store.batch_job("k2")) == ("batch_7", "batch_8")
    store.keep_batch_job("k1", None)
    assert store.batch_job("k1") is None
    # Another process (a restarted kernel) reads the same file.
    assert Store(tmp_path / "s.db").batch_job("k2") == "batch_8"
    store.close()


def test_a_batch_of_many_exchanges_and_tool_calls_gets_each_row_its_own_id(tmp_path):
    # Exchanges are written many to a statement; each keeps the id of its own row, across
    # statements and around the tool calls that come between them.
    from nbchat.store.record import ToolCallRecord

    store = Store(tmp_path / "many.db")
    store.add(exchange("before"))
    assert store.flush(5)
    count = 2 * db._MOST_ROWS_PER_INSERT + 7
    queued: list[Exchange | ToolCallRecord] = []
    for n in range(count):
        queued.append(exchange(f"row-{n}", session="s"))
        if n in (5, 600):
            queued.append(ToolCallRecord(key=f"row-{n}", session="s", name=f"tool-{n}"))
    for item in queued:
        store.add(item)
    assert store.flush(20)
    conn = sqlite3.connect(store.path)
    stored = dict(conn.execute("SELECT key, id FROM exchanges"))
    assert len(stored) == count + 1
    for item in queued:
        if isinstance(item, Exchange):
            assert item.id == stored[item.key], item.key
    linked = dict(conn.execute("SELECT name, exchange_id FROM tool_calls"))
    assert linked == {"tool-5": stored["row-5"], "tool-600": stored["row-600"]}
    conn.close()
    store.close()


def test_the_writer_keeps_up_with_a_map_that_keeps_the_loop_busy(fresh_store, monkeypatch):
    # A busy event loop hands the GIL to the writer only every few milliseconds: written a
    # statement a row, the queue of a fast map grew past its bound and rows were dropped from
    # the log (half of a 30,000-row map at 128 in flight). The server runs in its own process,
    # as a real one does, so that the map's loop is the busy one.
    import nbchat

    monkeypatch.setattr(Store, "MAX_PENDING", 2000)
    command = [sys.executable, "-m", "tests.loopserver", "--latency", "0.01", "--capacity", "64"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        client = nbchat.Client(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1")
        with warnings.catch_warnings():
            warnings.simplefilter("error", StoreWarning)
            result = nbchat.map(
                "row {i}",
                [{"i": i} for i in range(6000)],
                model="m",
                concurrency=128,
                client=client,
                progress=False,
            )
        client.close()
    finally:
        server.terminate()
        server.wait(10)
    assert sum(1 for row in result if row["error"]) == 0
    assert len(storeutil.stored(fresh_store)) == 6000
