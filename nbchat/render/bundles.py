"""Display bundles for replies, conversations and errors: Markdown or HTML plus plain text.

Pure functions from results to mimebundles; they never send HTTP. Model text is sanitized.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from ..protocol.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
)
from ..protocol.types import ChatCompletion
from ..transport.prepared import PreparedRequest
from .markdown import sanitize_markdown
from .provenance import footer_parts

__all__ = [
    "error_bundle",
    "footer_text",
    "history_bundle",
    "reply_bundle",
    "request_bundle",
]

_FINISH_WARNINGS = {
    "length": "The reply was cut off: it reached max_tokens (finish_reason: length).",
    "content_filter": "The reply was stopped by the content filter (finish_reason: "
    "content_filter).",
}


def footer_text(
    completion: ChatCompletion,
    *,
    time_to_first_token: float | None = None,
    elapsed: float | None = None,
    counted_tokens: int = 0,
    more: Sequence[str] = (),
) -> str:
    """model · finish_reason · tokens · time to first token · tokens per second · ``more``."""
    parts = [completion.model or "unknown model"]
    reasons = sorted({c.finish_reason or "unfinished" for c in completion.choices})
    if reasons:
        parts.append("finish: " + ", ".join(reasons))
    usage = completion.usage
    if usage is not None:
        tokens = (
            f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion = "
            f"{usage.total_tokens} tokens"
        )
        extra = []
        details = usage.prompt_tokens_details
        if details is not None and details.cached_tokens:
            extra.append(f"{details.cached_tokens} cached")
        cdetails = usage.completion_tokens_details
        if cdetails is not None and cdetails.reasoning_tokens:
            extra.append(f"{cdetails.reasoning_tokens} reasoning")
        if extra:
            tokens += f" ({', '.join(extra)})"
        parts.append(tokens)
    elif counted_tokens:
        # Servers that send no usage in streams still send about one token per chunk.
        parts.append(f"~{counted_tokens} completion tokens (counted; no usage from the server)")
    generated = usage.completion_tokens if usage is not None else counted_tokens
    if time_to_first_token is not None:
        parts.append(f"first token {time_to_first_token:.2f} s")
        generating = (elapsed or 0) - time_to_first_token
        if generated and generating > 0:
            parts.append(f"{generated / generating:.1f} tokens/s")
    elif elapsed:
        # Unstreamed: one wait for the whole reply, prompt processing included.
        parts.append(f"{elapsed:.2f} s")
        if generated:
            parts.append(f"{generated / elapsed:.1f} tokens/s overall")
    parts.extend(more)
    return " · ".join(parts)


def _choice_markdown(choice: Any) -> tuple[str, str]:
    """(markdown, plain text) of one choice's message."""
    message = choice.message
    md: list[str] = []
    text: list[str] = []
    if message.refusal:
        md.append(f"> 🚫 **Refused:** {sanitize_markdown(message.refusal)}")
        text.append(f"[refused] {message.refusal}")
    if message.content:
        md.append(sanitize_markdown(message.content))
        text.append(message.content)
    for call in message.tool_calls or ():
        md.append(f"🔧 `{call.function.name}({_short(call.function.arguments, 200)})`")
        text.append(f"[tool call] {call.function.name}({call.function.arguments})")
    warning = _FINISH_WARNINGS.get(choice.finish_reason or "")
    if warning:
        md.append(f"> ⚠️ {warning}")
        text.append(f"[warning] {warning}")
    return "\n\n".join(md), "\n".join(text)


