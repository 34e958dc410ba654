from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pandas as pd
import pytest
from pydantic import BaseModel

import nbchat
from nbchat.conversation import mapping
from nbchat.conversation.mapjob import MapJob
from nbchat.transport.batches import BatchError, BatchUnsupportedError
from tests import storeutil
from tests.fakebatch import FakeBatchAPI
from tests.fakeserver import SECRET
from tests.loopserver import completion

fresh_store = storeutil.fresh_store


@pytest.fixture(autouse=True)
def _own_store(fresh_store):
    # Batch jobs are kept in the store: each test starts with none.
    return fresh_store


def test_via_batch_uploads_one_line_per_row_and_collects_the_same_result_as_online():
    api = FakeBatchAPI(steps=3)
    frame = pd.DataFrame({"t": ["a", "fail me", "lose me", "d"]}, index=list("wxyz"))
    result = nbchat.map(
        "Say {t}",
        frame,
        model="m",
        client=api.client(),
        via="batch",
        poll_interval=0.01,
        max_tokens=5,
    )
    assert list(result.index) == list("wxyz")
    assert result.loc["w", "reply"] == "re: Say a"
    assert result.loc["z", "reply"] == "re: Say d"
    assert result.loc["x", "error"] == "Batch request failed (400, invalid_value): bad row"
    assert result.loc["y", "error"].startswith("not in the output of batch batch_1")
    assert list(result["tokens"][["w", "z"]]) == [7, 7]
    lines = [json.loads(line) for line in api.files["file-1"].splitlines()]
    assert [line["custom_id"] for line in lines] == ["row-0", "row-1", "row-2", "row-3"]
    assert all(line["url"] == "/v1/chat/completions" for line in lines)
    assert lines[0]["body"] == {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "Say a"}],
    }
    batch = api.batches["batch_1"]
    assert batch["endpoint"] == "/v1/chat/completions"
    assert batch["metadata"] == {"created_by": "nbchat.map"}
    assert sum(call == "GET /batches/batch_1" for call in api.calls) == 3


def test_a_batch_runs_counts_are_each_row_once():
    api = FakeBatchAPI(steps=3)
    rows = [{"t": "a"}, {"t": "fail"}, {"t": "c"}]

    async def main():
        job = MapJob("{t}", rows, model="m", client=api.client())
        run = mapping.MapRun(len(job))
        await mapping.execute(job, run, via="batch", poll_interval=0.01)
        return run

    run = asyncio.run(main())
    assert (run.done, run.errors, run.tokens) == (3, 1, 14)


def test_batch_lines_are_the_requests_the_online_map_sends():
    online = []

    def handler(request):
        online.append(json.loads(request.content))
        return httpx.Response(200, json=completion("m", "ok"))

    client = nbchat.Client(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(handler)
    )
    rows = [{"q": "one"}, {"q": "two"}]
    nbchat.map("Q: {q}", rows, model="m", system="S", temperature=0, client=client)
    api = FakeBatchAPI(steps=1)
    nbchat.map(
        "Q: {q}",
        rows,
        model="m",
        system="S",
        temperature=0,
        client=api.client(),
        via="batch",
        poll_interval=0.01,
    )
    lines = [json.loads(line)["body"] for line in api.files["file-1"].splitlines()]
    assert lines == online


def test_a_schema_parses_batch_replies_into_columns():
    class Reply(BaseModel):
        word: str

    api = FakeBatchAPI(steps=1)
    result = nbchat.map(
        '{{"word": "{w}"}}',
        [{"w": "x"}, {"w": 'bro"ken'}],
        model="m",
        schema=Reply,
        client=api.client(),
        via="batch",
        poll_interval=0.01,
    )
    assert result[0]["word"] == "x" and result[0]["error"] is None
    assert result[1]["word"] is None
    assert result[1]["error"].startswith("StructuredOutputError")


def test_an_output_file_past_a_limit_keeps_the_rows_read_and_marks_the_others_in_one_line():
    def cut_in_two(data: bytes) -> tuple[bytes, None]:
        lines = data.splitlines(keepends=True)  # the fake writes them last row first
        return b"".join([*lines[:3], b"x" * 10_000 + b"\n", *lines[3:]]), None

    api = FakeBatchAPI(steps=1, output=cut_in_two)
    rows = [{"t": t} for t in ("a", "b", "fail", "c", "d", "e")]
    result = nbchat.map(
        "{t}",
        rows,
        model="m",
        client=api.client(max_event_bytes=4096),
        via="batch",
        poll_interval=0.01,
    )
    assert [r["reply"] for r in result] == [None, None, None, "re: c", "re: d", "re: e"]
    assert result[2]["error"] == "Batch request failed (400, invalid_value): bad row"  # errors file
    for row in result[:2]:
        assert row["error"] == (
            "not in what was read of batch batch_1's output; file-2 was not read to its end: "
            "ResponseTooLargeError: The server's batch file file-2 has a line longer than the "
            "4 KiB limit (max_event_bytes); reading stopped there."
        )


