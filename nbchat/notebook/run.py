"""What a ``%%chat`` cell does once its options are parsed: read it into one request value,
then show it (``--dry-run``), send it, map it over rows or compare it across models.

Kept apart from the magic's declaration so the magic stays a thin parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.display import display

from .cell import EACH_OPTIONS, CellRequest, cell_request, overrides_from
from .failure import ChatCellError, fail_cell
from .frontend import display_mode
from .settings import Chat as ChatSettings

if TYPE_CHECKING:
    from argparse import Namespace

    from IPython.core.interactiveshell import InteractiveShell

__all__ = [
    "EACH_OPTIONS",
    "CellRequest",
    "ChatCellError",
    "cell_request",
    "conversation",
    "display_mode",
    "overrides_from",
    "run_cell",
    "subcommand",
]


def _show(bundle: dict[str, str]) -> None:
    display(bundle, raw=True)


def conversation(args: Namespace, settings: ChatSettings) -> Any:
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


def run_cell(
    shell: InteractiveShell,
    settings: ChatSettings,
    args: Namespace,
    prompt: str,
    *,
    models: list[str] | None = None,
) -> Any:
    """Run a cell of any form: its request is read once, then shown, sent, mapped or compared."""
    request = cell_request(shell, settings, args, prompt, models=models)
    if request.form != "prompt":
        from .each import run_many

        return run_many(shell, settings, request)
    namespace = shell.user_ns
    chat = conversation(args, settings)
    if args.dry_run:
        from .dryrun import show_dry_run

        return show_dry_run(request, chat=chat, namespace=namespace)
    if request.attachments:
        display(request.attachments)
    reply = _send(shell, settings, chat, request)
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


def _send(shell: InteractiveShell, settings: ChatSettings, chat: Any, request: CellRequest) -> Any:
    """Send with a live view; a failure ends the cell through ``fail_cell``."""
    from ..render.live import LiveView

    prompt = request.prompt
    agent = bool(getattr(request.args, "agent", False))
    mode = display_mode(shell, settings)
    interrupt = None
    if agent or getattr(request.args, "yes", False):
        from .agent import approval_for
        from .agentcell import stop_requested

        # Actions are shown before they run and asked about (--yes: all approved for this
        # cell; nobody to ask: refused); --confirm still asks about every tool.
        approver = approval_for(
            shell, request.args, text=mode == "text", ask_all=prompt.confirm is True
        )
        prompt = prompt.with_(confirm=approver)
        interrupt = stop_requested if agent else None
    # An agent's steps show where they happen, in order with its proposals and decisions.
    view = LiveView(mode=mode, rate=settings.updates_per_second, steps=agent, interrupt=interrupt)
    try:
        reply = chat.send(prompt, listener=view)
    except BaseException as exc:
        if request.args.out and getattr(exc, "reply", None) is not None:
            shell.user_ns[request.args.out] = None
        fail_cell(exc, request, view=view, conversation=chat)
    view.finish(reply)
    return reply


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


def subcommand(shell: InteractiveShell, settings: ChatSettings, name: str, args: Namespace) -> Any:
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
        from .configview import config_bundle

        _show(config_bundle(settings))
    return None