def completion_bundle(
    completion: ChatCompletion,
    *,
    time_to_first_token: float | None = None,
    elapsed: float | None = None,
    interrupted: bool = False,
    notes: list[str] | None = None,
    prefix: tuple[str, str] = ("", ""),
    counted_tokens: int = 0,
    footer_extra: Sequence[str] = (),
) -> dict[str, str]:
    md: list[str] = [prefix[0]] if prefix[0] else []
    text: list[str] = [prefix[1]] if prefix[1] else []
    for note in notes or ():
        md.append(f"> ℹ️ {html.escape(note)}")
        text.append(f"[note] {note}")
    many = len(completion.choices) > 1
    for choice in completion.choices:
        choice_md, choice_text = _choice_markdown(choice)
        if many:
            md.append(f"**Choice {choice.index + 1}**\n\n{choice_md}")
            text.append(f"--- choice {choice.index + 1} ---\n{choice_text}")
        else:
            md.append(choice_md)
            text.append(choice_text)
    if interrupted:
        md.append("> ⏹ **Interrupted** — the partial reply above is kept in the conversation.")
        text.append("[interrupted: the partial reply is kept]")
    footer = footer_text(
        completion,
        time_to_first_token=time_to_first_token,
        elapsed=elapsed,
        counted_tokens=counted_tokens,
        more=footer_extra,
    )
    md.append(f"<sub>{html.escape(footer)}</sub>")
    text.append(f"— {footer}")
    return {"text/markdown": "\n\n".join(p for p in md if p), "text/plain": "\n".join(text)}


def reply_bundle(reply: Any) -> dict[str, str]:
    """The finished reply: tool rounds, the answer as Markdown, warnings and the footer."""
    prefix = tool_rounds_markdown(reply)
    # A cached reply's timings are the replay's, not the model's: the footer leaves them out.
    cached = getattr(reply, "cached", False)
    return completion_bundle(
        reply.completion,
        time_to_first_token=None if cached else reply.time_to_first_token,
        elapsed=None if cached else reply.elapsed,
        interrupted=reply.interrupted,
        notes=reply.notes,
        prefix=prefix,
        counted_tokens=getattr(reply, "output_chunks", 0),
        footer_extra=footer_parts(reply),
    )


def tool_rounds_markdown(reply: Any) -> tuple[str, str]:
    """Each tool call of the reply with its result, in a collapsible block."""
    results = list(getattr(reply, "tool_results", ()) or ())
    if not results:
        return "", ""
    md: list[str] = []
    text: list[str] = []
    for result in results:
        ok = getattr(result, "ok", True)
        mark = "✅" if ok else "❌"
        args = _short(_as_text(getattr(result, "arguments", "")), 120)
        output = _as_text(result.message().get("content", ""))
        summary = f"{mark} {html.escape(result.name)}({html.escape(args)})"
        md.append(
            f"<details><summary>{summary}</summary>\n\n```json\n{_short(output, 4000)}\n```\n\n"
            "</details>"
        )
        text.append(f"[tool] {result.name}({args}) -> {_short(output, 300)}")
    return "\n".join(md), "\n".join(text)


def history_bundle(chat: Any) -> dict[str, str]:
    """The whole conversation, one block per message."""
    md: list[str] = []
    text: list[str] = []
    interrupted = set(chat.interrupted)
    for i, message in enumerate(chat.messages):
        role = message.get("role", "?")
        content = message.get("content")
        if isinstance(content, list):
            shown = " ".join(
                part.get("text", "") if part.get("type") == "text" else "[image]"
                for part in content
            )
        else:
            shown = content or ""
        extra = ""
        for call in message.get("tool_calls") or ():
            fn = call.get("function", {})
            extra += f"\n\n🔧 `{fn.get('name')}({_short(fn.get('arguments', ''), 200)})`"
        if role == "tool":
            extra = f" *(answer to {message.get('tool_call_id')})*"
        mark = " *(interrupted)*" if i in interrupted else ""
        md.append(f"**{role}**{mark}: {sanitize_markdown(shown)}{extra}")
        text.append(f"[{role}]{' (interrupted)' if mark else ''} {shown}{extra}")
    if not md:
        md.append("*The conversation is empty.*")
        text.append("(empty conversation)")
    title = f"Conversation '{chat.name}' — {len(md)} messages"
    return {
        "text/markdown": f"#### {html.escape(title)}\n\n" + "\n\n---\n\n".join(md),
        "text/plain": title + "\n" + "\n".join(text),
    }