def test_a_failed_batch_raises_with_the_servers_reasons():
    api = FakeBatchAPI(fail_batch=True)
    with pytest.raises(BatchError, match="no such model"):
        nbchat.map(
            "{a}", [{"a": 1}], model="m", client=api.client(), via="batch", poll_interval=0.01
        )


def test_a_server_without_the_batch_api_says_to_use_the_online_map():
    api = FakeBatchAPI(supported=False)
    with pytest.raises(BatchUnsupportedError, match="online"):
        nbchat.map("{a}", [{"a": 1}], model="m", client=api.client(), via="batch")
    assert api.calls == ["POST /files"]


def test_stopping_while_polling_cancels_the_batch_and_marks_the_rows():
    api = FakeBatchAPI(steps=10_000)

    async def main():
        job = MapJob("{a}", [{"a": 1}, {"a": 2}], model="m", client=api.client())
        run = mapping.MapRun(len(job))
        task = asyncio.ensure_future(mapping.execute(job, run, via="batch", poll_interval=0.01))
        while not api.batches:
            await asyncio.sleep(0.005)
        threading.Thread(target=run.stop, args=("Ctrl-C",)).start()
        await asyncio.wait_for(task, 2)
        return job.assemble(run.outcomes, run.unfinished)

    started = time.perf_counter()
    result = asyncio.run(main())
    assert time.perf_counter() - started < 2
    assert api.cancelled == ["batch_1"]
    assert all("stopped (Ctrl-C)" in r["error"] for r in result)
    assert all("batch_1 was cancelled" in r["error"] for r in result)


def batch_map(api: FakeBatchAPI, rows, **options):
    options.setdefault("poll_interval", 0.01)
    return nbchat.map("Say {t}", rows, model="m", client=api.client(), via="batch", **options)


ROWS = [{"t": word} for word in ("a", "b", "fail c", "d", "e")]
REPLIES = ["re: Say a", "re: Say b", None, "re: Say d", "re: Say e"]


def test_rows_past_batch_max_rows_are_split_into_jobs_run_at_once_and_merged_in_order():
    whole = batch_map(FakeBatchAPI(steps=2), ROWS)
    api = FakeBatchAPI(steps=2)
    split = batch_map(api, ROWS, batch_max_rows=2)
    assert len(api.uploads) == 3 and sorted(api.batches) == ["batch_1", "batch_2", "batch_3"]
    sizes = [len(api.files[b["input_file_id"]].splitlines()) for b in api.batches.values()]
    assert sizes == [2, 2, 1]
    assert [row["reply"] for row in split] == [row["reply"] for row in whole]
    assert [row["error"] for row in split] == [row["error"] for row in whole]
    assert split[1]["reply"] == "re: Say b" and split[4]["reply"] == "re: Say e"
    # Run at once: every job was looked at before any finished.
    first_done = min(i for i, call in enumerate(api.calls) if call.startswith("GET /files/"))
    assert {f"GET /batches/batch_{n}" for n in (1, 2, 3)} <= set(api.calls[:first_done])


def test_rows_past_batch_max_bytes_are_split_too():
    api = FakeBatchAPI(steps=1)
    line = len(
        '{"custom_id":"row-0","method":"POST","url":"/v1/chat/completions","body":'
        '{"model":"m","messages":[{"role":"user","content":"Say a"}]}}\n'
    )
    result = batch_map(api, ROWS[:2] + ROWS[3:], batch_max_bytes=2 * line + 5)
    assert len(api.batches) == 2
    inputs = [api.files[batch["input_file_id"]] for batch in api.batches.values()]
    assert [len(data.splitlines()) for data in inputs] == [2, 2]
    assert all(len(data) <= 2 * line + 5 for data in inputs)
    assert [row["reply"] for row in result] == ["re: Say a", "re: Say b", "re: Say d", "re: Say e"]


