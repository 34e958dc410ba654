"""Display bundles for replies, conversations, requests and errors: our HTML plus plain text.

Pure functions from results to mimebundles; they never send HTTP. Outside text goes through
the one renderer (markdown.py); every value our chrome interpolates goes through ``escape``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..convert.audio import spoken_reply
from ..convert.citations import citations_of, cited_markdown, cited_text
from ..convert.reasoning import reasoning_of, split_think
from ..protocol.exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
)
from ..protocol.types import ChatCompletion
from ..transport.prepared import PreparedRequest
from .markdown import (
    allowed_url,
    code_block,
    escape,
    html_bundle,
    inline_code,
    render_markdown,
)
from .provenance import footer_parts
from .thinking import reasoning_tokens, thinking_html, thinking_text

__all__ = [
    "MUTED",
    "RULE",
    "WIDGET_VIEW",
    "error_bundle",
    "footer_html",
    "footer_text",
    "history_bundle",
    "message_bundle",
    "message_html",
    "reply_bundle",
    "reply_metadata",
    "request_bundle",
    "tool_call_html",
    "tool_result_text",
    "turn_heading",
    "widget_view_bundle",
]

#: The MIME type of an ipywidgets view in an output.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

#: What each role's turn is headed, here and in the panel (no emoji: fonts without them show
#: boxes).
ROLE_HEADINGS = {
    "user": "You",
    "assistant": "Assistant",
    "system": "System prompt",
    "tool": "Tool result",
    "developer": "Developer prompt",
}

_FINISH_WARNINGS = {
    "length": "The reply was cut off: it reached max_tokens (finish_reason: length).",
    "content_filter": "The reply was stopped by the content filter (finish_reason: "
    "content_filter).",
}

# Our chrome's colours: JupyterLab's theme variables (light and dark), with fallbacks that are
# readable on either background for nbconvert's export and other frontends.
#: Our chrome's quiet text (footers, notes) and the rule between parts, in every theme.
MUTED = "font-size:0.85em;opacity:0.75"
RULE = "var(--jp-border-color2, rgba(127,127,127,0.35))"


def turn_heading(role: str) -> str:
    """A turn's heading, ours: "You", "Assistant"… (the role itself for one not known)."""
    label = ROLE_HEADINGS.get(role, role)
    return f'<div class="nbchat-turn-head"><strong>{escape(label)}</strong></div>'


def widget_view_bundle(widget: Any, text: str) -> dict[str, Any]:
    """The widget's view with ``text`` as the plain-text stand-in."""
    return {
        WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id},
        "text/plain": text,
    }


def _callout(kind: str, body: str) -> str:
    """A note, warning or refusal: a coloured left border on a faint tint of the same colour."""
    colour, tint = {
        "info": ("var(--jp-info-color1, #1e88e5)", "rgba(30,136,229,0.08)"),
        "warn": ("var(--jp-warn-color1, #f57c00)", "rgba(245,124,0,0.10)"),
        "error": ("var(--jp-error-color1, #d32f2f)", "rgba(211,47,47,0.08)"),
    }[kind]
    return (
        f'<div class="nbchat-{kind}" style="border-left:3px solid {colour};background:{tint};'
        f'padding:0.2em 0.6em;margin:0.3em 0">{body}</div>'
    )


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
        if details is not None and details.audio_tokens:
            extra.append(f"{details.audio_tokens} audio in")
        cdetails = usage.completion_tokens_details
        if cdetails is not None and cdetails.reasoning_tokens:
            extra.append(f"{cdetails.reasoning_tokens} reasoning")
        if cdetails is not None and cdetails.audio_tokens:
            extra.append(f"{cdetails.audio_tokens} audio out")
        if extra:
            tokens += f" ({', '.join(extra)})"
        parts.append(tokens)
        if cdetails is not None and (
            cdetails.accepted_prediction_tokens or cdetails.rejected_prediction_tokens
        ):
            accepted = cdetails.accepted_prediction_tokens or 0
            rejected = cdetails.rejected_prediction_tokens or 0
            parts.append(f"prediction: {accepted} accepted, {rejected} rejected")
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
    if completion.service_tier:
        # The tier that served the request (it may differ from the one asked for).
        parts.append(f"tier {completion.service_tier}")
    parts.extend(more)
    return " · ".join(parts)


