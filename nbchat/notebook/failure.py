"""How a cell fails: one helper, one wording per error, whatever the cell's form.

A mistake found before sending (a bad field, a budget that would be passed, a cassette that
lacks the request) is a one-line UsageError. A failure of the exchange shows its card — after
what arrived, which the error carries as ``exc.reply`` — and ends the cell with one line that
says whether the reply was kept. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NoReturn

from IPython.core.error import UsageError
from IPython.display import display

from ..protocol.exceptions import NbchatError, first_line, one_line

if TYPE_CHECKING:
    from argparse import Namespace

    from ..conversation.chat import Chat
    from ..render.live import LiveView
    from .cell import CellRequest

__all__ = ["ChatCellError", "fail_cell", "input_errors", "name_attachments"]


class ChatCellError(NbchatError):
    """Fails a cell after its error was shown as a card: one line, no traceback.

    An NbchatError like the error it stands for, so ``except NbchatError`` catches a failed cell.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}: {self}\x1b[0m"]


INTERRUPTED = "Interrupted; what arrived is kept in the conversation."
KEPT = "the reply is kept in the conversation (%chat undo drops it)"


def input_errors() -> tuple[type[BaseException], ...]:
    """The classes of ``INPUT_ERRORS``."""
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


def fail_cell(
    exc: BaseException,
    request: CellRequest | None = None,
    *,
    view: LiveView | None = None,
    conversation: Chat | None = None,
) -> NoReturn:
    """End the cell for ``exc``; raised ``from None`` so no chained traceback shows.

    ``view`` (a live view) is finished with what arrived; ``conversation`` is the Chat the
    cell sent to, so an attachment an error names can be named as the cell wrote it.
    """
    if isinstance(exc, UsageError):
        raise exc
    if isinstance(exc, input_errors()):
        raise UsageError(_input_message(exc, request, conversation)) from None
    reply = getattr(exc, "reply", None)
    if isinstance(exc, KeyboardInterrupt):
        if view is not None and reply is not None and reply.interrupted:
            view.finish(reply)
        raise ChatCellError(INTERRUPTED) from None
    from ..protocol.exceptions import APIError

    answered = reply is not None and bool(reply.completions) and not reply.interrupted
    if not isinstance(exc, APIError) and not answered:
        raise exc  # not a failure of the exchange: a bug, with its traceback
    if view is not None and reply is not None and (reply.interrupted or answered):
        view.finish(reply)
    from ..render.bundles import error_bundle

    display(error_bundle(exc), raw=True)
    message = one_line(exc)
    if answered and not isinstance(exc, APIError):
        # The exchange happened (it was billed, and the model may be asked to go on).
        message += f"; {KEPT}"
    raise ChatCellError(message) from None


def _input_message(exc: BaseException, request: Any, conversation: Any) -> str:
    from ..convert.tools import ToolDefinitionError
    from ..protocol.schema import SchemaError

    text = first_line(exc)
    args = getattr(request, "args", None)
    if isinstance(exc, ToolDefinitionError):
        text = f"--tools: {text}"
    elif isinstance(exc, SchemaError) and args is not None:
        text = f"--schema {args.schema}: {text}"
    if conversation is not None and args is not None:
        text = name_attachments(text, args, own=len(conversation))
    return text


_PART = re.compile(r"messages\.(\d+)\.content(?:\.\d+)?: (\w+) input")


def name_attachments(text: str, args: Namespace, *, own: int) -> str:
    """A server's refusal of ``messages.N.content: image_url input`` said as the cell wrote it:
    ``the image attached with --image fig``, or an image sent earlier in the conversation.

    ``own`` is the index of the cell's own message (the conversation's length before it)."""

    def named(match: re.Match[str]) -> str:
        index, kind = int(match.group(1)), match.group(2)
        what = {"image_url": "image", "input_audio": "audio", "file": "file"}.get(kind, kind)
        if index >= own:
            names = list(getattr(args, "image", None) or ()) if what == "image" else []
            if names:
                shown = ", ".join(f"--image {name}" for name in names)
                return f"the {what} attached with {shown}"
            return f"the {what} in this cell's message"
        return f"an {what} sent earlier in the conversation (message {index + 1})"

    return _PART.sub(named, text)
