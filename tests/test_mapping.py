from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
import warnings

import httpx
import pandas as pd
import pytest

import nbchat
from nbchat.conversation import mapping
from nbchat.conversation.mapjob import MapJob
from tests import storeutil
from tests.fakeserver import SECRET
from tests.loopserver import LoopServer, completion
from tests.signals import ctrl_c_raises


def loop_client(server: LoopServer, **options) -> nbchat.Client:
    options.setdefault("max_retries", 0)
    # An explicit transport: no proxy from the environment for a loopback server.
    return nbchat.Client(
        api_key=SECRET, base_url=server.base_url, transport=httpx.HTTPTransport(), **options
    )


def mock_client(handler, **options) -> nbchat.Client:
    options.setdefault("max_retries", 0)
    return nbchat.Client(
        api_key=SECRET,
        base_url="http://fake.test/v1",
        transport=httpx.MockTransport(handler),
        **options,
    )


def echo(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return httpx.Response(200, json=completion(body["model"], "re: " + _last(body)))


def _last(body: dict) -> str:
    return body["messages"][-1]["content"]


# -- results ----------------------------------------------------------------------------------


def test_a_dataframe_gives_a_dataframe_with_its_index_in_its_order():
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]}, index=[10, 20, 5, 7])

    async def slow_first(body, server):
        # Earlier rows answer later: the result must still follow the rows.
        await asyncio.sleep(0.02 * (4 - int(body["messages"][-1]["content"][-1])))
        return 200, {}, completion(body["model"], "re: " + _last(body))

    with LoopServer(handler=slow_first) as server:
        result = nbchat.map(
            "Say {text} {n}", frame, model="m", client=loop_client(server), progress=False
        )
    assert list(result.index) == [10, 20, 5, 7]
    assert list(result["reply"]) == ["re: Say a 1", "re: Say b 2", "re: Say c 3", "re: Say d 4"]
    assert (result["error"] == "").all()
    assert list(result.columns) == ["reply", "error", "finish_reason", "tokens", "latency"]
    assert list(result["tokens"]) == [7, 7, 7, 7]
    assert (result["latency"] > 0).all()
    # To the millisecond, and the table shows no "None" for the rows without an error.
    assert all(round(value, 3) == value for value in result["latency"])
    assert "None" not in result.to_string() and "None" not in result._repr_html_()


def test_a_list_gives_a_list_of_dicts_and_the_template_sees_each_row():
    rows = [{"city": "Paris", "country": "France"}, {"city": "Lima", "country": "Peru"}]
    result = nbchat.map(
        "Is {city} in {country.upper()}?", rows, model="m", client=mock_client(echo), progress=False
    )
    assert [r["reply"] for r in result] == [
        "re: Is Paris in FRANCE?",
        "re: Is Lima in PERU?",
    ]
    assert set(result[0]) == {"reply", "error", "finish_reason", "tokens", "latency"}


def test_plain_items_are_row_and_json_braces_stay():
    sent = []

    def handler(request):
        sent.append(_last(json.loads(request.content)))
        return echo(request)

    nbchat.map(
        'Answer {"label": ...} for: {row}', ["x", "y"], model="m", client=mock_client(handler)
    )
    assert sent == ['Answer {"label": ...} for: x', 'Answer {"label": ...} for: y']


def test_a_prompt_function_may_return_text_or_messages():
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return echo(request)

    def prompt(row):
        if row["n"] == 1:
            return f"one {row['n']}"
        return [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": f"two {row['n']}"},
        ]

    result = nbchat.map(
        prompt, [{"n": 1}, {"n": 2}], model="m", system="Be brief.", client=mock_client(handler)
    )
    assert [r["reply"] for r in result] == ["re: one 1", "re: two 2"]
    assert bodies[1]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]


def test_request_fields_and_system_reach_every_request():
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return echo(request)

    nbchat.map(
        "{row}",
        ["a", "b"],
        model="m",
        system="S",
        temperature=0.2,
        max_tokens=5,
        client=mock_client(handler),
    )
    for body in bodies:
        assert body["model"] == "m"
        assert body["temperature"] == 0.2
        assert body["max_tokens"] == 5
        assert body["messages"][0] == {"role": "system", "content": "S"}
        assert "stream" not in body