def footer_html(
    completion: ChatCompletion,
    *,
    time_to_first_token: float | None = None,
    elapsed: float | None = None,
    counted_tokens: int = 0,
) -> str:
    """The footer line, escaped; the completion id, fingerprint and tier in its tooltip."""
    text = footer_text(
        completion,
        time_to_first_token=time_to_first_token,
        elapsed=elapsed,
        counted_tokens=counted_tokens,
    )
    return _footer_div(completion, text)


def _footer_div(completion: ChatCompletion, text: str) -> str:
    details = [
        f"{label}: {value}"
        for label, value in (
            ("id", completion.id),
            ("system_fingerprint", completion.system_fingerprint),
            ("service_tier", completion.service_tier),
        )
        if value
    ]
    title = f' title="{escape(chr(10).join(details))}"' if details else ""
    return (
        f'<div class="nbchat-footer" style="{MUTED};margin-top:0.4em"{title}>{escape(text)}</div>'
    )


def tool_call_html(name: Any, arguments: Any, call_id: Any = None, *, limit: int = 200) -> str:
    """One tool call as the model asked for it: name and arguments shown exactly, id muted."""
    shown = _short(_as_text(arguments or ""), limit)
    ident = f' <span style="{MUTED}">{escape(call_id)}</span>' if call_id else ""
    return (
        f'<div class="nbchat-tool-call"><span style="{MUTED}">tool call</span> '
        f"{inline_code(f'{name}({shown})')}{ident}</div>"
    )


def _choice_parts(
    choice: Any,
    content_html: str | None = None,
    reasoning: tuple[str, int, bool] | None = None,
    audio_format: str | None = None,
) -> tuple[str, str]:
    """(html, plain text) of one choice's message; ``content_html``: its content, rendered;
    ``reasoning``: (thinking, tokens, exact) shown above it, collapsed; ``audio_format``: the
    format a spoken reply was asked in."""
    message = choice.message
    parts: list[str] = []
    text: list[str] = []
    if reasoning is not None:
        thought, tokens, exact = reasoning
        parts.append(thinking_html(thought, tokens, exact=exact))
        text.append(thinking_text(thought, tokens, exact=exact))
    if message.refusal:
        refusal = f"<strong>Refused:</strong> {render_markdown(message.refusal)}"
        parts.append(_callout("error", refusal))
        text.append(f"[refused] {message.refusal}")
    # A leading <think> block is the model's thinking, not its answer.
    content = split_think(message.content)[1]
    citations = citations_of(message)
    if content:
        if citations:
            # Numbered links after the passages cited: the content is rendered again with them.
            parts.append(render_markdown(cited_markdown(content, citations)))
            text.append(cited_text(content, citations))
        else:
            parts.append(render_markdown(content) if content_html is None else content_html)
            text.append(content)
    if citations:
        sources_html, sources_text = _sources(citations)
        parts.append(sources_html)
        text.append(sources_text)
    spoken_html, spoken_text = _spoken(message.audio, audio_format)
    if spoken_html:
        parts.append(spoken_html)
        text.append(spoken_text)
    for call in message.tool_calls or ():
        name = call.name or call.type
        parts.append(tool_call_html(name, call.payload, call.id))
        text.append(f"[tool call] {name}({call.payload})")
    if message.function_call is not None:
        function = message.function_call
        parts.append(tool_call_html(function.name, function.arguments))
        text.append(f"[function call] {function.name}({function.arguments})")
    warning = _FINISH_WARNINGS.get(choice.finish_reason or "")
    if warning:
        parts.append(_callout("warn", f"⚠ {escape(warning)}"))
        text.append(f"[warning] {warning}")
    return "".join(parts), "\n".join(text)


