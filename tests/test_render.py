from __future__ import annotations

from nbchat.conversation.chat import Chat, Reply
from nbchat.protocol.exceptions import (
    APIConnectionError,
    AuthenticationError,
    NotFoundError,
    RateLimitError,
)
from nbchat.protocol.types import ChatCompletion
from nbchat.render.bundles import error_bundle, footer_text, history_bundle, reply_bundle


def completion(content="Hi", **overrides):
    data = {
        "model": "gpt-4.1-2025-04-14",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 35,
            "completion_tokens": 32,
            "total_tokens": 67,
            "prompt_tokens_details": {"cached_tokens": 8},
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    }
    data.update(overrides)
    return ChatCompletion.model_validate(data)


def test_footer_has_model_finish_tokens_cached_reasoning_and_speed():
    text = footer_text(completion(), time_to_first_token=0.25, elapsed=1.25)
    assert text == (
        "gpt-4.1-2025-04-14 · finish: stop · 35 prompt + 32 completion = 67 tokens "
        "(8 cached, 4 reasoning) · first token 0.25 s · 32.0 tokens/s"
    )


def test_reply_bundle_has_our_html_and_plain_text_only():
    bundle = reply_bundle(Reply(completion=completion(content="**Hi**")))
    assert set(bundle) == {"text/html", "text/plain"}
    assert "<p><strong>Hi</strong></p>" in bundle["text/html"]
    assert bundle["text/plain"].startswith("**Hi**\n— gpt-4.1")


def test_refusal_and_content_filter_are_visible():
    refused = completion(
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't help."},
                "finish_reason": "content_filter",
            }
        ]
    )
    bundle = reply_bundle(Reply(completion=refused))
    assert "Refused" in bundle["text/html"]
    assert "I can&#x27;t help." in bundle["text/html"] or "I can't help." in bundle["text/html"]
    assert "I can't help." in bundle["text/plain"]
    assert "content_filter" in bundle["text/html"]


def test_interrupted_reply_says_so():
    bundle = reply_bundle(Reply(completion=completion(), interrupted=True))
    assert "Interrupted" in bundle["text/html"]
    assert "interrupted" in bundle["text/plain"]


def test_error_card_fields_and_hints():
    error = RateLimitError(
        "Too many",
        status_code=429,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        request_id="req_9",
    )
    error.retries = 2
    bundle = error_bundle(error)
    for text in ("429", "rate_limit_error", "rate_limit_exceeded", "req_9", "after 2 retries"):
        assert text in bundle["text/plain"]
    assert "RateLimitError" in bundle["text/html"]


def test_error_card_hints_for_auth_model_and_connection():
    auth = error_bundle(AuthenticationError("bad key", status_code=401))
    assert "OPENAI_API_KEY" in auth["text/plain"]
    missing = error_bundle(NotFoundError("no model", status_code=404, code="model_not_found"))
    assert "model" in missing["text/plain"].split("hint:")[1]
    down = error_bundle(APIConnectionError("refused"))
    assert "server running" in down["text/plain"]


def test_error_card_escapes_html():
    bundle = error_bundle(AuthenticationError("<script>x</script>", status_code=401))
    assert "<script>" not in bundle["text/html"]


def test_history_bundle_marks_roles_tools_and_interruptions():
    chat = Chat("m")
    chat.add({"role": "user", "content": "q"})
    chat.add(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    )
    chat.add({"role": "tool", "tool_call_id": "c1", "content": "1"})
    chat.add({"role": "assistant", "content": "partial"}, interrupted=True)
    bundle = history_bundle(chat)
    page = bundle["text/html"]
    assert "<strong>You</strong><p>q</p>" in page
    assert "tool call</span> <code>f({})</code>" in page and "c1" in page
    assert "answer to c1" in page
    assert "<em>(interrupted)</em>" in page
    assert "4 messages" in bundle["text/plain"]


def test_footer_counts_streamed_tokens_when_the_server_sends_no_usage():
    bare = completion(usage=None)
    text = footer_text(bare, time_to_first_token=0.5, elapsed=2.5, counted_tokens=40)
    assert "~40 completion tokens (counted; no usage from the server)" in text
    assert "20.0 tokens/s" in text
    assert "counted" not in footer_text(completion(), counted_tokens=40)


def test_unstreamed_footer_shows_the_whole_wait_not_a_first_token():
    text = footer_text(completion(), elapsed=2.0)
    assert "first token" not in text
    assert "2.00 s" in text
    assert "16.0 tokens/s overall" in text


def test_request_bundle_shortens_data_urls_but_not_ordinary_text():
    from nbchat.render.bundles import request_bundle

    url = "data:image/png;base64," + "A" * 10_000
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
        ],
        "model": "x" * 300,
    }
    bundle = request_bundle(body)
    assert "characters not shown" in bundle["text/plain"]
    assert "A" * 1000 not in bundle["text/plain"]
    assert "x" * 300 in bundle["text/plain"]


def test_json_mode_error_hints_at_the_word_json():
    from nbchat.protocol.exceptions import BadRequestError

    error = BadRequestError(
        "'messages' must contain the word 'json' in some form, to use 'response_format' of "
        "type 'json_object'.",
        status_code=400,
        type="invalid_request_error",
        param="messages",
    )
    assert "word JSON" in error_bundle(error)["text/plain"]