def test_a_schema_adds_one_column_per_field_and_a_bad_reply_is_that_rows_error():
    from pydantic import BaseModel

    class Sentiment(BaseModel):
        label: str
        score: float

    def handler(request):
        body = json.loads(request.content)
        assert body["response_format"]["type"] == "json_schema"
        text = _last(body)
        reply = "not json" if "bad" in text else json.dumps({"label": text, "score": 0.5})
        return httpx.Response(200, json=completion("m", reply))

    frame = pd.DataFrame({"t": ["good", "bad", "fine"]})
    result = nbchat.map("{t}", frame, model="m", schema=Sentiment, client=mock_client(handler))
    assert list(result.columns) == [
        "reply",
        "error",
        "label",
        "score",
        "finish_reason",
        "tokens",
        "latency",
    ]
    assert list(result["label"][[0, 2]]) == ["good", "fine"]
    assert pd.isna(result.loc[1, "label"])
    assert result.loc[1, "error"].startswith("StructuredOutputError: the reply is not valid JSON")
    assert result.loc[1, "reply"] == "not json"


def test_empty_rows_give_an_empty_result_and_send_nothing(monkeypatch):
    def refuse():
        raise AssertionError("no client should be made for no rows")

    monkeypatch.setattr("nbchat.conversation.endpoint.default_client", refuse)
    frame = pd.DataFrame({"text": []})
    result = nbchat.map("{text}", frame, model="m")
    assert list(result.columns) == ["reply", "error", "finish_reason", "tokens", "latency"]
    assert len(result) == 0
    assert nbchat.map("{text}", [], model="m") == []
    assert asyncio.run(nbchat.amap("{text}", [], model="m")) == []


# -- bad input: one line, nothing sent --------------------------------------------------------


def never(request):
    raise AssertionError(f"nothing should be sent: {request.url}")


@pytest.mark.parametrize("concurrency", [0, -3, 1.5, True])
def test_concurrency_below_one_or_not_whole_is_refused(concurrency):
    with pytest.raises(nbchat.RequestValidationError, match="concurrency"):
        nbchat.map("{a}", [{"a": 1}], concurrency=concurrency, client=mock_client(never))


def test_a_template_naming_a_missing_column_names_it():
    frame = pd.DataFrame({"text": ["a"], "lang": ["en"]})
    with pytest.raises(nbchat.RequestValidationError) as info:
        nbchat.map("Translate {txt} into {lang}", frame, model="m", client=mock_client(never))
    message = str(info.value)
    assert "{txt}" in message and "text, lang" in message
    assert "\n" not in message


def test_a_missing_key_in_a_later_row_of_a_list_is_found_before_sending():
    rows = [{"a": 1, "b": 2}, {"a": 3}]
    with pytest.raises(nbchat.RequestValidationError, match=r"\{b\}.*row 1"):
        nbchat.map("{a} {b}", rows, model="m", client=mock_client(never))


def test_a_schema_that_cannot_be_strict_is_refused_before_sending():
    schema = {"type": "object", "additionalProperties": {"type": "string"}}
    with pytest.raises(nbchat.RequestValidationError, match="strict"):
        nbchat.map("{a}", [{"a": 1}], model="m", schema=schema, client=mock_client(never))


def test_a_bad_request_field_is_refused_before_sending():
    with pytest.raises(nbchat.RequestValidationError, match="temperature"):
        nbchat.map("{a}", [{"a": 1}], model="m", temperature=9, client=mock_client(never))


def test_stream_and_messages_are_not_fields_of_a_map():
    with pytest.raises(nbchat.RequestValidationError, match="stream"):
        nbchat.map("{a}", [{"a": 1}], model="m", stream=True, client=mock_client(never))
    with pytest.raises(nbchat.RequestValidationError, match="via"):
        nbchat.map("{a}", [{"a": 1}], model="m", via="carrier pigeon", client=mock_client(never))
    with pytest.raises(nbchat.RequestValidationError, match="poll_interval"):
        nbchat.map("{a}", [{"a": 1}], model="m", poll_interval=1, client=mock_client(never))


def test_rows_that_are_not_rows_are_refused():
    with pytest.raises(nbchat.RequestValidationError, match="rows"):
        nbchat.map("{a}", "abc", model="m", client=mock_client(never))
    with pytest.raises(nbchat.RequestValidationError, match="rows"):
        nbchat.map("{a}", {"a": 1}, model="m", client=mock_client(never))


