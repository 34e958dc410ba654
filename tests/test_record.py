from __future__ import annotations

from nbchat.protocol.types import ChatCompletion
from nbchat.store.record import Exchange, clean_url, scrub
from nbchat.transport.prepared import MASK


def test_urls_lose_user_info_and_credential_query_values():
    url = "https://bob:s3cret@host.example:8443/openai/v1/chat/completions?api-version=2024-06-01&api-key=XYZ123&sig=abc"
    cleaned = clean_url(url)
    assert "bob" not in cleaned and "s3cret" not in cleaned
    assert "XYZ123" not in cleaned and "abc" not in cleaned
    assert cleaned.startswith("https://host.example:8443/openai/v1/chat/completions?")
    assert "api-version=2024-06-01" in cleaned and f"api-key={MASK}" in cleaned
    assert clean_url("http://[::1]:8000/v1") == "http://[::1]:8000/v1"
    assert clean_url(None) is None


def test_scrub_masks_secrets_anywhere_in_json():
    value = {"a": ["key sk-abcdef here", {"sk-abcdef": 1}], "n": 3}
    assert scrub(value, ("sk-abcdef",)) == {"a": [f"key {MASK} here", {MASK: 1}], "n": 3}
    assert scrub(value, ("",)) is value  # nothing to hide


def test_scrub_masks_a_secret_inside_another_whole_whatever_order_they_come_in():
    text = "token abcd1234wxyz and abcd1234"
    assert scrub(text, ("abcd1234", "abcd1234wxyz")) == f"token {MASK} and {MASK}"
    assert scrub("abc and abcd", ("abc", "abcd")) == f"abc and {MASK}"  # 3 characters: left


def test_an_exchange_takes_model_usage_and_finish_reasons_from_a_completion():
    completion = ChatCompletion.model_validate(
        {
            "model": "gpt-4.1-2025-04-14",
            "choices": [
                {"index": 0, "message": {"content": "a"}, "finish_reason": "stop"},
                {"index": 1, "message": {"content": "b"}, "finish_reason": "length"},
            ],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 6,
                "total_tokens": 11,
                "prompt_tokens_details": {"cached_tokens": 2},
                "completion_tokens_details": {"reasoning_tokens": 3},
            },
        }
    )
    row = Exchange(request={}, key="k")
    row.take_usage(completion)
    assert (row.model, row.finish_reason) == ("gpt-4.1-2025-04-14", "stop,length")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (5, 6, 11)
    assert (row.cached_tokens, row.reasoning_tokens) == (2, 3)
    assert row.completion() == completion


def test_scrub_masks_a_secret_anywhere_and_returns_a_value_without_one_unchanged():
    from nbchat.store.record import scrub
    from nbchat.transport.prepared import MASK

    value = {"messages": [{"role": "user", "content": "no key here"}], "n": 1}
    assert scrub(value, ("sk-plain-secret",)) is value  # nothing to mask: not copied
    nested = {"a": [{"b": "x sk-plain-secret y"}], "sk-plain-secret": 1}
    assert scrub(nested, ("sk-plain-secret",)) == {"a": [{"b": f"x {MASK} y"}], MASK: 1}
    # A secret JSON would escape (a quote, a non-ASCII letter) is still found, string by string.
    odd = 'pa"ss wörd'
    assert scrub({"x": [f"<{odd}>"]}, (odd,)) == {"x": [f"<{MASK}>"]}