def test_a_failed_job_marks_its_own_rows_and_leaves_the_others():
    api = FakeBatchAPI(steps=2, fail_only=frozenset({"batch_2"}))
    result = batch_map(api, ROWS, batch_max_rows=2)
    assert [row["reply"] for row in result[:2]] == ["re: Say a", "re: Say b"]
    for row in result[2:4]:
        assert row["reply"] is None
        assert row["error"] == "The batch batch_2 failed: no such model (line 1)"
    assert result[4]["reply"] == "re: Say e"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"batch_max_rows": 0}, "batch_max_rows"),
        ({"batch_max_bytes": -5}, "batch_max_bytes"),
        ({"batch_max_rows": 2.5}, "batch_max_rows"),
        ({"batch_max_rows": True}, "batch_max_rows"),
    ],
)
def test_a_split_limit_below_1_is_one_line_before_anything_is_sent(options, named):
    api = FakeBatchAPI()
    with pytest.raises(nbchat.RequestValidationError, match=named) as info:
        batch_map(api, ROWS, **options)
    assert "\n" not in str(info.value)
    assert api.calls == []


def test_split_limits_are_for_batch_runs_only():
    with pytest.raises(nbchat.RequestValidationError, match="via='batch'"):
        nbchat.map("{t}", ROWS, model="m", client=FakeBatchAPI().client(), batch_max_rows=2)


def test_the_same_map_after_a_restart_picks_its_running_jobs_up_instead_of_starting_others():
    from nbchat.conversation import batchjob

    api = FakeBatchAPI(steps=3)

    async def started_then_lost():
        # A map that started its jobs, then the kernel died: nothing but the store remains.
        job = MapJob("Say {t}", ROWS, model="m", client=api.client())
        job.bind(job.client, "m")
        run = mapping.MapRun(len(job))
        parts = list(batchjob._parts(job, run, 2, batchjob.DEFAULT_MAX_BYTES))
        for positions, data in parts:
            await batchjob._Job(positions, data).start(job.client, batchjob._store())

    asyncio.run(started_then_lost())
    assert sorted(api.batches) == ["batch_1", "batch_2", "batch_3"]
    result = batch_map(api, ROWS, batch_max_rows=2)
    assert sorted(api.batches) == ["batch_1", "batch_2", "batch_3"]  # no job started again
    assert len(api.uploads) == 3
    assert [row["reply"] for row in result] == REPLIES
    # Done and collected, the jobs are still kept: running the map again pays for nothing.
    again = batch_map(api, ROWS, batch_max_rows=2)
    assert len(api.batches) == 3 and len(api.uploads) == 3
    assert [row["reply"] for row in again] == [row["reply"] for row in result]


def test_a_kept_job_the_server_no_longer_has_is_started_again():
    first = FakeBatchAPI(steps=1)
    batch_map(first, ROWS[:1])
    other = FakeBatchAPI(steps=1)  # the same endpoint, but it knows no batch_1
    other.batches = {}
    result = batch_map(other, ROWS[:1])
    assert result[0]["reply"] == "re: Say a"
    assert other.calls[:2] == ["GET /batches/batch_1", "POST /files"]


def test_output_lines_are_matched_to_rows_by_their_exact_custom_id():
    def hostile(stored: bytes) -> tuple[bytes, str | None]:
        lines = [json.loads(line) for line in stored.splitlines()]
        real = {line["custom_id"]: line for line in lines}
        forged = []
        for custom_id in ("row-01", "row-²", "row-+2", "row-99", "x-1"):
            fake = json.loads(json.dumps(real["row-0"]))
            fake["custom_id"] = custom_id
            fake["response"]["body"]["choices"][0]["message"]["content"] = "forged"
            forged.append(fake)
        # The forged lines first: they must not take any row's place.
        text = "".join(json.dumps(line) + "\n" for line in forged + lines)
        return text.encode(), None

    api = FakeBatchAPI(steps=1, output=hostile)
    with pytest.warns(UserWarning, match="5 lines of batch batch_1's output name no row"):
        result = batch_map(api, [{"t": "a"}, {"t": "b"}, {"t": "c"}])
    assert [row["reply"] for row in result] == ["re: Say a", "re: Say b", "re: Say c"]


@pytest.mark.parametrize(
    "counts",
    [
        {"completed": "many", "failed": None},
        {"completed": -3, "failed": 10**9},
        "all of them",
        None,
        {"completed": 1.5, "failed": True},
    ],
)
def test_no_request_counts_the_server_sends_can_end_a_run_without_its_rows(counts):
    class Odd(FakeBatchAPI):
        def _public(self, batch):
            public = super()._public(batch)
            public["request_counts"] = counts
            public["errors"] = {"data": 7}
            return public

    api = Odd(steps=3)
    result = batch_map(api, ROWS)
    assert [row["reply"] for row in result] == REPLIES


