from __future__ import annotations

import base64
import io
import warnings

import httpx
import pytest
from IPython.core.error import UsageError
from PIL import Image

import nbchat
from nbchat import Chat, Client
from nbchat.store import budget, config, db
from nbchat.store.budget import (
    ASSUMED_COMPLETION_TOKENS,
    check_budget,
    estimate,
    estimate_prompt_tokens,
)
from nbchat.store.record import Exchange
from nbchat.transport.profiles import profile_for
from tests import storeutil
from tests.fakeserver import SECRET, FakeServer

fresh_store = storeutil.fresh_store
store_shell = storeutil.store_shell

USAGE = {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}


def openai_chat(
    server: FakeServer,
    *,
    base_url: str = "https://api.openai.com/v1",
    model: str = "gpt-4.1-mini",
    kind: str | None = None,
    **options,
) -> Chat:
    client = Client(
        api_key=SECRET,
        base_url=base_url,
        transport=httpx.MockTransport(server.handle),
        max_retries=0,
        server=kind,
    )
    return Chat(model, client=client, **options)


def spend(path, dollars: float) -> None:
    store = db.open_store(path)
    store.add(Exchange(request={}, key="earlier", cost=dollars))
    store.flush(timeout=10)


def test_prompt_tokens_are_the_dry_runs_estimate_of_the_same_body():
    from nbchat.convert.tokenbudget import estimate_budget

    short = estimate_prompt_tokens({"messages": [{"role": "user", "content": "Hi"}]})
    long = estimate_prompt_tokens({"messages": [{"role": "user", "content": "word " * 400}]})
    cjk = estimate_prompt_tokens({"messages": [{"role": "user", "content": "漢字" * 100}]})
    assert 0 < short < 20
    assert 400 <= long <= 450  # a token a short word
    assert cjk >= 200  # one a character for other scripts
    tools = {"messages": [{"role": "user", "content": "Hi"}], "tools": [{"x": "word " * 100}]}
    assert estimate_prompt_tokens(tools) > short + 100
    for body in ({"messages": [{"role": "user", "content": "word " * 400}]}, tools):
        # One estimator: the budget's figure is the dry run's total.
        assert estimate_prompt_tokens(body) == estimate_budget(body).total