def test_with_no_model_the_servers_only_model_is_used_and_several_are_listed():
    def one_model(request):
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "only"}]})
        return echo(request)

    result = nbchat.map("{a}", [{"a": 1}], client=mock_client(one_model))
    assert result[0]["reply"] == "re: 1"

    def two_models(request):
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "x"}, {"id": "y"}]})
        raise AssertionError("nothing should be sent")

    with pytest.raises(nbchat.RequestValidationError, match="x, y"):
        nbchat.map("{a}", [{"a": 1}], client=mock_client(two_models))


# -- failures stay in their row ---------------------------------------------------------------


def test_a_row_that_fails_after_its_retries_records_its_error_and_the_others_go_on():
    attempts = {"bad": 0}

    def handler(request):
        text = _last(json.loads(request.content))
        if text == "bad":
            attempts["bad"] += 1
            return httpx.Response(500, json={"error": {"message": "boom", "type": "server_error"}})
        return echo(request)

    client = nbchat.AsyncClient(
        api_key=SECRET,
        base_url="http://fake.test/v1",
        transport=httpx.MockTransport(handler),
        max_retries=2,
    )

    async def no_wait(seconds):
        return None

    client.retry_wait = no_wait
    result = nbchat.map("{row}", ["ok1", "bad", "ok2"], model="m", client=client)
    assert [r["reply"] for r in result] == ["re: ok1", None, "re: ok2"]
    assert result[1]["error"] == "InternalServerError (500): boom (after 2 retries)"
    assert attempts["bad"] == 3


def test_errors_never_carry_the_key():
    def handler(request):
        message = f"Incorrect API key provided: {SECRET}"
        return httpx.Response(401, json={"error": {"message": message, "type": "invalid"}})

    result = nbchat.map("{row}", ["a"], model="m", client=mock_client(handler))
    assert result[0]["error"].startswith("AuthenticationError (401)")
    assert SECRET not in result[0]["error"]


# -- concurrency and rate limits, against a real loopback server ------------------------------


def test_at_most_concurrency_requests_are_in_flight_and_each_row_is_sent_once():
    rows = [{"i": i} for i in range(40)]
    with LoopServer(latency=0.03) as server:
        result = nbchat.map("row {i}", rows, model="m", concurrency=6, client=loop_client(server))
    assert server.max_in_flight == 6
    assert sorted(server.prompts) == sorted(f"row {i}" for i in range(40))
    assert len(server.prompts) == 40
    assert [r["reply"] for r in result] == [f"re: row {i}" for i in range(40)]


def test_many_in_flight_are_spread_over_pools_and_still_capped():
    rows = [{"i": i} for i in range(120)]
    with LoopServer(latency=0.05) as server:
        nbchat.map("row {i}", rows, model="m", concurrency=20, client=loop_client(server))
    # 20 in flight through 3 pools of 7 connections: never more than 20 requests at once, and
    # each connection reused (no new connection per request).
    assert server.max_in_flight == 20
    assert server.connections <= 21
    assert len(server.prompts) == 120


def test_429s_slow_the_run_down_and_every_row_still_arrives_once():
    # The server takes 2 requests at once and answers 429 (retry after 5 ms) beyond that.
    state = {"busy": 0}

    async def two_at_a_time(body, server):
        if state["busy"] >= 2:
            server.throttled += 1
            return 429, {"retry-after-ms": "5"}, {"error": {"message": "slow down"}}
        state["busy"] += 1
        try:
            await asyncio.sleep(0.01)
        finally:
            state["busy"] -= 1
        server.prompts.append(_last(body))
        return 200, {}, completion("m", "re: " + _last(body))

    rows = [{"i": i} for i in range(60)]
    with LoopServer(handler=two_at_a_time) as server:
        job = MapJob(
            "{i}", rows, model="m", concurrency=16, client=loop_client(server, max_retries=30)
        )
        run = mapping.run_blocking(job)
    assert run.errors == 0 and run.done == 60
    assert sorted(server.prompts, key=int) == [str(i) for i in range(60)]  # no row twice
    assert server.throttled > 0
    assert run.limiter is not None and run.limiter.lowest < 16