def _sources(citations: list[Any]) -> tuple[str, str]:
    """The numbered list of the web sources a reply cites: each a link where the URL policy
    allows one, else its title and URL as text."""
    items: list[str] = []
    lines = ["Sources:"]
    seen: set[int] = set()
    for citation in citations:
        if citation.number in seen:
            continue
        seen.add(citation.number)
        title = escape(citation.title)
        if allowed_url(citation.url):
            shown = f'<a href="{escape(citation.url)}" rel="noopener noreferrer">{title}</a>'
        else:
            shown = f"{title} <code>{escape(citation.url)}</code>"
        items.append(f'<li value="{citation.number}">{shown}</li>')
        lines.append(f"  [{citation.number}] {citation.title} — {citation.url}")
    html = (
        f'<div class="nbchat-sources" style="{MUTED}">Sources'
        f'<ol style="margin:0.2em 0">{"".join(items)}</ol></div>'
    )
    return html, "\n".join(lines)


def _spoken(audio: Any, audio_format: str | None) -> tuple[str, str]:
    """A spoken reply: a player for its audio, and its transcript through the renderer."""
    spoken = spoken_reply(audio, audio_format)
    if spoken is None or not (spoken.data or spoken.transcript):
        return "", ""
    player = str(spoken.player()._repr_html_()) if spoken.data else ""
    transcript = render_markdown(spoken.transcript) if spoken.transcript else ""
    html = (
        f'<div class="nbchat-audio"><span title="{escape(spoken.summary())}">🔊</span>'
        f"{player}{transcript}</div>"
    )
    return html, f"[spoken] {spoken.transcript}"


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
    content_html: str | None = None,
    reasoning: bool = True,
    reasoning_counted: int = 0,
    audio_format: str | None = None,
) -> dict[str, str]:
    """Notes, each choice (its thinking collapsed above it), warnings and the footer.

    ``prefix`` is (html, text) of our own; ``content_html`` the one choice's content, already
    rendered by ``render_markdown``; ``reasoning_counted`` the first choice's thinking chunks
    counted while it streamed, for servers that report no ``reasoning_tokens``.
    """
    parts: list[str] = [prefix[0]] if prefix[0] else []
    text: list[str] = [prefix[1]] if prefix[1] else []
    for note in notes or ():
        parts.append(_callout("info", f"<strong>Note:</strong> {escape(note)}"))
        text.append(f"[note] {note}")
    many = len(completion.choices) > 1
    for choice in completion.choices:
        thought = reasoning_of(choice.message) if reasoning else None
        shown = None
        if thought:
            # The server's reasoning_tokens cover every choice: a count for one choice only.
            tokens, exact = (0, False) if many else reasoning_tokens(completion, 0)
            if not tokens and choice.index == 0:
                tokens = reasoning_counted
            shown = (thought, tokens, exact)
        choice_html, choice_text = _choice_parts(
            choice, None if many else content_html, shown, audio_format
        )
        if many:
            number = escape(choice.index + 1)
            parts.append(
                f'<div class="nbchat-choice" style="border-top:1px solid {RULE};'
                f'margin-top:0.5em"><strong>Choice {number}</strong>{choice_html}</div>'
            )
            text.append(f"--- choice {choice.index + 1} ---\n{choice_text}")
        else:
            parts.append(choice_html)
            text.append(choice_text)
    if interrupted:
        parts.append(
            _callout(
                "warn",
                "<strong>Interrupted</strong> — the partial reply above is kept in the "
                "conversation.",
            )
        )
        text.append("[interrupted: the partial reply is kept]")
    footer = footer_text(
        completion,
        time_to_first_token=time_to_first_token,
        elapsed=elapsed,
        counted_tokens=counted_tokens,
        more=footer_extra,
    )
    parts.append(_footer_div(completion, footer))
    text.append(f"— {footer}")
    return html_bundle("".join(parts), "\n".join(p for p in text if p))


