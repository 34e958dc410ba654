"""How ``Chat.send(agent=True)`` gets the notebook's tools and the approval of their actions.

They live in the notebook layer, above the conversation; the package root installs the
function that makes them (``install``), so the conversation never imports the notebook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["agent_kit", "install", "with_agent"]

Kit = Callable[..., tuple[list[Any], Any]]
_kit: Kit | None = None


def install(kit: Kit) -> None:
    global _kit
    _kit = kit


def agent_kit(**options: Any) -> tuple[list[Any], Any]:
    """``(tools, confirm)`` of an agent turn: the notebook tools and the approval callback."""
    if _kit is None:
        # Imported here: the package root installs the kit at import, which must stay light.
        from ..protocol.exceptions import RequestValidationError

        raise RequestValidationError("agent=True needs nbchat's notebook tools", field="agent")
    return _kit(**options)


def with_agent(options: dict[str, Any]) -> dict[str, Any]:
    """``send``'s options with ``agent=True`` turned into the notebook's tools and approval (a
    ``confirm`` given too wins)."""
    if "agent" not in options:
        return options
    options = dict(options)
    if not options.pop("agent"):
        return options
    more, approval = agent_kit()
    options["tools"] = [*(options.get("tools") or ()), *more]
    if options.get("confirm") is None:
        options["confirm"] = approval
    return options