def test_a_row_waiting_to_retry_gives_its_slot_to_the_next_rows_and_retries_before_new_ones():
    # Row 0 is answered 429 "retry after 150 ms" once; the others take 10 ms. One at a time:
    # while row 0 waits, rows 1, 2… are sent, and its retry goes before the rows not yet sent.
    seen = []

    async def handler(body, server):
        text = _last(body)
        seen.append(text)
        if text == "0" and seen.count("0") == 1:
            return 429, {"retry-after-ms": "150"}, {"error": {"message": "slow down"}}
        await asyncio.sleep(0.01)
        return 200, {}, completion("m", "re: " + text)

    rows = [{"i": i} for i in range(40)]
    with LoopServer(handler=handler) as server:
        client = loop_client(server, max_retries=1)
        result = nbchat.map("{i}", rows, model="m", concurrency=1, client=client)
    assert server.max_in_flight == 1
    assert [r["reply"] for r in result] == [f"re: {i}" for i in range(40)]
    assert seen.count("0") == 2 and len(seen) == 41  # each row once, row 0 once more
    retried_after = seen.index("0", 1)
    assert 3 <= retried_after < 30  # rows went while it waited, and not all of them
    assert seen[retried_after + 1 :] == [str(i) for i in range(retried_after, 40)]


def test_a_stop_while_rows_wait_to_retry_sends_no_retry_and_says_they_were_in_flight():
    arrivals: list[float] = []

    async def handler(body, server):
        arrivals.append(time.monotonic())
        return 429, {"retry-after-ms": "300"}, {"error": {"message": "slow down"}}

    async def main(server):
        job = MapJob(
            "{i}", rows, model="m", concurrency=2, client=loop_client(server, max_retries=3)
        )
        run = mapping.MapRun(len(job))
        task = asyncio.ensure_future(mapping.execute(job, run))
        while server.requests < 4:  # two waves of two, all waiting to retry
            await asyncio.sleep(0.005)
        stopped = time.monotonic()
        run.stop("the stop button")
        await asyncio.wait_for(task, 2)
        await asyncio.sleep(0.4)  # past the retry-after
        return job, run, stopped

    rows = [{"i": i} for i in range(10)]
    with LoopServer(handler=handler) as server:
        job, run, stopped = asyncio.run(main(server))
    # Requests already on the wire at the stop may arrive just after it; a retry would come
    # 300 ms after its 429. None came.
    assert arrivals and max(arrivals) < stopped + 0.15
    result = job.assemble(run.outcomes, run.unfinished)
    waiting = [r["error"] for r in result if "in flight" in r["error"]]
    assert len(waiting) >= 2
    assert all(r["reply"] is None for r in result)
    assert run.limiter is not None and run.limiter.in_flight == 0


def test_x_ratelimit_remaining_headers_pace_the_run_before_any_429():
    # The server allows 10 requests per 50 ms window and says so in the headers, as OpenAI
    # does; it never answers 429 here, it counts the requests that would have been refused.
    window = {"start": None, "used": 0, "first": True}
    over = {"first window": 0, "later": 0}

    def handler(body, server):
        now = time.monotonic()
        if window["start"] is None:
            window["start"] = now
        elif now - window["start"] > 0.05:
            window.update(start=now, used=0, first=False)
        window["used"] += 1
        if window["used"] > 10:
            over["first window" if window["first"] else "later"] += 1
        headers = {
            "x-ratelimit-remaining-requests": str(max(0, 10 - window["used"])),
            "x-ratelimit-reset-requests": "50ms",
        }
        return 200, headers, completion("m", "ok")

    rows = [{"i": i} for i in range(150)]
    with LoopServer(handler=handler) as server:
        job = MapJob("{i}", rows, model="m", concurrency=32, client=loop_client(server))
        run = mapping.run_blocking(job)
    assert run.errors == 0 and run.done == 150
    # Before the first answer nothing is known: the first 32 go out at once. After that the
    # run keeps (nearly) within the window.
    assert over["first window"] == 22
    assert over["later"] <= 12
    assert run.limiter is not None and run.limiter.throttled > 0


# -- stopping ---------------------------------------------------------------------------------