def test_footer_html_escapes_server_fields_and_keeps_ids_in_its_tooltip():
    from nbchat.render.bundles import footer_html

    odd = completion(
        model="**m**<img src=x onerror=alert(1)>",
        id='chatcmpl-"><script>',
        system_fingerprint="fp_<b>",
    )
    page = footer_html(odd)
    assert "<img" not in page and "<script" not in page and "<b>" not in page
    assert "**m**&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'title="id: chatcmpl-&quot;&gt;&lt;script&gt;' in page
    assert "system_fingerprint: fp_&lt;b&gt;" in page


def test_tool_results_show_exactly_in_a_block_they_cannot_close():
    from nbchat.conversation.toolrun import ToolResult

    result = ToolResult(
        tool_call_id="c1</summary><script>",
        name="f",
        arguments={"q": "```\n</details>"},
        content="</code></pre></details><img src=x>",
        ok=True,
    )
    reply = Reply(completion=completion(), tool_results=[result])
    page = reply_bundle(reply)["text/html"]
    assert page.count("<details") == page.count("</details>") == 1
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;/details&gt;&lt;img src=x&gt;" in page
    assert "<script" not in page and "<img" not in page


def test_n_choices_are_labelled():
    two = completion(
        choices=[
            {
                "index": i,
                "message": {"role": "assistant", "content": f"c{i}"},
                "finish_reason": "stop",
            }
            for i in range(2)
        ]
    )
    bundle = reply_bundle(Reply(completion=two))
    assert "<strong>Choice 1</strong><p>c0</p>" in bundle["text/html"]
    assert "--- choice 2 ---\nc1" in bundle["text/plain"]


def test_request_bundle_shows_json_in_an_escaped_pre():
    from nbchat.render.bundles import request_bundle

    body = {"messages": [{"role": "user", "content": "```\n</pre><script>alert(1)</script>"}]}
    page = request_bundle(body)["text/html"]
    assert "<script" not in page
    assert page.count("<pre") == page.count("</pre>") == 1
    assert "&lt;/pre&gt;&lt;script&gt;" in page


def test_the_footer_shows_audio_and_prediction_tokens_and_the_tier():
    usage = {
        "prompt_tokens": 40,
        "completion_tokens": 30,
        "total_tokens": 70,
        "prompt_tokens_details": {"audio_tokens": 12},
        "completion_tokens_details": {
            "audio_tokens": 20,
            "accepted_prediction_tokens": 9,
            "rejected_prediction_tokens": 3,
        },
    }
    text = footer_text(completion(usage=usage, service_tier="flex"))
    assert "70 tokens (12 audio in, 20 audio out)" in text
    assert "prediction: 9 accepted, 3 rejected" in text
    assert text.endswith("· tier flex")


def test_a_spoken_reply_shows_a_player_and_its_transcript_rendered_safely():
    import base64

    from nbchat.convert.audio import wav_from_pcm16

    data = base64.b64encode(b"\x00\x01" * 240).decode()
    audio = {"id": "a1", "data": data, "transcript": "Hi **there** <script>x</script>"}
    reply = Reply(
        completion=completion(
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": None, "audio": audio},
                }
            ]
        ),
        request={"audio": {"voice": "alloy", "format": "pcm16"}},
    )
    bundle = reply_bundle(reply)
    html = bundle["text/html"]
    wav = base64.b64encode(wav_from_pcm16(b"\x00\x01" * 240)).decode()
    assert f'src="data:audio/wav;base64,{wav}"' in html and "<audio" in html
    assert "<strong>there</strong>" in html and "<script>" not in html
    assert "[spoken] Hi **there**" in bundle["text/plain"]


def test_citations_are_numbered_links_and_a_hostile_source_stays_text():
    notes = [
        {
            "type": "url_citation",
            "url_citation": {"url": url, "title": title, "start_index": 0, "end_index": 5},
        }
        for url, title in (
            ("https://news.example/a", "News <b>A</b>"),
            ("javascript:alert(1)", "Evil"),
        )
    ]
    reply = Reply(
        completion=completion(
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {
                        "role": "assistant",
                        "content": "Rain. More.",
                        "annotations": notes,
                    },
                }
            ]
        )
    )
    bundle = reply_bundle(reply)
    html = bundle["text/html"]
    assert 'href="https://news.example/a"' in html and ">[1]</a>" in html
    assert 'href="javascript' not in html
    assert '<li value="1"><a href="https://news.example/a"' in html
    assert "News &lt;b&gt;A&lt;/b&gt;" in html
    assert '<li value="2">Evil <code>javascript:alert(1)</code></li>' in html
    assert "Rain. [1] [2] More." in bundle["text/plain"]
    assert "[2] Evil — javascript:alert(1)" in bundle["text/plain"]


def test_custom_and_deprecated_function_calls_are_shown_like_tool_calls():
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "sql", "input": "<x>"}}],
        "function_call": {"name": "old_style", "arguments": "{}"},
    }
    reply = Reply(
        completion=completion(choices=[{"index": 0, "finish_reason": "stop", "message": message}])
    )
    bundle = reply_bundle(reply)
    assert "<code>sql(&lt;x&gt;)</code>" in bundle["text/html"]
    assert "[function call] old_style({})" in bundle["text/plain"]
    chat = Chat("m")
    chat.add({k: v for k, v in message.items() if k != "function_call"})
    chat.add({"role": "assistant", "audio": {"id": "audio_9"}})
    history = history_bundle(chat)
    assert "sql(&lt;x&gt;)" in history["text/html"]
    assert "spoken reply audio_9" in history["text/plain"]
