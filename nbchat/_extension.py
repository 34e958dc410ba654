"""Loading and unloading the IPython extension: the magics and the ``Chat`` settings object."""

from __future__ import annotations

from typing import Any

__all__ = ["load", "unload"]


def load(ipython: Any) -> None:
    from ._magics import ChatMagics
    from ._settings import Chat

    settings = next((c for c in ipython.configurables if isinstance(c, Chat)), None)
    if settings is None:
        # parent=ipython gives the settings the shell's config: profiles and %config reach it.
        settings = Chat(parent=ipython)
        ipython.configurables.append(settings)
    ipython.register_magics(ChatMagics(ipython, settings))


def unload(ipython: Any) -> None:
    from ._settings import Chat

    ipython.configurables[:] = [c for c in ipython.configurables if not isinstance(c, Chat)]
    magics = ipython.magics_manager.magics
    magics["line"].pop("chat", None)
    magics["cell"].pop("chat", None)