def test_ctrl_c_returns_the_rows_done_with_a_warning_and_sends_nothing_after_it():
    rows = [{"i": i} for i in range(400)]
    stopped_at = []

    with LoopServer(latency=0.02) as server:
        client = loop_client(server)

        def interrupt_later():
            while server.requests < 20:
                time.sleep(0.005)
            stopped_at.append(server.requests)
            # A real SIGINT, as Ctrl-C sends: it wakes the main thread from its wait.
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

        threading.Thread(target=interrupt_later, daemon=True).start()
        with ctrl_c_raises(), pytest.warns(UserWarning, match=r"stopped \(Ctrl-C\)"):
            result = nbchat.map("{i}", rows, model="m", concurrency=4, client=client)
        sent_at_return = server.requests
        time.sleep(0.2)
        assert server.requests == sent_at_return  # nothing starts after the stop
    assert sent_at_return <= stopped_at[0] + 4
    done = [r for r in result if r["error"] is None]
    not_run = [r for r in result if r["error"] is not None]
    assert len(result) == 400
    assert 16 <= len(done) < 400
    assert all(r["error"].startswith("not run: the map was stopped (Ctrl-C)") for r in not_run)
    assert all(r["reply"] is None for r in not_run)


def test_a_stop_from_another_thread_stops_amap_and_keeps_the_rows_done():
    rows = [{"i": i} for i in range(300)]

    async def main(server):
        job = MapJob("{i}", rows, model="m", concurrency=4, client=loop_client(server))
        run = mapping.MapRun(len(job))
        task = asyncio.ensure_future(mapping.execute(job, run))
        while run.done < 10:
            await asyncio.sleep(0.005)
        threading.Thread(target=run.stop, args=("the stop button",)).start()
        await asyncio.wait_for(task, 2)
        return job, run

    with LoopServer(latency=0.02) as server:
        job, run = asyncio.run(main(server))
    result = job.assemble(run.outcomes, run.unfinished)
    assert run.stop_reason == "the stop button"
    assert 10 <= run.done < 300
    errors = [r["error"] for r in result if r["error"]]
    assert errors and all("stopped (the stop button)" in e for e in errors)


def test_cancelling_amap_returns_the_partial_result_with_a_warning():
    rows = [{"i": i} for i in range(300)]

    async def main(server):
        task = asyncio.ensure_future(
            nbchat.amap("{i}", rows, model="m", concurrency=4, client=loop_client(server))
        )
        while server.requests < 10:
            await asyncio.sleep(0.005)
        task.cancel()  # what interrupting an awaiting Jupyter cell does
        return await task

    with LoopServer(latency=0.02) as server, pytest.warns(UserWarning, match="stopped"):
        result = asyncio.run(main(server))
    assert len(result) == 300
    assert any(r["error"] is None for r in result)
    assert any("in flight" in (r["error"] or "") for r in result)


# -- event loops ------------------------------------------------------------------------------


def test_map_works_inside_a_running_event_loop():
    async def inside_a_notebook():
        # Jupyter runs cells inside its loop: a blocking map must not try to re-enter it.
        return nbchat.map("{row}", ["a", "b"], model="m", client=mock_client(echo))

    result = asyncio.run(inside_a_notebook())
    assert [r["reply"] for r in result] == ["re: a", "re: b"]


def test_amap_awaits_on_the_running_loop_with_a_given_async_client():
    client = nbchat.AsyncClient(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(echo)
    )

    async def main():
        result = await nbchat.amap("{row}", ["a", "b", "c"], model="m", client=client)
        # The caller's client is still open: map does not close what it was given.
        await client.create(model="m", messages=[{"role": "user", "content": "still open"}])
        await client.aclose()
        return result

    result = asyncio.run(main())
    assert [r["reply"] for r in result] == ["re: a", "re: b", "re: c"]


def test_map_and_amap_return_the_same_result():
    rows = [{"x": i} for i in range(5)]
    sync = nbchat.map("v{x}", rows, model="m", client=mock_client(echo))
    asynchronous = asyncio.run(nbchat.amap("v{x}", rows, model="m", client=mock_client(echo)))
    strip = [{k: v for k, v in r.items() if k != "latency"} for r in sync]
    assert strip == [{k: v for k, v in r.items() if k != "latency"} for r in asynchronous]


