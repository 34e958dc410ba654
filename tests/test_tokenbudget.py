from __future__ import annotations

import base64
import io

from PIL import Image

from nbchat.convert.images import estimate_image_tokens
from nbchat.convert.tokenbudget import (
    MESSAGE_TOKENS,
    REPLY_TOKENS,
    UNKNOWN_IMAGE_TOKENS,
    cut_to_tokens,
    estimate_budget,
    message_tokens,
    text_tokens,
)


def png_data_url(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def parts(budget):
    return {part.name: part.tokens for part in budget.parts}


def test_a_body_is_split_into_system_history_prompt_attachments_and_tools():
    prompt = "Describe the data." + "\n\nData `df` (...):\n" + "x" * 400
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "a" * 40},
            {"role": "assistant", "content": "b" * 80},
            {"role": "user", "content": prompt},
        ],
        "tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}],
        "max_tokens": 100,
    }
    data_tokens = text_tokens("\n\nData `df` (...):\n" + "x" * 400)
    budget = estimate_budget(body, attachments=[("--data df", data_tokens)], context_window=4096)
    got = parts(budget)
    assert got["system"] == text_tokens("Be brief.") + MESSAGE_TOKENS
    assert got["history"] == text_tokens("a" * 40) + text_tokens("b" * 80) + 2 * MESSAGE_TOKENS
    assert got["attachments"] == data_tokens
    assert got["this prompt"] == text_tokens(prompt) + MESSAGE_TOKENS - data_tokens
    assert got["tools"] > 0 and got["reply start"] == REPLY_TOKENS
    assert budget.total == sum(got.values())
    assert budget.room == 4096 - budget.total and not budget.over
    table = budget.table()
    assert "--data df" in table and "2 messages" in table and "1 tool" in table
    assert f"{budget.room:,} left for the reply (the reply may take 100)" in table


def test_images_cost_what_their_size_costs_and_urls_a_default():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": png_data_url(512, 512), "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": png_data_url(2048, 512), "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    budget = estimate_budget({"messages": [{"role": "user", "content": content}]})
    images = estimate_image_tokens(512, 512, "auto") + 85 + UNKNOWN_IMAGE_TOKENS
    assert parts(budget)["attachments"] == images
    assert parts(budget)["this prompt"] == text_tokens("What is this?") + MESSAGE_TOKENS
    assert "3 images" in budget.table()
    assert "context window unknown" in budget.table()


def test_over_the_window_says_by_how_much():
    body = {"messages": [{"role": "user", "content": "word " * 1000}], "max_tokens": 50}
    budget = estimate_budget(body, context_window=800, left_out=("Left out 2 exchanges.",))
    assert budget.over
    assert budget.room is not None and budget.room < 0
    assert f"over it by {-budget.room:,}" in budget.table()
    assert budget.table().endswith("Left out 2 exchanges.")
    tight = estimate_budget(
        {"messages": [{"role": "user", "content": "word " * 700}], "max_tokens": 300},
        context_window=800,
    )
    assert tight.over and "less than the reply may take (300)" in tight.table()


def test_response_format_counts_with_the_tools():
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    budget = estimate_budget({"messages": [], "response_format": schema})
    assert parts(budget)["tools"] > 0
    assert "response format" in budget.table()


def test_message_tokens_count_tool_calls_and_framing():
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
        ],
    }
    assert message_tokens(call) > MESSAGE_TOKENS
    assert message_tokens({"role": "user", "content": ""}) == MESSAGE_TOKENS


def test_cut_to_tokens_keeps_head_and_tail_within_the_budget():
    text = "".join(f"line {i}\n" for i in range(1000))
    cut = cut_to_tokens(text, 100)
    assert text_tokens(cut) <= 100
    assert cut.startswith("line 0\n") and cut.endswith("line 999\n")
    assert "characters left out" in cut
    assert cut_to_tokens("short", 100) == "short"


def test_text_tokens_count_words_digits_marks_and_other_characters():
    assert text_tokens("") == 0
    assert text_tokens("the quick brown fox") == 4
    assert text_tokens("implementation") == 3  # long words cost more than one
    assert text_tokens("[1,2,3]") == 6  # a digit a token, 0.6 a mark (rounded up)
    assert text_tokens("数据分析") == 4
    numbers = ",".join(str(n) for n in range(1000, 1100))
    assert text_tokens(numbers) > len(numbers) / 4 * 2  # numeric JSON is dear


def test_recordings_and_files_count_by_their_length_and_pages_not_their_base64():
    from nbchat.convert.audio import AUDIO_TOKENS_PER_SECOND, audio_part, wav_from_pcm16
    from nbchat.convert.files import TOKENS_PER_PAGE, file_part

    ten_seconds = audio_part(wav_from_pcm16(b"\x00\x00" * 240_000)).to_dict()
    pdf = file_part(b"%PDF-1.4 << /Type /Page >> << /Type /Page >> " + b"x" * 100_000).to_dict()
    tokens = message_tokens({"role": "user", "content": [ten_seconds, pdf]})
    assert tokens == MESSAGE_TOKENS + 10 * AUDIO_TOKENS_PER_SECOND + 2 * TOKENS_PER_PAGE
    custom = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}
        ],
    }
    assert message_tokens(custom) > 2 * MESSAGE_TOKENS