def request_bundle(
    request: PreparedRequest | dict[str, Any], *, url: str = "", title: str = "Request"
) -> dict[str, str]:
    """A prepared request (method, URL, masked headers, body) or any JSON body, pretty-printed.

    Long data URLs are shortened for display: an image would otherwise put megabytes of base64
    into the notebook.
    """
    lines: list[str] = []
    if isinstance(request, PreparedRequest):
        head = f"{title}: {request.method} {request.url}"
        lines = [f"{name}: {value}" for name, value in request.headers.items()]
        body = request.body
    else:
        head = f"{title}: POST {url}" if url else title
        body = request
    shown = json.dumps(_elide_data_urls(body), indent=2, ensure_ascii=False)
    headers = "\n".join(lines)
    markdown = f"**{html.escape(head)}**\n\n"
    if headers:
        markdown += f"```\n{headers}\n```\n\n"
    return {
        "text/markdown": markdown + f"```json\n{shown}\n```",
        "text/plain": "\n".join(filter(None, [head, headers, shown])),
    }


_DATA_URL_SHOWN = 80


def _elide_data_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _elide_data_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_elide_data_urls(item) for item in value]
    if isinstance(value, str) and value.startswith("data:") and len(value) > 2 * _DATA_URL_SHOWN:
        head, tail = value[:_DATA_URL_SHOWN], value[-_DATA_URL_SHOWN:]
        hidden = len(value) - 2 * _DATA_URL_SHOWN
        return f"{head}…({hidden:,} characters not shown)…{tail}"
    return value


def _hint(error: BaseException) -> str | None:
    if isinstance(error, APITimeoutError):
        return "The server took too long. Raise %config Chat.timeout, or check the server."
    if isinstance(error, APIConnectionError):
        return "Is the server running and the base URL right? %chat config shows the endpoint."
    if isinstance(error, IncompleteStreamError):
        return "The partial reply is kept; run the cell again to retry."
    if not isinstance(error, APIStatusError):
        return None
    code = error.code
    retries = f" after {error.retries} retries" if error.retries else ""
    if code == "context_length_exceeded":
        return (
            "The conversation is too long for the model: %chat reset, %chat undo, or a "
            "shorter prompt."
        )
    if code == "insufficient_quota":
        return "The account has no quota left; check its plan and billing. Not retried."
    if error.status_code == 401 or code == "invalid_api_key":
        return (
            "Set OPENAI_API_KEY in the environment that starts Jupyter, or in the notebook "
            "without saving it: import os, getpass; os.environ['OPENAI_API_KEY'] = "
            "getpass.getpass()"
        )
    if (
        error.status_code == 400
        and "json" in (error.message or "").lower()
        and (error.param in (None, "messages", "response_format"))
    ):
        return (
            "In JSON mode some servers (OpenAI among them) want the word JSON in the messages: "
            "say 'reply in JSON' in the prompt or the system prompt."
        )
    if error.status_code == 403:
        return "This key may not use this model or endpoint."
    if error.status_code == 404 or code == "model_not_found":
        return (
            "Check the model name (%chat config shows it; nbchat.Client().models() lists "
            "what the server has) and the base URL."
        )
    if error.status_code == 429:
        return f"Rate limited{retries}. Wait a moment and run the cell again."
    if error.status_code >= 500:
        return f"The server failed{retries}. Try again shortly."
    return None


def error_bundle(error: BaseException) -> dict[str, str]:
    """A compact card: status, type, code, param, message and a hint. Never the key."""
    rows: list[tuple[str, str]] = []
    name = type(error).__name__
    if isinstance(error, APIStatusError):
        rows.append(("status", str(error.status_code)))
        for label in ("type", "code", "param", "request_id"):
            value = getattr(error, label)
            if value:
                rows.append((label, str(value)))
        if error.retries:
            rows.append(("retries", str(error.retries)))
    message = error.message if isinstance(error, APIError) else str(error)
    rows.append(("message", message))
    hint = _hint(error)
    if hint:
        rows.append(("hint", hint))
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    card = (
        "<div style='border-left:4px solid #d32f2f;padding:0.4em 0.8em;"
        "background:rgba(211,47,47,0.06)'>"
        f"<strong>⚠ {html.escape(name)}</strong><table>{cells}</table></div>"
    )
    text = f"{name}\n" + "\n".join(f"  {k}: {v}" for k, v in rows)
    return {"text/html": card, "text/plain": text}


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
