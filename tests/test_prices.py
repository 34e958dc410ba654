from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from nbchat.protocol.types import ChatCompletion
from nbchat.store.prices import cost, dollars, is_priced, price
from nbchat.transport.profiles import KINDS, profile_for

OPENAI = profile_for("openai")
URL = "https://api.openai.com/v1/chat/completions"


def completion(model: str, prompt: int = 1000, completion_tokens: int = 200, cached: int = 0):
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return ChatCompletion.model_validate({"model": model, "choices": [], "usage": usage})


def test_a_paid_reply_is_priced_by_the_model_the_server_reported():
    # The request asked for an alias; the server answered with the dated model.
    found = cost(completion("gpt-4.1-mini-2025-04-14"), OPENAI, URL)
    expected = calc_price(
        Usage(input_tokens=1000, output_tokens=200), "gpt-4.1-mini", provider_id="openai"
    )
    assert found == pytest.approx(float(expected.total_price)) and found > 0


def test_cost_grows_with_tokens_and_cached_prompt_tokens_cost_less():
    base = cost(completion("gpt-4.1-mini"), OPENAI, URL)
    double = cost(completion("gpt-4.1-mini", 2000, 400), OPENAI, URL)
    cached = cost(completion("gpt-4.1-mini", cached=800), OPENAI, URL)
    assert double == pytest.approx(2 * base)
    assert 0 < cached < base


@pytest.mark.parametrize(
    "kind", [k for k in KINDS if k not in ("openai", "azure", "openrouter", "generic")]
)
def test_local_and_self_hosted_server_kinds_have_no_price(kind):
    assert (
        cost(
            completion("gpt-4.1-mini"),
            profile_for(kind),
            "http://10.0.0.5:8000/v1/chat/completions",
        )
        is None
    )


def test_a_local_profile_has_no_price_whatever_its_kind():
    local = profile_for("generic", local=True)
    assert not is_priced(local, "https://example.com/v1")
    assert cost(completion("gpt-4.1-mini"), local, URL) is None


def test_an_unknown_model_on_a_paid_server_has_no_price():
    assert cost(completion("my-fine-tune-xyz"), OPENAI, URL) is None
    assert cost(completion("my-fine-tune-xyz"), OPENAI, URL) is None  # remembered


def test_a_reply_without_usage_has_no_price():
    bare = ChatCompletion.model_validate({"model": "gpt-4.1-mini", "choices": []})
    assert cost(bare, OPENAI, URL) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/v1/chat/completions",
        "http://127.0.0.1:11434/v1/chat/completions",
        "http://192.168.1.20:8000/v1/chat/completions",
        "http://[::1]:8000/v1/chat/completions",
        "http://gpu-box.local:8000/v1/chat/completions",
    ],
)
def test_a_generic_server_on_this_network_has_no_price(url):
    assert cost(completion("gpt-4o"), profile_for("generic"), url) is None


def test_a_generic_server_is_priced_by_its_url_then_by_its_model():
    generic = profile_for("generic")
    together = "https://api.together.xyz/v1/chat/completions"
    llama = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert cost(completion(llama), generic, together) > 0
    # A provider genai-prices knows that does not list the model: unknown, not someone else's.
    assert cost(completion("gpt-4o"), generic, together) is None
    # An address genai-prices does not know (a gateway): the model name decides.
    assert cost(completion("gpt-4o"), generic, "https://llm.example.com/v1/chat/completions") > 0


def test_azure_and_openrouter_are_priced_with_their_own_tables():
    assert cost(completion("gpt-4o"), profile_for("azure"), "https://x.openai.azure.com/o") > 0
    routed = cost(
        completion("openai/gpt-4o-mini"), profile_for("openrouter"), "https://openrouter.ai/api/v1"
    )
    assert routed > 0


def test_price_takes_token_counts_for_estimates():
    one = price("gpt-4.1-mini", OPENAI, URL, input_tokens=1000, output_tokens=0)
    assert one == pytest.approx(cost(completion("gpt-4.1-mini", 1000, 0), OPENAI, URL))


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "price unknown"),
        (0, "$0"),
        (0.00072, "$0.00072"),
        (0.0012, "$0.0012"),
        (0.5, "$0.50"),
        (0.999, "$1.00"),
        (12.345, "$12.35"),
        (1234.5, "$1,234.50"),
        (0.001, "$0.001"),
        (0.10, "$0.10"),
        (1e-12, "<$0.00000001"),
    ],
)
def test_dollars_are_shown_with_two_significant_digits(amount, text):
    assert dollars(amount) == text
