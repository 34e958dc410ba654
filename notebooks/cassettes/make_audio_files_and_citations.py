"""Make ``audio_files_and_citations.json``, the cassette audio_files_and_citations.ipynb replays.

It runs the notebook's cells in an IPython shell with ``NBCHAT_REPLAY=record`` against a
scripted server that answers from TRANSCRIPT below, in the manner of OpenAI's models (an audio
model, a search model, gpt-4.1, gpt-5), with illustrative token counts. So the cassette holds
exactly the requests the notebook makes, but its replies were not recorded from OpenAI. Cells
tagged no-cassette (the local model's) are skipped. From the repository root:

    python notebooks/cassettes/make_audio_files_and_citations.py
"""

from __future__ import annotations

import base64
import json
import math
import struct

import httpx
from recorder import completion, record, stream_or_whole


def _spoken() -> str:
    """A third of a second of a soft two-note chime, as the API's pcm16 (24 kHz, mono)."""
    rate, samples = 24_000, 8_000
    frames = b"".join(
        struct.pack("<h", int(6000 * math.sin(2 * math.pi * (523 if i < 4000 else 659) * i / rate)))
        for i in range(samples)
    )
    return base64.b64encode(frames).decode()


ANSWER = "The tallest building in the world is the Burj Khalifa in Dubai, 828 metres tall."
SOURCES = [
    ("Burj Khalifa in Dubai", "https://www.burjkhalifa.ae/en/the-tower/", "The Tower"),
    ("828 metres tall", "https://en.wikipedia.org/wiki/Burj_Khalifa", "Burj Khalifa - Wikipedia"),
]
SQL = "SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY total DESC LIMIT 1"

# (words in the last user message, or "tool" after a tool call; the message; the usage)
TRANSCRIPT = [
    (
        "What do you hear",
        {"content": "A steady pure tone at about 440 Hz (the A above middle C), for half a second."},
        {"prompt_tokens": 27, "completion_tokens": 22, "prompt_tokens_details": {"audio_tokens": 8}},
    ),
    (
        "Say good morning",
        {
            "content": None,
            "audio": {
                "id": "audio_demo_1",
                "expires_at": 1747043600,
                "data": _spoken(),
                "transcript": "Bonjour ! Buongiorno !",
            },
        },
        {
            "prompt_tokens": 19,
            "completion_tokens": 41,
            "completion_tokens_details": {"audio_tokens": 33, "text_tokens": 8},
        },
    ),
    (
        "what happened to sales",
        {
            "content": "In the third quarter sales rose 12% to 4.1 million euros, and returns "
            "fell from 5% to 3%."
        },
        {"prompt_tokens": 318, "completion_tokens": 29},
    ),
    (
        "Rename the variable total",
        {
            "content": "```python\ndef total_price(items):\n    subtotal = 0\n"
            '    for item in items:\n        subtotal += item["price"] * item["quantity"]\n'
            "    return subtotal\n```"
        },
        {
            "prompt_tokens": 96,
            "completion_tokens": 44,
            "completion_tokens_details": {
                "accepted_prediction_tokens": 31,
                "rejected_prediction_tokens": 4,
            },
        },
    ),
    (
        "tallest building",
        {
            "content": ANSWER,
            "annotations": [
                {
                    "type": "url_citation",
                    "url_citation": {
                        "start_index": ANSWER.index(text),
                        "end_index": ANSWER.index(text) + len(text),
                        "url": url,
                        "title": title,
                    },
                }
                for text, url, title in SOURCES
            ],
        },
        {"prompt_tokens": 1210, "completion_tokens": 24},
    ),
    (
        "Which region sold the most",
        {
            "content": None,
            "tool_calls": [
                {"id": "call_sql", "type": "custom", "custom": {"name": "run_sql", "input": SQL}}
            ],
        },
        {"prompt_tokens": 88, "completion_tokens": 31},
    ),
    (
        "tool",
        {"content": "**North** sold the most: 180 in total (East 150, South 80)."},
        {"prompt_tokens": 131, "completion_tokens": 19},
    ),
]


def answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    last = body["messages"][-1]
    said = "tool" if last["role"] == "tool" else json.dumps(last.get("content"))
    for number, (words, message, usage) in enumerate(TRANSCRIPT):
        if words in said:
            break
    else:
        raise AssertionError(f"the transcript has no reply for {said[:80]}")
    reply = completion(
        message,
        usage,
        id=f"chatcmpl-demo{number}",
        created=1747040000,
        model=body["model"],
        service_tier="default",
    )
    return stream_or_whole(body, reply)


def main() -> None:
    record("audio_files_and_citations", answer)


if __name__ == "__main__":
    main()
