"""Make ``replay_and_costs.json``, the cassette the notebook replay_and_costs.ipynb replays.

It runs the notebook's cells in an IPython shell with ``NBCHAT_REPLAY=record``, against a
scripted server that answers from TRANSCRIPT below: replies in the manner of a capable model
(gpt-4.1-mini), with illustrative token counts. So the cassette holds exactly the requests the
notebook makes, but its replies were not recorded from OpenAI. Cells tagged raises-exception are
skipped (the request the cassette must lack, the budget refusals). From the repository root:

    python notebooks/cassettes/make_replay_and_costs.py
"""

from __future__ import annotations

import json

import httpx
from recorder import completion, record, stream_or_whole

MODEL = "gpt-4.1-mini-2025-04-14"

# (words in the last user message, or "tool" for the round after tool calls; the reply;
# prompt tokens; completion tokens)
TRANSCRIPT = [
    (
        "why the sky is blue",
        {
            "content": "Sunlight looks white, but it is really a mix of every colour, and each "
            "colour travels as a wave of a different length. When sunlight hits the tiny "
            "molecules of the air, the short blue waves get bounced around (scattered) much "
            "more than the long red ones. So blue light reaches your eyes from every part of "
            "the sky, and the whole sky looks blue."
        },
        31,
        79,
    ),
    (
        "most confirmed moons",
        {"content": '{"name":"Saturn","confirmed_moons":146,"has_rings":true}'},
        112,
        17,
    ),
    (
        "250 euros and 40 pounds",
        {
            "content": None,
            "tool_calls": [
                {
                    "id": "call_eur",
                    "type": "function",
                    "function": {
                        "name": "convert",
                        "arguments": '{"amount":250,"currency":"EUR","to":"USD"}',
                    },
                },
                {
                    "id": "call_gbp",
                    "type": "function",
                    "function": {
                        "name": "convert",
                        "arguments": '{"amount":40,"currency":"GBP","to":"USD"}',
                    },
                },
            ],
        },
        96,
        58,
    ),
    (
        "tool",
        {
            "content": "250 euros are **$270.00** and 40 pounds are **$50.80**, at 1.08 dollars "
            "to the euro and 1.27 to the pound: **$320.80** in all."
        },
        201,
        41,
    ),
]


def answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    last = body["messages"][-1]
    said = "tool" if last["role"] == "tool" else json.dumps(last["content"])
    for words, message, prompt, completion_tokens in TRANSCRIPT:
        if words in said:
            break
    else:
        raise AssertionError(f"the transcript has no reply for {said[:80]}")
    reply = completion(
        message,
        {"prompt_tokens": prompt, "completion_tokens": completion_tokens},
        id=f"chatcmpl-{abs(hash(words)) % 10**8}",
        created=1747040000,
        model=MODEL,
        system_fingerprint="fp_transcript",
    )
    return stream_or_whole(body, reply)


def main() -> None:
    record("replay_and_costs", answer)


if __name__ == "__main__":
    main()