def test_the_progress_bar_counts_rows_errors_and_tokens_in_text_mode(capsys):
    def handler(request):
        if _last(json.loads(request.content)) == "bad":
            return httpx.Response(400, json={"error": {"message": "no", "type": "invalid"}})
        return echo(request)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbchat.map(
            "{row}", ["a", "bad", "c"], model="m", client=mock_client(handler), progress="text"
        )
    err = capsys.readouterr().err
    assert "3/3" in err
    assert "1 error, 14 tokens" in err


# -- in a real Jupyter kernel -----------------------------------------------------------------


def _kernel_run(kc, code, *, on_message=None, timeout=60):
    """Run ``code`` in the kernel; feed iopub messages to ``on_message``; return stream text."""
    import queue

    msg_id = kc.execute(code)
    text = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if on_message is not None:
            on_message(msg)
        if kind == "stream":
            text.append(msg["content"]["text"])
        elif kind == "error":
            text.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(text)
    raise AssertionError(f"the kernel did not finish: {code}")


def test_in_a_jupyter_kernel_the_stop_button_and_the_interrupt_both_keep_the_rows_done():
    jupyter_client = pytest.importorskip("jupyter_client.manager")
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    manager, kc = jupyter_client.start_new_kernel(kernel_name="python3", env=env)
    try:
        _kernel_run(
            kc,
            "import httpx, nbchat\n"
            "from tests.loopserver import LoopServer\n"
            "server = LoopServer(latency=0.05).start()\n"
            "client = nbchat.Client(api_key='k', base_url=server.base_url,"
            " transport=httpx.HTTPTransport())\n"
            "rows = [{'i': i} for i in range(400)]",
        )

        # await amap: the bar has a Stop button, and a click reaches the kernel.
        def click_stop(msg):
            data = msg["content"].get("data", {}) if msg["msg_type"] == "comm_open" else {}
            if data.get("state", {}).get("_model_name") == "ButtonModel":
                time.sleep(0.5)
                click = {"method": "custom", "content": {"event": "click"}}
                content = {"comm_id": msg["content"]["comm_id"], "data": click}
                kc.session.send(kc.shell_channel.socket, kc.session.msg("comm_msg", content))

        text = _kernel_run(
            kc,
            "result = await nbchat.amap('{i}', rows, model='m', concurrency=2, client=client)",
            on_message=click_stop,
        )
        assert "stopped (the stop button)" in text
        counts = _kernel_run(kc, "print(sum(r['error'] is None for r in result), len(result))")
        done, total = (int(n) for n in counts.split())
        assert total == 400 and 0 < done < 400

        # A blocking map: interrupting the kernel (■, or I,I) returns the rows done.
        timers: list[threading.Timer] = []

        def interrupt_soon(msg):
            # Once, when the bar appears (the bar is several widgets, so several messages).
            if msg["msg_type"] == "comm_open" and not timers:
                timers.append(threading.Timer(0.5, manager.interrupt_kernel))
                timers[0].start()

        text = _kernel_run(
            kc,
            "result = nbchat.map('{i}', rows, model='m', concurrency=2, client=client)",
            on_message=interrupt_soon,
        )
        assert "stopped (Ctrl-C)" in text and "KeyboardInterrupt" not in text
        counts = _kernel_run(kc, "print(sum(r['error'] is None for r in result), len(result))")
        done, total = (int(n) for n in counts.split())
        assert total == 400 and 0 < done < 400
    finally:
        kc.stop_channels()
        manager.shutdown_kernel(now=True)


# -- every row through the store's door ---------------------------------------------------------


fresh_store = storeutil.fresh_store
store_shell = storeutil.store_shell


def _openai_client(handle, **options) -> nbchat.Client:
    """A MockTransport server behind OpenAI's URL: rows are priced."""
    options.setdefault("max_retries", 0)
    return nbchat.Client(
        api_key=SECRET,
        base_url="https://api.openai.com/v1",
        transport=httpx.MockTransport(handle),
        **options,
    )


def _echo(sent: list):
    def handle(request):
        body = json.loads(request.content)
        sent.append(body)
        said = body["messages"][-1]["content"]
        return httpx.Response(200, json=completion("gpt-4.1-mini", f"re: {said}", tokens=110))

    return handle


