"""``%chat log [N]`` and ``%chat usage``, and the settings that reach the store.

Small on purpose, since the magic imports it when the extension loads: the tables are drawn
by ``storeviews`` and the store itself is imported when a subcommand runs.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

__all__ = ["SUBCOMMANDS", "apply_settings", "run", "wants"]

SUBCOMMANDS = ("log", "usage")
DEFAULT_LOG_ROWS = 10


def wants(words: list[str]) -> bool:
    """``%chat log``, ``%chat log 5``, ``%chat usage``: a store subcommand, not a prompt."""
    if not words or words[0] not in SUBCOMMANDS:
        return False
    return len(words) == 1 or (words[0] == "log" and len(words) == 2 and words[1].isdigit())


def apply_settings(settings: Any) -> None:
    """Pass ``Chat.store``, ``Chat.cache`` and ``Chat.budget`` on to the store."""
    from ..store.config import configure

    configure(store=settings.store, cache=settings.cache, budget=settings.budget)


def run(shell: Any, settings: Any, words: list[str], args: Any) -> None:
    from IPython.display import display

    from ..store.config import store_path
    from .storeviews import log_table, usage_table

    apply_settings(settings)
    path = store_path()
    if path is None:
        print("The store is off (Chat.store or NBCHAT_STORE is 'off'): no exchanges are kept.")
        return
    if words[0] == "log":
        count = int(words[1]) if len(words) > 1 else DEFAULT_LOG_ROWS
        if count < 1:
            raise UsageError("%chat log N: N is how many exchanges to show, 1 or more")
        display(log_table(count), raw=True)
    else:
        display(usage_table(), raw=True)
