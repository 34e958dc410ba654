"""What a ``%%chat`` cell does once its options are parsed: build the request, send, display.

Kept apart from the magic's declaration so the magic stays a thin parser.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from .settings import Chat as ChatSettings

__all__ = ["ChatCellError", "run_cell", "subcommand"]


class ChatCellError(Exception):
    """Fails a cell after its error was shown as a card: one line, no traceback."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}: {self}\x1b[0m"]


def _show(bundle: dict[str, str]) -> None:
    display(bundle, raw=True)


def display_mode(shell: Any, settings: ChatSettings) -> str:
    if settings.display != "auto":
        return settings.display
    # Terminal IPython has no frontend to update a display in place.
    return "text" if type(shell).__name__ == "TerminalInteractiveShell" else "live"


def overrides_from(args: Any, settings: ChatSettings, namespace: dict[str, Any]) -> dict[str, Any]:
    """Request fields from the settings, then the cell's options on top."""
    fields: dict[str, Any] = dict(settings.request)
    if settings.model:
        fields["model"] = settings.model
    if settings.temperature is not None:
        fields["temperature"] = settings.temperature
    if settings.max_tokens is not None:
        fields["max_tokens"] = settings.max_tokens
    cell = {
        "model": args.model,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "max_tokens": args.max_tokens,
        "n": args.n,
        "stop": args.stop,
        "presence_penalty": args.presence_penalty,
        "frequency_penalty": args.frequency_penalty,
        "logit_bias": dict(args.logit_bias) if args.logit_bias else None,
        "seed": args.seed,
        "user": args.user,
        "store": args.store,
    }
    fields.update({k: v for k, v in cell.items() if v is not None})
    if args.stop and len(args.stop) == 1:
        fields["stop"] = args.stop[0]
    if args.logprobs is not None:
        fields["logprobs"] = True
        fields["top_logprobs"] = args.logprobs
    if args.tool_choice:
        choice = args.tool_choice
        fields["tool_choice"] = (
            choice
            if choice in ("auto", "required", "none")
            else {"type": "function", "function": {"name": choice}}
        )
    if args.no_parallel_tools:
        fields["parallel_tool_calls"] = False
    return fields


def _lookup(namespace: dict[str, Any], name: str, what: str) -> Any:
    if name not in namespace:
        raise UsageError(f"{what} {name!r} is not defined in the notebook")
    return namespace[name]


def build_content(text: str, args: Any, namespace: dict[str, Any]) -> tuple[Any, Any]:
    """The user message content and its attachments, from --image and --data variables."""
    from ..convert.content import build_content as build

    images = [_lookup(namespace, name, "Image") for name in args.image or ()]
    data = [_lookup(namespace, name, "Data") for name in args.data or ()]
    try:
        return build(text, images=images, data=data, names=args.data or (), detail=args.detail)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def run_cell(shell: Any, settings: ChatSettings, args: Any, prompt: str) -> Any:
    from ..conversation.sessions import client_for, session
    from ..convert.interpolate import InterpolationError, interpolate
    from ..protocol.exceptions import (
        APIError,
        IncompleteStreamError,
        NbchatError,
        RequestValidationError,
    )
    from ..render.bundles import error_bundle, request_bundle
    from ..render.live import LiveView

    namespace = shell.user_ns
    # The cell's trailing newline and blank edges are not part of the prompt.
    text = prompt.strip("\r\n").rstrip()
    if settings.interpolate and not args.no_interpolate:
        try:
            text = interpolate(text, namespace)
        except InterpolationError as exc:
            raise UsageError(str(exc)) from None
    if not text.strip() and not args.image and not args.data:
        raise UsageError("The prompt is empty: write it in the cell (%%chat) or after %chat.")
    if args.json and args.schema:
        raise UsageError("Use --json or --schema, not both")
    content, attachments = build_content(text, args, namespace)
    fields = overrides_from(args, settings, namespace)
    tools = [_lookup(namespace, name, "Tool") for name in args.tools or ()]
    if tools:
        from ..convert.tools import ToolDefinitionError, tools_by_name

        try:
            tools_by_name(tools)
        except ToolDefinitionError as exc:
            raise UsageError(f"--tools: {exc}") from None
    schema = _lookup(namespace, args.schema, "Schema") if args.schema else None
    if args.json:
        fields["response_format"] = {"type": "json_object"}
    if schema is not None:
        from ..convert.structured import response_format_for

        try:
            fields["response_format"] = response_format_for(schema)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"--schema {args.schema}: {exc}") from None
    stream = settings.stream and not args.no_stream

    chat = session(args.session, new=args.new)
    if args.system is not None:
        chat.system = args.system
    elif len(chat) == 0 and settings.system:
        chat.system = settings.system
    try:
        chat.use_client_unless_chosen(client_for(settings))
    except NbchatError as exc:
        # No endpoint configured and the local server cannot start: say how to fix it.
        raise UsageError(str(exc)) from None

    if args.dry_run:
        try:
            prepared = chat.prepare(
                content, stream=stream, tools=tools or None, schema=schema, json=args.json, **fields
            )
        except RequestValidationError as exc:
            raise UsageError(str(exc)) from None
        _show(request_bundle(prepared, title="Dry run (not sent)"))
        for note in prepared.notes:
            print(f"Note: {note}")
        if args.out:
            # The request itself, in full (the display shortens image data).
            namespace[args.out] = prepared.body
        return None

    if attachments:
        display(attachments)
    mode = display_mode(shell, settings)
    view = LiveView(mode=mode, rate=settings.updates_per_second)
    # Tools flagged confirm=True are always asked about; --confirm asks about every tool.
    confirm = True if args.confirm or settings.confirm_tools else None
    try:
        reply = chat.send(
            content,
            stream=stream,
            listener=view,
            tools=tools or None,
            max_rounds=settings.max_tool_rounds,
            confirm=confirm,
            schema=schema,
            json=args.json,
            **fields,
        )
    except RequestValidationError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        if chat.last_reply is not None and chat.last_reply.interrupted:
            view.finish(chat.last_reply)
        raise ChatCellError("Interrupted; what arrived is kept in the conversation.") from None
    except IncompleteStreamError as exc:
        if chat.last_reply is not None:
            view.finish(chat.last_reply)
        _show(error_bundle(exc))
        raise ChatCellError(exc.message) from None
    except APIError as exc:
        _show(error_bundle(exc))
        raise ChatCellError(_one_line(exc)) from None
    except Exception as exc:
        reply = getattr(exc, "reply", None)
        if reply is None:
            raise
        # The reply arrived but is not what was asked for (invalid JSON, a refusal…).
        view.finish(reply)
        _show(error_bundle(exc))
        if args.out:
            namespace[args.out] = None
        raise ChatCellError(str(exc).splitlines()[0]) from None
    view.finish(reply)
    if args.logprobs is not None:
        _show_logprobs(reply)
    if args.raw:
        _show_raw(reply)
    if args.out:
        namespace[args.out] = reply.value
    return None


