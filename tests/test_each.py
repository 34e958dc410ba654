from __future__ import annotations

import json
import re

import httpx
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from pydantic import BaseModel

import nbchat
from nbchat.conversation import sessions as _sessions
from nbchat.notebook.run import ChatCellError
from tests.fakeserver import SECRET, sse_events
from tests.loopserver import completion
from tests.test_magics import RecordingPublisher


@pytest.fixture
def shell(monkeypatch):
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    publisher = RecordingPublisher(shell=ip)
    monkeypatch.setattr(ip, "display_pub", publisher)
    ip.run_line_magic("config", "Chat.display = 'live'")
    ip.run_line_magic("config", "Chat.model = 'fake-model'")
    requests: list[dict] = []

    def handler(request):
        body = json.loads(request.content)
        requests.append(body)
        model = body["model"]
        if model == "gone":
            return httpx.Response(404, json={"error": {"message": "no such model", "type": "x"}})
        text = body["messages"][-1]["content"]
        if text.startswith("{"):
            reply = completion(model, text)
        else:
            reply = completion(model, f"{model}: {text}")
        if body.get("stream"):
            return httpx.Response(200, content=b"".join(sse_events(reply)))
        return httpx.Response(200, json=reply)

    client = nbchat.Client(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(handler)
    )
    monkeypatch.setattr(_sessions, "client_for", lambda settings: client)
    _sessions._sessions.clear()
    ip.requests = requests
    ip.publisher = publisher
    ip.user_ns["reviews"] = pd.DataFrame(
        {"text": ["great", "awful", "fine"]}, index=["r1", "r2", "r3"]
    )
    yield ip
    _sessions._sessions.clear()
    for name in ("reviews", "out", "lang", "Verdict", "body"):
        ip.user_ns.pop(name, None)
    ip.run_line_magic("unload_ext", "nbchat")
    ip.config.pop("Chat", None)


def test_each_sends_the_cell_once_per_row_and_stores_the_frame(shell, capsys):
    shell.run_cell_magic("chat", "--each reviews -o out -t 0 --max-tokens 5", "Classify: {text}\n")
    out = shell.user_ns["out"]
    assert list(out.index) == ["r1", "r2", "r3"]
    assert list(out["reply"]) == [
        "fake-model: Classify: great",
        "fake-model: Classify: awful",
        "fake-model: Classify: fine",
    ]
    assert all(r["temperature"] == 0 and r["max_tokens"] == 5 for r in shell.requests)
    assert all("stream" not in r for r in shell.requests)
    assert "3 rows: 3 replies, 0 errors; the result is in out." in capsys.readouterr().out


def test_each_without_out_returns_the_result_and_uses_notebook_variables(shell):
    shell.user_ns["lang"] = "French"
    result = shell.run_cell_magic("chat", "--each reviews -s 'Be brief.'", "{text} in {lang}")
    assert result.loc["r1", "reply"] == "fake-model: great in French"
    assert shell.requests[0]["messages"][0] == {"role": "system", "content": "Be brief."}


def test_each_dry_run_shows_the_first_rows_request_and_the_count(shell, capsys):
    shell.run_cell_magic("chat", "--each reviews --dry-run -o body", "Classify: {text}")
    assert shell.requests == []
    shown = shell.publisher.text()
    assert "row 1 of 3" in shown and "Classify: great" in shown
    assert "3 rows would be sent" in capsys.readouterr().out
    assert shell.user_ns["body"]["messages"] == [{"role": "user", "content": "Classify: great"}]