def reply_metadata(reply: Any) -> dict[str, Any]:
    """The display output's metadata: how the answer was obtained (``metadata["nbchat"]``)."""
    meta = getattr(reply, "metadata", None)
    return {"nbchat": meta} if isinstance(meta, dict) else {}


def reply_bundle(
    reply: Any,
    *,
    content_html: str | None = None,
    reasoning: bool = True,
    reasoning_counted: int = 0,
    tools: bool = True,
) -> dict[str, str]:
    """The finished reply: tool rounds, thinking, the answer, warnings and the footer.

    ``content_html``: the answer already rendered (the live view's blocks), if it has it.
    ``reasoning``/``tools``: False leaves out the thinking or the tool rounds (text mode wrote
    them while the reply streamed).
    """
    prefix = tool_rounds_html(reply) if tools else ("", "")
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
        content_html=content_html,
        reasoning=reasoning,
        reasoning_counted=reasoning_counted,
        audio_format=_asked_audio_format(reply),
    )


def _asked_audio_format(reply: Any) -> str | None:
    asked = (getattr(reply, "request", None) or {}).get("audio")
    return asked.get("format") if isinstance(asked, dict) else None


def tool_rounds_html(reply: Any) -> tuple[str, str]:
    """Each tool call of the reply with its result, in a collapsible block: (html, text)."""
    results = list(getattr(reply, "tool_results", ()) or ())
    if not results:
        return "", ""
    parts: list[str] = []
    text: list[str] = []
    for result in results:
        mark = "✓" if getattr(result, "ok", True) else "✗"
        args = _short(_as_text(getattr(result, "arguments", "")), 120)
        output = _as_text(result.message().get("content", ""))
        call_id = getattr(result, "tool_call_id", None)
        ident = f' <span style="{MUTED}">{escape(call_id)}</span>' if call_id else ""
        parts.append(
            f'<details class="nbchat-tool-result"><summary>{mark} '
            f"{inline_code(f'{result.name}({args})')}{ident}</summary>"
            f"{code_block(_short(output, 4000))}</details>"
        )
        text.append(tool_result_text(result))
    return "".join(parts), "\n".join(text)


def tool_result_text(result: Any) -> str:
    """One tool call and its result on one plain line: ``[tool] add(...) -> 42``."""
    mark = "" if getattr(result, "ok", True) else " (failed)"
    args = _short(_as_text(getattr(result, "arguments", "")), 120)
    output = _as_text(result.message().get("content", ""))
    return f"[tool] {result.name}({args}){mark} -> {_short(output, 300)}"


def _message_text(content: Any) -> str:
    if isinstance(content, list):
        # Images are never shown from the history: their URLs may be remote, and data URLs
        # would put megabytes into the notebook again.
        return " ".join(
            str(part.get("text", "")) if part.get("type") == "text" else "[image]"
            for part in content
            if isinstance(part, dict)
        )
    return "" if content is None else str(content)


