"""``%chat log [N]`` and ``%chat usage``, and the settings that reach the store; ``%chat stored
[list [N] | show ID | delete ID]``, the completions a server stored (``--store``).

Small on purpose, since the magic imports it when the extension loads: the tables are drawn
by ``storeviews`` and the store itself is imported when a subcommand runs.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

__all__ = ["SUBCOMMANDS", "apply_settings", "run", "run_stored", "stored_words", "wants"]

SUBCOMMANDS = ("log", "usage")
DEFAULT_LOG_ROWS = 10
#: ``%chat stored`` shows a page of this many completions unless told otherwise.
DEFAULT_STORED_ROWS = 20
STORED_ACTIONS = ("list", "show", "delete")


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


def stored_words(rest: str, parser: Any, split: Any) -> tuple[list[str], list[str]] | None:
    """``(words, option tokens)`` of ``stored [list [N] | show ID | delete ID] [options]``,
    or None when the line is a prompt that happens to start with "stored"."""
    words = rest.split()
    if words[:1] != ["stored"]:
        return None
    taken = ["stored"]
    rest_words = words[1:]
    if rest_words and rest_words[0] in STORED_ACTIONS:
        taken.append(rest_words.pop(0))
        if rest_words and not rest_words[0].startswith("-"):
            taken.append(rest_words.pop(0))
    tokens, text = split(" ".join(rest_words), parser)
    if text:
        return None
    action = taken[1] if len(taken) > 1 else "list"
    if action in ("show", "delete") and len(taken) < 3:
        raise UsageError(f"%chat stored {action} ID: which stored completion?")
    if action == "list" and len(taken) == 3 and not (taken[2].isdigit() and int(taken[2]) > 0):
        raise UsageError("%chat stored list N: N is how many completions to show, 1 or more")
    return taken, tokens


def run_stored(shell: Any, settings: Any, words: list[str], args: Any) -> None:
    """``%chat stored``: list (``-m``, ``--metadata`` filter), show or delete on the server."""
    from IPython.display import display

    from ..conversation.endpoint import resolve
    from ..conversation.sessions import client_for
    from ..protocol.exceptions import APIError, NbchatError, first_line
    from .storeviews import stored_list_table, stored_show

    endpoint = resolve(
        base_url=settings.base_url,
        api_key_env=settings.api_key_env,
        server=None if settings.server in ("", "auto") else settings.server,
    )
    if endpoint.local:
        # Nothing to ask: nbchat's own local server keeps no completions (and is not started).
        print("The local model server keeps no stored completions (see nbchat/local/adapt.py).")
        return
    try:
        client = client_for(settings)
    except NbchatError as exc:
        raise UsageError(str(exc)) from None
    stored = client.stored_completions
    action = words[1] if len(words) > 1 else "list"
    try:
        if action == "list":
            count = int(words[2]) if len(words) > 2 else DEFAULT_STORED_ROWS
            metadata = dict(args.metadata) if getattr(args, "metadata", None) else None
            page = stored.list(model=args.model, metadata=metadata, limit=count, order="desc")
            display(stored_list_table(page), raw=True)
        elif action == "show":
            completion = stored.retrieve(words[2])
            messages = list(stored.messages(words[2]))
            display(stored_show(completion, messages), raw=True)
        else:
            deleted = stored.delete(words[2])
            done = "Deleted" if deleted.deleted else "The server did not delete"
            print(f"{done} stored completion {deleted.id or words[2]}.")
    except APIError as exc:
        # One clear line: a server without the endpoints, an unknown id, a refusal.
        raise UsageError(first_line(exc)) from None