def test_images_count_by_their_size_and_detail():
    buffer = io.BytesIO()
    Image.new("RGB", (2048, 1024)).save(buffer, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    def body(detail: str, image_url: str = url) -> dict:
        part = {"type": "image_url", "image_url": {"url": image_url, "detail": detail}}
        return {"messages": [{"role": "user", "content": [part]}]}

    low, high = estimate_prompt_tokens(body("low")), estimate_prompt_tokens(body("high"))
    assert low < 100 < high
    assert high == estimate_prompt_tokens(body("auto"))
    assert estimate_prompt_tokens(body("high", "https://example.com/a.png")) > low


def test_the_completion_is_bounded_by_max_tokens_times_n_or_an_assumption():
    server = FakeServer()
    chat = openai_chat(server)
    assert (
        estimate(chat.prepare("q"), chat.client.profile).completion_tokens
        == ASSUMED_COMPLETION_TOKENS
    )
    bounded = estimate(chat.prepare("q", max_tokens=100, n=3), chat.client.profile)
    assert bounded.completion_tokens == 300
    newer = estimate(chat.prepare("q", max_completion_tokens=50), chat.client.profile)
    assert newer.completion_tokens == 50
    assert 0 < newer.dollars < bounded.dollars


def test_a_request_that_could_pass_the_budget_is_refused_before_sending(fresh_store):
    spend(fresh_store, 0.9999)
    config.configure(budget=1.0)
    server = FakeServer()
    chat = openai_chat(server)
    with pytest.raises(nbchat.BudgetExceededError) as caught:
        chat.send("Write a long essay", max_tokens=4000)
    error = caught.value
    assert server.requests == [] and chat.messages == []
    assert error.budget == 1.0 and error.spent == pytest.approx(0.9999)
    assert error.estimate > 0.0001
    message = str(error)
    assert "\n" not in message
    assert "$1.00 budget" in message and "4,000 completion tokens of gpt-4.1-mini" in message
    assert "nothing was sent" in message


def test_a_request_within_the_budget_is_sent_and_its_cost_counts(fresh_store):
    config.configure(budget=1.0)
    server = FakeServer().reply("ok", model="gpt-4.1-mini", usage=USAGE)
    reply = openai_chat(server).send("q", max_tokens=10)
    assert reply.content == "ok"
    assert budget.spent() == pytest.approx(reply.cost)


def test_the_budget_comes_from_the_environment_too(fresh_store, monkeypatch):
    spend(fresh_store, 5.0)
    monkeypatch.setenv("NBCHAT_BUDGET", "5")
    with pytest.raises(nbchat.BudgetExceededError):
        openai_chat(FakeServer()).send("q")
    monkeypatch.setenv("NBCHAT_BUDGET", "five dollars")
    with pytest.raises(nbchat.RequestValidationError, match="NBCHAT_BUDGET='five dollars'"):
        openai_chat(FakeServer()).send("q")
    monkeypatch.setenv("NBCHAT_BUDGET", "-1")
    with pytest.raises(nbchat.RequestValidationError, match="0 or more"):
        openai_chat(FakeServer()).send("q")


def test_no_budget_means_no_check(fresh_store):
    spend(fresh_store, 1000.0)
    chat = openai_chat(FakeServer())
    assert check_budget(chat.prepare("q"), chat.client.profile) is None


def test_a_local_server_is_never_refused(fresh_store):
    spend(fresh_store, 10.0)
    config.configure(budget=1.0)
    server = FakeServer().reply("free")
    local = Client(
        api_key="",
        base_url="http://127.0.0.1:1/v1",
        transport=httpx.MockTransport(server.handle),
        server=profile_for("llama-cpp-python", local=True),
    )
    assert Chat("smollm2", client=local).send("q").content == "free"


def test_cache_hits_and_replays_are_not_refused(fresh_store):
    server = FakeServer().reply("answer", model="gpt-4.1-mini", usage=USAGE)
    chat = openai_chat(server, cache=True)
    chat.send("q")
    config.configure(budget=0.0)
    chat.reset()
    assert chat.send("q").cached


def test_reserved_dollars_count_for_requests_in_flight(fresh_store):
    config.configure(budget=0.01)
    chat = openai_chat(FakeServer())
    prepared = chat.prepare("q", max_tokens=100)
    first = check_budget(prepared, chat.client.profile)
    assert first.dollars < 0.01
    with pytest.raises(nbchat.BudgetExceededError):
        check_budget(prepared, chat.client.profile, reserved=0.01 - first.dollars / 2)


def test_an_unknown_price_warns_once_and_is_refused_once_the_budget_is_spent(fresh_store):
    config.configure(budget=1.0)
    server = FakeServer().reply("a").reply("b")
    chat = openai_chat(server)
    chat.settings["model"] = "my-fine-tune"
    with pytest.warns(UserWarning, match="price of my-fine-tune is unknown") as caught:
        chat.send("q")
        chat.send("q")
    from nbchat.conversation.chat import NbchatNote

    # The fake server answers as fake-model: that note is another warning, not the price's.
    assert len([w for w in caught if not issubclass(w.category, NbchatNote)]) == 1
    spend(fresh_store, 1.0)
    with pytest.raises(nbchat.BudgetExceededError, match="Budget spent"):
        chat.send("q")


def test_with_the_store_off_this_process_spending_counts(fresh_store, monkeypatch):
    monkeypatch.setenv("NBCHAT_STORE", "off")
    server = FakeServer().reply("ok", model="gpt-4.1-mini", usage=USAGE)
    reply = openai_chat(server).send("q")
    assert budget.spent() == pytest.approx(reply.cost)
    config.configure(budget=reply.cost)
    with pytest.raises(nbchat.BudgetExceededError):
        openai_chat(FakeServer()).send("q")


def test_a_refusal_in_a_cell_is_a_one_line_usage_error(store_shell, fresh_store, monkeypatch):
    spend(fresh_store, 1.9999)
    store_shell.run_line_magic("config", "Chat.budget = 2.0")
    server = FakeServer()
    chat = openai_chat(server)
    from nbchat.conversation import sessions

    monkeypatch.setattr(sessions, "client_for", lambda settings: chat.client)
    with pytest.raises(UsageError, match="Budget exceeded"):
        store_shell.run_cell_magic("chat", "-m gpt-4.1-mini --max-tokens 2000", "Hello\n")
    assert server.requests == []


def test_a_negative_budget_setting_is_refused(store_shell):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store_shell.run_line_magic("config", "Chat.budget = -3")
    settings = next(c for c in store_shell.configurables if type(c).__name__ == "Chat")
    assert settings.budget is None
    assert config.budget() is None


def _priced_completion(usage: dict) -> dict:
    return {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def _openai_async_client(handle) -> Client:
    return Client(
        api_key=SECRET,
        base_url="https://api.openai.com/v1",
        transport=httpx.MockTransport(handle),
        max_retries=0,
    )


def test_map_rows_in_flight_hold_their_estimates_so_they_cannot_pass_the_budget_together(
    fresh_store,
):
    # Each row may cost up to 4,000 completion tokens of gpt-4.1-mini (~$0.0064): with all six
    # in flight at once, a $0.02 budget lets three go and refuses the rest, each with the
    # budget's one-line error, although nothing has been spent yet.
    import asyncio

    config.configure(budget=0.02)
    sent = []

    async def handle(request):
        sent.append(request)
        await asyncio.sleep(0.2)
        return httpx.Response(200, json=_priced_completion(USAGE))

    rows = [{"x": str(i)} for i in range(6)]
    out = nbchat.map(
        "Say {x}",
        rows,
        model="gpt-4.1-mini",
        client=_openai_async_client(handle),
        concurrency=6,
        max_tokens=4000,
        progress=False,
    )
    refused = [row for row in out if row["error"] and "budget" in row["error"]]
    assert len(refused) == 3 and len(sent) == 3
    assert all(row["reply"] == "ok" for row in out if not row["error"])
    assert budget.reserved() == 0.0  # every estimate was let go


def test_map_rows_count_what_earlier_rows_and_runs_actually_spent(fresh_store):
    # Rows one at a time, each billed for 10,000 prompt + 1,000 completion tokens (~$0.0056):
    # the budget counts what was spent, run after run, and refuses once the next row's
    # estimate no longer fits.
    config.configure(budget=0.03)
    sent = []
    heavy = {"prompt_tokens": 10_000, "completion_tokens": 1_000, "total_tokens": 11_000}

    def handle(request):
        sent.append(request)
        return httpx.Response(200, json=_priced_completion(heavy))

    client = _openai_async_client(handle)
    options = {"model": "gpt-4.1-mini", "client": client, "concurrency": 1, "progress": False}
    first = nbchat.map("Say {x}", [{"x": str(i)} for i in range(3)], max_tokens=100, **options)
    assert not any(row["error"] for row in first) and len(sent) == 3
    spent_after_first = budget.spent()
    assert spent_after_first > 0.012
    second = nbchat.map("Again {x}", [{"x": str(i)} for i in range(6)], max_tokens=100, **options)
    refused = [row for row in second if row["error"] and "budget" in row["error"]]
    assert refused and len(sent) - 3 == 6 - len(refused)
    # The estimate bounds each request (max_tokens=100 here, the server billed more): a row
    # went while what was spent still left room for its estimate, none after.
    assert 0.03 <= budget.spent() < 0.03 + 0.0056
    assert [bool(row["error"]) for row in second] == sorted(bool(row["error"]) for row in second)


def gateway_chat(fake: FakeServer, kind: str | None = None) -> Chat:
    """A gateway on this machine in front of a paid API (LiteLLM's proxy, say)."""
    return openai_chat(fake, base_url="http://localhost:4000/v1", model="gpt-4o-mini", kind=kind)


def test_an_unpriced_reply_under_a_budget_says_so_once_with_how_to_name_the_server(fresh_store):
    config.configure(budget=1.0)
    server = FakeServer().reply("a", model="gpt-4o-mini", usage=USAGE).reply("b", usage=USAGE)
    chat = gateway_chat(server)
    with pytest.warns(nbchat.conversation.chat.NbchatNote) as caught:
        first = chat.send("q")
    assert first.cost is None
    [note] = [n for n in first.notes if "no price" in n]
    assert "the $1.00 budget does not count it" in note
    assert "a server on this machine or network for a free one" in note
    assert '%config Chat.server = "openai"' in note
    assert any("no price" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = chat.send("again")
    assert not any("no price" in n for n in second.notes)


def test_naming_the_gateways_kind_prices_its_replies_against_the_budget(fresh_store):
    config.configure(budget=1.0)
    server = FakeServer().reply("a", model="gpt-4o-mini", usage=USAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reply = gateway_chat(server, kind="openai").send("q")
    assert reply.cost is not None and reply.cost > 0
    assert budget.spent() == pytest.approx(reply.cost)
    assert not any("no price" in n for n in reply.notes)


def test_no_budget_or_nbchats_local_model_means_no_note_on_unpriced_replies(fresh_store):
    server = FakeServer().reply("a", usage=USAGE).reply("b", usage=USAGE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not any("no price" in n for n in gateway_chat(server).send("q").notes)
    config.configure(budget=1.0)
    local = Client(
        api_key="",
        base_url="http://127.0.0.1:1/v1",
        transport=httpx.MockTransport(server.handle),
        server=profile_for("llama-cpp-python", local=True),
    )
    assert not any("no price" in n for n in Chat("smollm2", client=local).send("q").notes)


def test_the_unpriced_note_shows_under_a_cells_reply(store_shell, monkeypatch):
    store_shell.run_line_magic("config", "Chat.budget = 1.0")
    server = FakeServer().reply("hi", model="gpt-4o-mini", usage=USAGE)
    chat = gateway_chat(server)
    from nbchat.conversation import sessions

    monkeypatch.setattr(sessions, "client_for", lambda settings: chat.client)
    store_shell.run_cell_magic("chat", "-m gpt-4o-mini", "Hello\n")
    shown = " ".join(str(o) for o in store_shell.publisher.outputs)
    assert "does not count it" in shown and "Chat.server" in shown


def test_a_recording_is_estimated_by_its_length_not_its_base64():
    from nbchat.convert.audio import AUDIO_TOKENS_PER_SECOND, audio_part, wav_from_pcm16

    minute = audio_part(wav_from_pcm16(b"\x00\x00" * 24_000 * 60)).to_dict()
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": [minute]}]}
    # 2.9 MB of base64 would count as ~700,000 tokens of text.
    assert estimate_prompt_tokens(body) < 2 * 60 * AUDIO_TOKENS_PER_SECOND
