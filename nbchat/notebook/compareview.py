"""``nbchat.compare`` as a notebook shows it: the engine of ``conversation/compare.py`` with its
columns side by side (``sidebyside.py``), live in Jupyter, as text in a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..conversation.compare import compare as compare_columns
from ..conversation.reply import Reply

if TYPE_CHECKING:
    from ..transport.client import AsyncClient, Client

__all__ = ["compare"]


def compare(
    prompt: Any,
    models: Sequence[Any],
    *,
    system: str | None = None,
    client: Client | AsyncClient | None = None,
    stream: bool | None = None,
    display: bool | str = True,
    schema: Any = None,
    **request_fields: Any,
) -> list[Reply | Exception]:
    """Send ``prompt`` to every entry of ``models`` at once and show the replies side by side.

    ``prompt`` is the text (or a ``Prompt``, whose options and fields apply to every column).
    An entry is a model name or a dict of settings (``{"model": "a", "temperature": 0}``,
    ``{"temperature": 1.5}``) on top of ``request_fields``. Returns one ``Reply`` per entry in
    the order of ``models``; an entry whose request failed has its exception in its place (its
    column shows it). Bad fields are one-line errors before anything is sent. Every column goes
    through the store like a cell: logged, cached, replayed, and held against the budget while
    in flight (columns sent at once cannot pass it together). ``display``: ``auto``/True (live
    in Jupyter, text elsewhere), ``live``, ``final``, ``text`` or False. Ctrl-C ends the streams
    and returns what arrived.
    """
    from .sidebyside import SideBySide

    return compare_columns(
        prompt,
        models,
        system=system,
        client=client,
        stream=stream,
        schema=schema,
        show=lambda labels: SideBySide(labels, mode=display),
        **request_fields,
    )