def message_html(message: dict[str, Any], interrupted: bool = False) -> tuple[str, str]:
    """One message of a conversation as (html, plain text): role, content, tool calls, ids.

    The one renderer of history messages, shared by ``%chat history`` and the panel.
    """
    role = str(message.get("role", "?"))
    shown = _message_text(message.get("content"))
    mark = " <em>(interrupted)</em>" if interrupted else ""
    label = ROLE_HEADINGS.get(role, role)
    head = f"<strong>{escape(label)}</strong>{mark}"
    calls: list[str] = []
    extra_text = ""
    for call in message.get("tool_calls") or ():
        # A function's name and arguments, or a custom tool's name and input.
        kind = call.get("type", "function") if isinstance(call, dict) else "function"
        fn = (call.get(kind) or {}) if isinstance(call, dict) else {}
        given = fn.get("arguments", fn.get("input", ""))
        calls.append(tool_call_html(fn.get("name"), given, call.get("id")))
        extra_text += f"\n  [tool call] {fn.get('name')}({_short(_as_text(given), 200)})"
    audio = message.get("audio")
    if isinstance(audio, dict) and audio.get("id"):
        # A spoken turn: the server keeps its audio, the conversation its id.
        calls.append(f'<div style="{MUTED}">🔊 spoken reply {escape(audio["id"])}</div>')
        extra_text += f"\n  [spoken reply {audio['id']}]"
    if role == "tool":
        answer = f' <span style="{MUTED}">answer to {escape(message.get("tool_call_id"))}</span>'
        body = head + answer + code_block(_short(shown, 4000))
        extra_text = f" (answer to {message.get('tool_call_id')})"
    else:
        body = head + render_markdown(shown) + "".join(calls)
    plain = f"[{role}]{' (interrupted)' if interrupted else ''} {shown}{extra_text}"
    return f'<div class="nbchat-message">{body}</div>', plain


def message_bundle(message: dict[str, Any], interrupted: bool = False) -> dict[str, str]:
    """One history message as a display bundle."""
    body, plain = message_html(message, interrupted)
    return html_bundle(body, plain)


def history_bundle(chat: Any) -> dict[str, str]:
    """The whole conversation, one block per message."""
    parts: list[str] = []
    text: list[str] = []
    interrupted = set(chat.interrupted)
    for i, message in enumerate(chat.messages):
        body, plain = message_html(message, i in interrupted)
        parts.append(body)
        text.append(plain)
    # The system prompt is shown but not counted: after a reset the conversation is empty.
    count = sum(1 for message in chat.messages if message.get("role") != "system")
    if not count:
        parts.append("<p><em>The conversation is empty.</em></p>")
        text.append("(empty conversation)")
    size = "empty" if not count else f"{count} message{'' if count == 1 else 's'}"
    title = f"Conversation '{chat.name}' — {size}"
    rule = f'<hr style="border:none;border-top:1px solid {RULE}">'
    return html_bundle(
        f"<h4>{escape(title)}</h4>" + rule.join(parts), title + "\n" + "\n".join(text)
    )


def request_bundle(
    request: PreparedRequest | dict[str, Any], *, url: str = "", title: str = "Request"
) -> dict[str, str]:
    """A prepared request (method, URL, masked headers, body) or any JSON body, pretty-printed.

    The JSON is shown in an escaped ``<pre>``: no Markdown fence that a value could close.
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
    page = f"<strong>{escape(head)}</strong>"
    if headers:
        page += code_block(headers)
    page += code_block(shown, "json")
    return html_bundle(page, "\n".join(filter(None, [head, headers, shown])))


_DATA_URL_SHOWN = 80


def _elide_data_urls(value: Any, key: str = "") -> Any:
    """Long data URLs (images, files) and base64 recordings (``input_audio.data``) shortened."""
    if isinstance(value, dict):
        return {name: _elide_data_urls(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [_elide_data_urls(item) for item in value]
    if (
        isinstance(value, str)
        and (value.startswith("data:") or key == "data")
        and len(value) > 2 * _DATA_URL_SHOWN
    ):
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
        f'<tr><th style="text-align:left;padding-right:1em;vertical-align:top">{escape(k)}</th>'
        f'<td style="text-align:left;white-space:pre-wrap">{escape(v)}</td></tr>'
        for k, v in rows
    )
    card = (
        '<div class="nbchat-error" style="border-left:4px solid var(--jp-error-color1, #d32f2f);'
        'padding:0.4em 0.8em;background:rgba(211,47,47,0.08)">'
        f"<strong>⚠ {escape(name)}</strong><table>{cells}</table></div>"
    )
    text = f"{name}\n" + "\n".join(f"  {k}: {v}" for k, v in rows)
    return html_bundle(card, text)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)