def _one_line(exc: Any) -> str:
    """What fails the cell: short, since the card above has the details."""
    from ..protocol.exceptions import APIStatusError

    name = type(exc).__name__
    if isinstance(exc, APIStatusError):
        code = f", {exc.code}" if exc.code else ""
        return f"{name} ({exc.status_code}{code}); the card above has the details."
    text = str(exc)
    return f"{name}: {text.splitlines()[0]}" if text else name


def _show_logprobs(reply: Any) -> None:
    from ..render.logprobs import logprobs_html, logprobs_summary, logprobs_table

    completion = reply.completion
    if not completion.choices or completion.choices[0].logprobs is None:
        _show({"text/plain": "The server sent no logprobs for this reply."})
        return
    # nbchat's own table rather than a DataFrame's HTML: token text is escaped by the one
    # renderer's helpers and kept away from MathJax (logprobs_frame() still gives the frame).
    display(logprobs_html(completion))
    display(logprobs_table(completion))
    display(logprobs_summary(completion))


def _show_raw(reply: Any) -> None:
    from ..render.bundles import request_bundle

    sent = reply.prepared if reply.prepared is not None else reply.request
    _show(request_bundle(sent, title="Request sent"))
    for i, completion in enumerate(reply.completions or [reply.completion]):
        title = "Response" if len(reply.completions) <= 1 else f"Response {i + 1}"
        if reply.request.get("stream"):
            title += " (accumulated from the stream)"
        _show(request_bundle(completion.to_dict(), title=title))


def subcommand(shell: Any, settings: ChatSettings, name: str, args: Any) -> Any:
    from ..conversation.sessions import names, session
    from ..render.bundles import history_bundle

    if name == "history":
        _show(history_bundle(session(args.session)))
    elif name == "reset":
        chat = session(args.session)
        chat.reset()
        print(f"Conversation {args.session!r} is empty now.")
    elif name == "undo":
        dropped = session(args.session).undo()
        if dropped:
            print(f"Dropped the last exchange ({len(dropped)} messages).")
        else:
            print("Nothing to undo.")
    elif name == "sessions":
        rows = []
        for session_name in names():
            chat = session(session_name)
            rows.append(f"{session_name}: {len(chat)} messages")
        print("\n".join(rows) if rows else "No conversations yet.")
    elif name == "config":
        _show(config_bundle(settings))
    return None


def config_bundle(settings: ChatSettings) -> dict[str, str]:
    """The effective settings, with where the endpoint and key come from (key masked)."""
    import os

    key = os.environ.get(settings.api_key_env)
    base = settings.base_url or os.environ.get("OPENAI_BASE_URL")
    if base:
        endpoint = base
    elif key:
        from ..transport.client import DEFAULT_BASE_URL

        endpoint = DEFAULT_BASE_URL
    else:
        endpoint = "local model server (no key or base URL set)"
    rows = [
        ("endpoint", endpoint),
        ("api key", f"set in ${settings.api_key_env} (hidden)" if key else "not set"),
    ]
    for trait in sorted(settings.trait_names(config=True)):
        if trait in ("base_url",):
            continue
        rows.append((trait, repr(getattr(settings, trait))))
    from ..render.markdown import escape, html_bundle

    text = "\n".join(f"{k}: {v}" for k, v in rows)
    table = "".join(
        f'<tr><th style="text-align:left">Chat.{escape(k)}</th>'
        f'<td style="text-align:left;white-space:pre-wrap">{escape(v)}</td></tr>'
        for k, v in rows
    )
    return html_bundle(f"<table>{table}</table>", text)
