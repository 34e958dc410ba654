"""What a ``%%chat`` cell does once its options are parsed: build the request, send, display.

Kept apart from the magic's declaration so the magic stays a thin parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from ..protocol.exceptions import NbchatError, first_line
from .settings import Chat as ChatSettings

__all__ = ["CellRequest", "ChatCellError", "cell_request", "conversation", "run_cell", "subcommand"]


class ChatCellError(NbchatError):
    """Fails a cell after its error was shown as a card: one line, no traceback.

    An NbchatError like the error it stands for, so ``except NbchatError`` catches a failed cell.
    """

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
        "max_completion_tokens": args.max_completion_tokens,
        "reasoning_effort": args.reasoning_effort,
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
        fields["tool_choice"] = args.tool_choice
    if args.no_parallel_tools:
        fields["parallel_tool_calls"] = False
    # The newer parts of the API (audio, predictions, web search, tiers…): mapped in apiopts.
    from .apiopts import api_fields

    fields.update(api_fields(args, namespace, stream=settings.stream and not args.no_stream))
    return fields


def _lookup(namespace: dict[str, Any], name: str, what: str) -> Any:
    if name not in namespace:
        raise UsageError(f"{what} {name!r} is not defined in the notebook")
    return namespace[name]


def build_content(
    text: str, args: Any, namespace: dict[str, Any], extra_images: list[Any] | None = None
) -> tuple[Any, Any]:
    """The user message content and its attachments, from --image and --data variables."""
    from ..convert.content import build_content as build
    from .apiopts import api_attachments

    images = [_lookup(namespace, name, "Image") for name in args.image or ()]
    images += extra_images or []
    data = [_lookup(namespace, name, "Data") for name in args.data or ()]
    more = api_attachments(args, namespace)  # --audio, --file
    try:
        return build(
            text, images=images, data=data, names=args.data or (), detail=args.detail, **more
        )
    except ValueError as exc:
        raise UsageError(first_line(exc)) from None


@dataclass
class CellRequest:
    """A cell's request as the conversation takes it: ``Chat.prepare``/``Chat.send`` arguments."""

    content: Any
    attachments: Any
    fields: dict[str, Any]
    tools: list[Any]
    schema: Any
    json: bool
    stream: bool
    #: What --var, --cells and %chat fix added (nbchat/notebook/context.py), for the budget.
    context: Any = None

    def arguments(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "tools": self.tools or None,
            "schema": self.schema,
            "json": self.json,
            **self.fields,
        }


def cell_request(
    args: Any, settings: ChatSettings, prompt: str, namespace: dict[str, Any]
) -> CellRequest:
    """The request a cell asks for: its prompt interpolated, attachments, fields, tools, schema."""
    from ..convert.interpolate import InterpolationError, interpolate

    # The cell's trailing newline and blank edges are not part of the prompt.
    text = prompt.strip("\r\n").rstrip()
    if settings.interpolate and not args.no_interpolate:
        try:
            text = interpolate(text, namespace)
        except InterpolationError as exc:
            raise UsageError(str(exc)) from None
    from .context import add_context

    text, context = add_context(text, args, namespace, settings)
    attached = (
        args.image or args.data or getattr(args, "audio", None) or getattr(args, "file", None)
    )
    if not text.strip() and not attached:
        raise UsageError("The prompt is empty: write it in the cell (%%chat) or after %chat.")
    content, attachments = build_content(text, args, namespace, context.images)
    return CellRequest(
        content=content,
        attachments=attachments,
        fields=overrides_from(args, settings, namespace),
        tools=[_lookup(namespace, name, "Tool") for name in args.tools or ()],
        schema=_lookup(namespace, args.schema, "Schema") if args.schema else None,
        json=args.json,
        stream=settings.stream and not args.no_stream,
        context=context,
    )


def conversation(args: Any, settings: ChatSettings) -> Any:
    """The cell's conversation, with its system prompt and the client the settings name."""
    from ..conversation.sessions import client_for, session
    from ..protocol.exceptions import NbchatError

    chat = session(args.session, new=args.new)
    if args.system is not None:
        chat.system = args.system
    elif len(chat) == 0 and settings.system:
        chat.system = settings.system
    chat.max_history_tokens = settings.max_history_tokens
    try:
        chat.use_client_unless_chosen(client_for(settings))
    except NbchatError as exc:
        # No endpoint configured and the local server cannot start: say how to fix it.
        raise UsageError(str(exc)) from None
    return chat


#: Options of a map over rows only (``--each``), and how the cell names them.
EACH_OPTIONS = {"concurrency": "--concurrency", "via": "--via", "poll_interval": "--poll-interval"}


def refuse_each_options(args: Any, what: str) -> None:
    """A UsageError for an option of ``--each`` given to anything else."""
    for name, option in EACH_OPTIONS.items():
        if getattr(args, name, None) is not None:
            raise UsageError(f"{option} goes with --each DF; it does not apply to {what}")


def run_cell(shell: Any, settings: ChatSettings, args: Any, prompt: str) -> Any:
    refuse_each_options(args, "a single prompt")
    namespace = shell.user_ns
    request = cell_request(args, settings, prompt, namespace)
    chat = conversation(args, settings)
    if args.dry_run:
        return _dry_run(chat, request, args, namespace)
    if request.attachments:
        display(request.attachments)
    reply = _send(shell, settings, chat, request, args, namespace)
    if args.logprobs is not None:
        _show_logprobs(reply)
    if args.raw:
        _show_raw(reply)
    if args.out:
        namespace[args.out] = reply.value
    if args.code:
        from .context import place_code

        place_code(shell, args.code, reply)
    return None