def test_every_map_row_is_logged_with_its_session_model_and_cost(fresh_store, store_shell):
    sent: list = []
    rows = [{"x": i} for i in range(10)]
    before = len(nbchat.log())
    nbchat.map(
        "Say {x}",
        rows,
        model="gpt-4.1-mini",
        client=_openai_client(_echo(sent)),
        concurrency=4,
        progress=False,
    )
    logged = nbchat.log(session="map")
    assert len(nbchat.log()) == before + 10 and len(logged) == 10
    assert set(logged["model"]) == {"gpt-4.1-mini"} and (logged["cost"] > 0).all()
    assert sorted(logged["prompt"]) == sorted(f"Say {i}" for i in range(10))
    usage = nbchat.store.log.usage(session="map")
    assert usage["exchanges"].sum() == 10 and usage["cost"].sum() > 0
    store_shell.run_line_magic("chat", "usage")
    shown = "".join(str(o.get("text/plain", "")) for o in store_shell.publisher.outputs)
    assert "map" in shown


def test_a_map_recorded_to_a_cassette_replays_offline_with_no_connection(
    fresh_store, tmp_path, monkeypatch
):
    tape = tmp_path / "map.json"
    monkeypatch.setenv("NBCHAT_CASSETTE", str(tape))
    monkeypatch.setenv("NBCHAT_REPLAY", "record")
    rows = [{"x": i} for i in range(12)]
    with LoopServer() as server:
        recorded = nbchat.map(
            "Say {x}", rows, model="m", client=loop_client(server), concurrency=4, progress=False
        )
        assert server.requests == 12
    assert len(json.loads(tape.read_text())["interactions"]) == 12
    monkeypatch.setenv("NBCHAT_REPLAY", "replay")
    from nbchat.store import replay

    replay._cassettes.clear()

    def refuse(request):
        raise AssertionError(f"replay connected to {request.url}")

    replayed = nbchat.map(
        "Say {x}",
        rows,
        model="m",
        client=nbchat.Client(
            api_key=SECRET, base_url=server.base_url, transport=httpx.MockTransport(refuse)
        ),
        concurrency=4,
        progress=False,
    )
    assert [r["reply"] for r in replayed] == [r["reply"] for r in recorded]
    assert all(r["error"] is None for r in replayed)


def test_a_map_run_again_with_cache_sends_only_the_rows_that_never_arrived(fresh_store):
    sent: list = []
    handle = _echo(sent)
    stopped = threading.Event()

    def flaky(request):
        # Rows 5.. fail the first time (as if the kernel died before they came back).
        body = json.loads(request.content)
        if int(body["messages"][-1]["content"].split()[-1]) >= 5 and not stopped.is_set():
            return httpx.Response(500, json={"error": {"message": "gone", "type": "server_error"}})
        return handle(request)

    client = _openai_client(flaky)
    rows = [{"x": i} for i in range(10)]
    first = nbchat.map(
        "Say {x}", rows, model="gpt-4.1-mini", client=client, concurrency=2, progress=False
    )
    assert [r["error"] is None for r in first] == [True] * 5 + [False] * 5
    stopped.set()
    sent.clear()
    again = nbchat.map(
        "Say {x}",
        rows,
        model="gpt-4.1-mini",
        client=client,
        concurrency=2,
        progress=False,
        cache=True,
    )
    assert sorted(b["messages"][-1]["content"] for b in sent) == [f"Say {i}" for i in range(5, 10)]
    assert [r["reply"] for r in again] == [f"re: Say {i}" for i in range(10)]


def test_resume_says_how_many_rows_came_from_the_store(fresh_store, capsys):
    sent: list = []
    client = _openai_client(_echo(sent))
    rows = [{"x": i} for i in range(6)]
    nbchat.map("Say {x}", rows[:4], model="gpt-4.1-mini", client=client, progress=False)
    sent.clear()
    nbchat.map("Say {x}", rows, model="gpt-4.1-mini", client=client, progress=False, resume=True)
    assert len(sent) == 2
    assert "4 of 6 rows came from the store" in capsys.readouterr().out


def test_resume_without_a_store_is_refused_before_anything_is_sent(fresh_store, monkeypatch):
    monkeypatch.setenv("NBCHAT_STORE", "off")
    with pytest.raises(nbchat.RequestValidationError, match="resume=True needs the store"):
        nbchat.map(
            "Say {x}",
            [{"x": 1}],
            model="m",
            client=mock_client(lambda r: None),
            resume=True,
            progress=False,
        )
