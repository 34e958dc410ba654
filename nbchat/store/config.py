"""Where the store lives, whether the cache answers, the budget and the replay mode.

Settings pushed by the notebook layer (``%config Chat.store`` …) win over ``NBCHAT_*``
environment variables, which win over the defaults; both are read at every request.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..protocol.exceptions import RequestValidationError

__all__ = [
    "REPLAY_MODES",
    "Settings",
    "budget",
    "cache_default",
    "configure",
    "default_path",
    "replay",
    "settings",
    "store_path",
]

REPLAY_MODES = ("record", "replay", "auto")
_OFF = ("off", "none", "no", "false", "0")


@dataclass
class Settings:
    """What ``%config Chat.store/cache/budget`` (or ``configure()``) chose; empty means unset."""

    store: str = ""
    cache: bool = False
    budget: float | None = None
    #: The notebook the kernel runs, as the frontend told the notebook layer (VS Code).
    notebook: str = ""


settings = Settings()
_lock = threading.Lock()


def configure(**changes: Any) -> None:
    """Set ``store`` (a path, ``"off"``, or ``""`` for NBCHAT_STORE and the default),
    ``cache`` (answer repeated requests from the store) and ``budget`` (US dollars, or None
    for NBCHAT_BUDGET) for this process."""
    with _lock:
        for name, value in changes.items():
            if name not in ("store", "cache", "budget", "notebook"):
                raise TypeError(f"configure() got an unexpected setting {name!r}")
            if name == "budget" and value is not None:
                value = _dollars(value, "budget")
            setattr(settings, name, value)


def default_path() -> Path:
    """The store's default file, in the platform's user data directory."""
    import platformdirs

    return Path(platformdirs.user_data_dir("nbchat", appauthor=False)) / "nbchat.db"


def store_path() -> Path | None:
    """The store's file, or None when it is off."""
    chosen = (settings.store or os.environ.get("NBCHAT_STORE", "")).strip()
    return _path_of(chosen) if chosen else default_path()


@functools.lru_cache(maxsize=16)
def _path_of(chosen: str) -> Path | None:
    # Read at every request (a map makes thousands): the same setting is the same path.
    if chosen.lower() in _OFF:
        return None
    return Path(chosen).expanduser()


def cache_default() -> bool:
    return settings.cache


def budget() -> float | None:
    """US dollars that may be spent across the store, or None for no limit."""
    if settings.budget is not None:
        return settings.budget
    text = os.environ.get("NBCHAT_BUDGET", "").strip()
    if not text or text.lower() in _OFF:
        return None
    return _dollars(text, "NBCHAT_BUDGET")


def replay() -> tuple[str | None, Path | None]:
    """``(mode, cassette)`` from NBCHAT_REPLAY and NBCHAT_CASSETTE; ``(None, None)`` when off."""
    mode = os.environ.get("NBCHAT_REPLAY", "").strip().lower()
    if not mode or mode in _OFF:
        return None, None
    if mode not in REPLAY_MODES:
        raise RequestValidationError(
            f"NBCHAT_REPLAY={mode!r} is not one of {', '.join(REPLAY_MODES)} (or off)",
            field="NBCHAT_REPLAY",
        )
    cassette = os.environ.get("NBCHAT_CASSETTE", "").strip()
    if not cassette:
        raise RequestValidationError(
            f"NBCHAT_REPLAY={mode} needs NBCHAT_CASSETTE, the path of the cassette file",
            field="NBCHAT_CASSETTE",
        )
    return mode, Path(cassette).expanduser()


def _dollars(value: Any, name: str) -> float:
    try:
        amount = float(value)
    except (TypeError, ValueError):
        raise RequestValidationError(
            f"{name}={value!r} is not an amount of US dollars", field=name
        ) from None
    if not amount >= 0:  # also refuses NaN
        raise RequestValidationError(
            f"{name} must be 0 or more US dollars, not {value!r}", field=name
        )
    return amount
