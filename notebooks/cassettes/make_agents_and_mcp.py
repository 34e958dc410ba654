"""Make ``agents_and_mcp.json``, the cassette the notebook agents_and_mcp.ipynb replays.

It runs the notebook's cells in an IPython shell with ``NBCHAT_REPLAY=record``, against a
scripted server that answers from TRANSCRIPT below: replies in the manner of a capable model
(gpt-4.1-mini), with illustrative token counts. The MCP time server and the code the model runs
are real, as they are when the notebook runs; the shell has no frontend, so the agent's
unapproved action is refused, as in a headless run. From the repository root:

    python notebooks/cassettes/make_agents_and_mcp.py
"""

from __future__ import annotations

import json
import os
import tempfile

import httpx
import nbformat
from recorder import HERE, completion, finish, stream_or_whole

MODEL = "gpt-4.1-mini-2025-04-14"

CODE = (
    "averages = {region: sum(values) / len(values) for region, values in sales.items()}\n"
    "ranked = sorted(averages.items(), key=lambda item: item[1], reverse=True)\n"
    "print(ranked)\n"
    "ranked[0][1] - ranked[1][1]"
)
SAVE = (
    "import csv\n"
    "with open('averages.csv', 'w', newline='') as f:\n"
    "    writer = csv.writer(f)\n"
    "    writer.writerow(['region', 'average'])\n"
    "    for region, values in sales.items():\n"
    "        writer.writerow([region, sum(values) / len(values)])"
)


def call(name: str, arguments: dict, ident: str) -> dict:
    return {
        "id": ident,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))},
    }


# (words in the last message, the reply, prompt tokens, completion tokens)
TRANSCRIPT = [
    (
        "Olympus Mons",
        {
            "content": None,
            "tool_calls": [
                call("time__get_current_time", {"timezone": "Mars/Olympus_Mons"}, "call_mars")
            ],
        },
        212,
        24,
    ),
    (
        "Invalid timezone",
        {
            "content": "I can't tell you: Mars has no time zone in the IANA database the time "
            "server uses, so it rejected `Mars/Olympus_Mons`. Martian time is usually given as "
            "*Coordinated Mars Time* (MTC), which that server does not know."
        },
        281,
        52,
    ),
    (
        "highest average",
        {
            "content": "Let me look at `sales` first.",
            "tool_calls": [call("describe_variable", {"name": "sales"}, "call_look")],
        },
        402,
        31,
    ),
    (
        "`sales`: dict",
        {
            "content": "Now I'll compute the averages.",
            "tool_calls": [call("run_python", {"code": CODE}, "call_run")],
        },
        520,
        96,
    ),
    (
        "result: 45.0",
        {
            "content": "**West** has the highest average, 160 a month, which is **45 more** than "
            "north (115); south averages 75."
        },
        611,
        33,
    ),
    (
        "averages.csv",
        {"content": None, "tool_calls": [call("run_python", {"code": SAVE}, "call_save")]},
        418,
        88,
    ),
    (
        "nobody can approve",
        {
            "content": "I couldn't write the file: actions need your approval and nobody could "
            "give it in this run. Run this yourself to create `averages.csv`:\n\n```python\n"
            + SAVE
            + "\n```"
        },
        530,
        110,
    ),
]


def answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    last = body["messages"][-1]
    said = json.dumps(last.get("content"))
    for words, message, prompt, completion_tokens in TRANSCRIPT:
        if words in said or words in str(last.get("content")):
            break
    else:
        raise AssertionError(f"the transcript has no reply for {said[:120]}")
    reply = completion(
        message,
        {"prompt_tokens": prompt, "completion_tokens": completion_tokens},
        id=f"chatcmpl-{abs(hash(words)) % 10**8}",
        created=1765000000,
        model=MODEL,
    )
    return stream_or_whole(body, reply)


def main() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from nbchat import Client
    from nbchat.conversation import sessions
    from nbchat.mcpclient.registry import close_all

    cassette = HERE / "agents_and_mcp.json"
    cassette.unlink(missing_ok=True)
    client = Client(
        api_key="sk-scripted-not-a-key",
        base_url="https://api.openai.com/v1",
        transport=httpx.MockTransport(answer),
    )
    sessions.client_for = lambda settings: client
    os.chdir(tempfile.mkdtemp())
    shell = InteractiveShell.instance()
    notebook = nbformat.read(HERE.parent / "agents_and_mcp.ipynb", as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code" or "raises-exception" in cell.metadata.get("tags", []):
            continue
        source = cell.source.replace('Path("cassettes/', f'Path("{HERE}/')
        result = shell.run_cell(source)
        if not result.success and "assert" not in source:
            raise SystemExit(f"a cell failed: {source[:80]}")
        if os.environ.get("NBCHAT_REPLAY") == "replay":
            os.environ["NBCHAT_REPLAY"] = "record"  # the setup cell asks for replay
    close_all()
    finish(cassette)


if __name__ == "__main__":
    main()