def _bad_input(exc: Exception, args: Any) -> UsageError:
    """A mistake in the cell's options or variables, found before anything was sent."""
    from ..convert.tools import ToolDefinitionError
    from ..protocol.schema import SchemaError

    text = first_line(exc)
    if isinstance(exc, ToolDefinitionError):
        text = f"--tools: {text}"
    elif isinstance(exc, SchemaError):
        text = f"--schema {args.schema}: {text}"
    return UsageError(text)


# What the conversation raises for bad input before it sends anything.
def _input_errors() -> tuple[type[Exception], ...]:
    from ..convert.tools import ToolDefinitionError
    from ..protocol.exceptions import BudgetExceededError, ReplayMissError, RequestValidationError
    from ..protocol.schema import SchemaError

    return (
        RequestValidationError,
        ToolDefinitionError,
        SchemaError,
        BudgetExceededError,
        ReplayMissError,
    )


def _dry_run(chat: Any, request: CellRequest, args: Any, namespace: dict[str, Any]) -> None:
    from ..render.bundles import request_bundle
    from ..transport.profiles import UnsupportedFeatureError

    try:
        prepared = chat.prepare(request.content, **request.arguments())
    except UnsupportedFeatureError as exc:
        # The server would refuse it: the request is shown all the same, with the reason.
        if exc.body is None:
            raise _bad_input(exc, args) from None
        body = {**exc.body, **({"stream": True} if request.stream else {})}
        refused = chat.client.build_request(**body)
        _show(request_bundle(refused, title="Dry run (not sent; this server would refuse it)"))
        print(f"Not sendable here: {first_line(exc)}")
        if args.out:
            namespace[args.out] = refused.body
        return None
    except _input_errors() as exc:
        raise _bad_input(exc, args) from None
    _show(request_bundle(prepared, title="Dry run (not sent)"))
    from .context import budget_text

    _show({"text/plain": budget_text(chat, request, prepared)})
    for note in prepared.notes:
        print(f"Note: {note}")
    if args.out:
        # The request itself, in full (the display shortens image data).
        namespace[args.out] = prepared.body
    return None


def _send(
    shell: Any,
    settings: ChatSettings,
    chat: Any,
    request: CellRequest,
    args: Any,
    namespace: dict[str, Any],
) -> Any:
    """Send with a live view; a failure shows its card and fails the cell in one line."""
    from ..protocol.exceptions import APIError, IncompleteStreamError
    from ..render.bundles import error_bundle
    from ..render.live import LiveView

    view = LiveView(mode=display_mode(shell, settings), rate=settings.updates_per_second)
    # Tools flagged confirm=True are always asked about; --confirm asks about every tool.
    confirm = True if args.confirm or settings.confirm_tools else None
    try:
        reply = chat.send(
            request.content,
            listener=view,
            max_rounds=settings.max_tool_rounds,
            confirm=confirm,
            cache=args.cache,
            **request.arguments(),
        )
    except _input_errors() as exc:
        raise _bad_input(exc, args) from None
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
        partial = getattr(exc, "reply", None)
        if partial is None:
            raise
        # The reply arrived but is not what was asked for (invalid JSON, a refusal…).
        view.finish(partial)
        _show(error_bundle(exc))
        if args.out:
            namespace[args.out] = None
        raise ChatCellError(first_line(exc)) from None
    view.finish(reply)
    return reply


def _one_line(exc: Any) -> str:
    """What fails the cell: short, since the card above has the details."""
    from ..protocol.exceptions import APIStatusError

    name = type(exc).__name__
    if isinstance(exc, APIStatusError):
        code = f", {exc.code}" if exc.code else ""
        return f"{name} ({exc.status_code}{code}); the card above has the details."
    return f"{name}: {first_line(exc)}" if str(exc).strip() else name


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
        chat = session(args.session)
        if getattr(args, "json", False):
            # The conversation with how each answer came (Reply.metadata), as to_json keeps it.
            print(chat.to_json(indent=2))
        else:
            _show(history_bundle(chat))
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


def _server_line(settings: ChatSettings, endpoint: Any) -> str:
    """The kind of server the settings talk to, and how nbchat knows it."""
    from ..conversation.sessions import known_client

    client = known_client(settings)
    if client is not None:
        profile = client.profile
        how = "configured" if profile.configured else "detected"
        return f"{profile.kind} ({'local, ' if profile.local else ''}{how})"
    if endpoint.local:
        return f"{endpoint.kind} (local)"
    if endpoint.server:
        return f"{endpoint.kind} (configured)"
    return f"{endpoint.kind} (detected from the URL)"


def config_bundle(settings: ChatSettings) -> dict[str, str]:
    """The effective settings, with where the endpoint and key come from (key masked)."""
    from ..conversation.endpoint import resolve

    endpoint = resolve(
        base_url=settings.base_url,
        api_key_env=settings.api_key_env,
        server=None if settings.server == "auto" else settings.server,
    )
    rows = [
        ("endpoint", endpoint.describe()),
        ("server", _server_line(settings, endpoint)),
        ("api key", endpoint.describe_key()),
    ]
    for trait in sorted(settings.trait_names(config=True)):
        if trait in ("base_url", "server"):
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