# -- offline ----------------------------------------------------------------------------------


def test_batch_file_writes_one_request_per_row_and_read_batch_output_reads_vllm_output(tmp_path):
    frame = pd.DataFrame({"text": ["good", "bad", "gone"]}, index=[7, 8, 9])
    path = nbchat.batch_file(
        "Review: {text}", frame, tmp_path / "in.jsonl", model="m", max_tokens=3
    )
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["row-0", "row-1", "row-2"]
    assert lines[1]["body"] == {
        "model": "m",
        "max_tokens": 3,
        "messages": [{"role": "user", "content": "Review: bad"}],
    }
    # What vLLM's batch runner writes: one line per request, errors inline.
    out = tmp_path / "out.jsonl"
    out.write_text(
        json.dumps(
            {
                "id": "vllm-1",
                "custom_id": "row-1",
                "response": {"status_code": 400, "request_id": "r"},
                "error": "prompt too long",
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "vllm-0",
                "custom_id": "row-0",
                "response": {
                    "status_code": 200,
                    "request_id": "r",
                    "body": completion("m", "nice"),
                },
                "error": None,
            }
        )
        + "\n"
    )
    result = nbchat.read_batch_output(out, frame)
    assert list(result.index) == [7, 8, 9]
    assert result.loc[7, "reply"] == "nice"
    assert result.loc[8, "error"] == "Batch request failed (400): prompt too long"
    assert result.loc[9, "error"] == (
        "missing from the batch output: no line with custom_id row-2 in out.jsonl"
    )


def test_read_batch_output_takes_the_error_file_too_and_a_schema(tmp_path):
    class Word(BaseModel):
        word: str

    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    ok = {
        "custom_id": "row-0",
        "response": {"status_code": 200, "body": completion("m", '{"word": "hi"}')},
        "error": None,
    }
    failed = {
        "custom_id": "row-1",
        "response": {
            "status_code": 429,
            "body": {"error": {"message": "quota", "code": "rate_limit_exceeded"}},
        },
        "error": None,
    }
    out.write_text(json.dumps(ok) + "\n")
    errors.write_text(json.dumps(failed) + "\n")
    result = nbchat.read_batch_output(out, [{}, {}, {}], errors, schema=Word)
    assert result[0]["word"] == "hi" and result[0]["error"] is None
    assert result[1]["error"] == "Batch request failed (429, rate_limit_exceeded): quota"
    assert result[2]["error"].endswith("in out.jsonl or errors.jsonl")


def test_lines_for_no_given_row_are_skipped_with_a_warning(tmp_path):
    out = tmp_path / "out.jsonl"
    stray = {
        "custom_id": "request-1",
        "response": {"status_code": 200, "body": completion("m", "x")},
        "error": None,
    }
    out.write_text(json.dumps(stray) + "\nnot json\n")
    with pytest.warns(UserWarning, match="1 lines name no row.*1 are not batch output"):
        result = nbchat.read_batch_output(out, [{"a": 1}])
    assert result[0]["error"].startswith("missing from the batch output")


def test_batch_file_needs_a_model_and_fits_requests_to_a_given_server(tmp_path):
    with pytest.raises(nbchat.RequestValidationError, match="model"):
        nbchat.batch_file("{a}", [{"a": 1}], tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
    from nbchat.local.adapt import profile as local_profile

    class Word(BaseModel):
        word: str

    client = nbchat.Client(
        api_key="", base_url="http://localhost:1/v1", server=local_profile("smol")
    )
    path = nbchat.batch_file(
        "{a}", [{"a": 1}], tmp_path / "local.jsonl", schema=Word, client=client
    )
    body = json.loads(path.read_text())["body"]
    assert body["model"] == "smol"  # the server's only model
    # The local server's adaptation: json_schema is sent as json_object with the schema.
    assert body["response_format"]["type"] == "json_object"


def test_a_bad_row_leaves_no_half_written_file(tmp_path):
    rows = [{"a": "x"}, {"a": None}]
    with pytest.raises(nbchat.RequestValidationError, match="row 1"):
        nbchat.batch_file("{a.upper()}", rows, tmp_path / "x.jsonl", model="m")
    assert list(tmp_path.iterdir()) == []