def test_each_with_a_schema_adds_its_columns(shell):
    class Verdict(BaseModel):
        label: str

    shell.user_ns["Verdict"] = Verdict
    shell.run_cell_magic("chat", "--each reviews --schema Verdict -o out", '{{"label": "{text}"}}')
    out = shell.user_ns["out"]
    assert list(out["label"]) == ["great", "awful", "fine"]
    assert shell.requests[0]["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("line", "cell", "message"),
    [
        ("--each reviews", "Classify {txt}", "{txt}, which is not a column"),
        ("--each nothing", "Classify {text}", "Rows 'nothing' is not defined"),
        ("--each nothing.iloc[1:]", "{text}", "--each nothing.iloc[1:]: NameError: name 'nothing'"),
        ("--each reviews[", "{text}", "--each takes a variable or an expression, not 'reviews['"),
        ("--each reviews --tools f", "{text}", "--tools"),
        ("--each reviews --session other", "{text}", "--session does not apply"),
        ("--each reviews", "   \n", "The prompt is empty"),
        ("--each reviews --compare a,b", "{text}", "not both"),
        ("--each reviews --audio rec", "{text}", "--audio does not apply"),
        ("--each reviews --file a.pdf", "{text}", "--file does not apply"),
        ("--each reviews --speak alloy", "{text}", "--speak"),
        ("--compare a,b --allowed-tools f", "{text}", "--allowed-tools does not apply"),
    ],
)
def test_each_mistakes_are_usage_errors_and_nothing_is_sent(shell, line, cell, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        shell.run_cell_magic("chat", line, cell)
    assert shell.requests == []


def test_each_concurrency_is_the_maps_and_the_run_is_online(shell, monkeypatch):
    from nbchat.conversation import mapping

    seen = []
    real = mapping.run_blocking

    def watched(job, **options):
        seen.append((job.concurrency, options["via"], options["poll_interval"]))
        return real(job, **options)

    monkeypatch.setattr(mapping, "run_blocking", watched)
    shell.run_cell_magic("chat", "--each reviews --concurrency 2 -o out", "Classify: {text}")
    assert seen == [(2, "online", None)]
    assert list(shell.user_ns["out"]["error"]) == ["", "", ""]
    assert len(shell.requests) == 3


def test_each_concurrency_in_the_dry_run(shell, capsys):
    shell.run_cell_magic("chat", "--each reviews --dry-run --concurrency 3", "{text}")
    assert "3 rows would be sent, at most 3 at a time." in capsys.readouterr().out
    shell.run_cell_magic("chat", "--each reviews --dry-run", "{text}")
    assert "at most 16 at a time" in capsys.readouterr().out


def test_each_via_batch_sends_one_batch_job_polled_every_poll_interval(shell, monkeypatch):
    from tests.fakebatch import FakeBatchAPI

    api = FakeBatchAPI(steps=2)
    monkeypatch.setattr(_sessions, "client_for", lambda settings: api.client())
    shell.run_cell_magic(
        "chat", "--each reviews --via batch --poll-interval 0.01 -o out", "Classify: {text}"
    )
    out = shell.user_ns["out"]
    assert list(out.index) == ["r1", "r2", "r3"]
    assert out.loc["r2", "reply"] == "re: Classify: awful"
    assert shell.requests == []  # not one online request
    assert api.calls.count("POST /batches") == 1
    assert sum(call.startswith("GET /batches/") for call in api.calls) == 2


def test_each_via_batch_dry_run_says_how_it_would_be_sent(shell, capsys):
    shell.run_cell_magic("chat", "--each reviews --dry-run --via batch", "{text}")
    assert "3 rows would be sent as one Batch API job, its status looked at every 10 s." in (
        capsys.readouterr().out
    )
    assert shell.requests == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--each reviews --concurrency 0", "--concurrency must be a whole number of 1 or more"),
        ("--each reviews --concurrency many", "argument --concurrency: invalid int value"),
        ("--each reviews --via carrier", "--via must be 'online' or 'batch', not 'carrier'"),
        ("--each reviews --poll-interval 5", "--poll-interval goes with --via batch"),
        ("--each reviews --via batch --poll-interval 0", "--poll-interval must be more than 0"),
        ("--each reviews --via batch --poll-interval soon", "invalid float value"),
        ("--each reviews --via batch --concurrency 4", "--concurrency is for the online map"),
        ("--concurrency 4", "--concurrency goes with --each DF"),
        ("--via batch", "--via goes with --each DF"),
        ("--compare a,b --poll-interval 3", "--poll-interval goes with --each DF"),
    ],
)
def test_each_sending_options_are_checked_in_one_line_before_anything_is_sent(shell, line, message):
    with pytest.raises(UsageError, match=message) as info:
        shell.run_cell_magic("chat", line, "Classify: {text}")
    assert "\n" not in str(info.value)
    assert shell.requests == []


def test_compare_line_sends_to_each_model_side_by_side(shell):
    shell.run_line_magic("chat", "compare -m alpha -m beta -o out What is 2+2?")
    assert sorted(r["model"] for r in shell.requests) == ["alpha", "beta"]
    assert shell.user_ns["out"] == ["alpha: What is 2+2?", "beta: What is 2+2?"]
    html = [o["data"]["text/html"] for o in shell.publisher.outputs if "text/html" in o["data"]][-1]
    assert "alpha" in html and "beta" in html and "finish: stop" in html


def test_compare_cell_form_and_settings_apply_to_every_column(shell):
    shell.run_cell_magic("chat", "--compare alpha,beta -t 0.3 --no-stream", "Hello")
    assert [r["temperature"] for r in shell.requests] == [0.3, 0.3]
    assert all("stream" not in r for r in shell.requests)


def test_a_prompt_that_starts_with_compare_is_just_a_prompt(shell):
    shell.run_line_magic("chat", "compare apples and oranges")
    assert shell.requests[0]["messages"][-1]["content"] == "compare apples and oranges"
    assert shell.requests[0]["model"] == "fake-model"


def test_compare_without_models_says_how_to_name_them(shell):
    with pytest.raises(UsageError, match="-m MODEL_A -m MODEL_B"):
        shell.run_line_magic("chat", "compare")


def test_a_failing_model_shows_its_card_and_fails_the_cell(shell):
    with pytest.raises(ChatCellError, match="NotFoundError"):
        shell.run_line_magic("chat", "compare -m alpha -m gone Hi")
    assert any("no such model" in json.dumps(o) for o in shell.publisher.outputs)


def test_each_takes_an_expression_for_its_rows(shell):
    shell.run_cell_magic("chat", "--each reviews.iloc[1:] -o out", "Classify: {text}")
    assert [r["messages"][-1]["content"] for r in shell.requests] == [
        "Classify: awful",
        "Classify: fine",
    ]
    assert list(shell.user_ns["out"].index) == ["r2", "r3"]


def test_each_fills_missing_values_as_empty_text_and_the_dry_run_says_so(shell, capsys):
    shell.user_ns["reviews"] = pd.DataFrame(
        {"text": ["great", None, float("nan")], "stars": [5.0, float("nan"), 3.0]}
    )
    shell.run_cell_magic("chat", "--each reviews --dry-run", "Review: {text} ({stars:.0f})")
    out = capsys.readouterr().out
    assert "Missing values are filled in as empty text: {stars} in 1 row, {text} in 2 rows." in out
    shell.run_cell_magic("chat", "--each reviews -o out", "Review: {text} ({stars:.0f})")
    sent = [r["messages"][-1]["content"] for r in shell.requests]
    assert sent == ["Review: great (5)", "Review:  ()", "Review:  (3)"]
    assert "nan" not in capsys.readouterr().out


def test_a_dry_run_without_missing_values_says_nothing_of_them(shell, capsys):
    shell.run_cell_magic("chat", "--each reviews --dry-run", "Classify: {text}")
    assert "Missing values" not in capsys.readouterr().out
