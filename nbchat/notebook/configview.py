"""``%chat config``: the effective settings, as a request would use them, with where each of the
endpoint, the model, the store and the budget comes from (the key is never shown).
"""

from __future__ import annotations

import os
from typing import Any

from .settings import Chat as ChatSettings

__all__ = ["config_bundle"]

#: Settings shown on rows of their own, with their effective value.
_OWN_ROWS = ("base_url", "server", "model", "store", "budget")


def config_bundle(settings: ChatSettings) -> dict[str, str]:
    """The effective settings, with where the endpoint and key come from (key masked)."""
    from ..conversation.endpoint import resolve
    from .storecmd import apply_settings

    # What the store reads at the next request: the settings as they are now.
    apply_settings(settings)
    endpoint = resolve(
        base_url=settings.base_url,
        api_key_env=settings.api_key_env,
        server=None if settings.server == "auto" else settings.server,
    )
    rows = [
        ("endpoint", endpoint.describe()),
        ("server", _server_line(settings, endpoint)),
        ("api key", endpoint.describe_key()),
        ("model", _model_line(settings, endpoint)),
        ("store", _store_line(settings)),
        ("budget", _budget_line(settings)),
    ]
    for trait in sorted(settings.trait_names(config=True)):
        if trait in _OWN_ROWS:
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


def _model_line(settings: ChatSettings, endpoint: Any) -> str:
    """The model that answers: the setting, the local model, or the server's only one."""
    from ..conversation.sessions import known_client

    client = known_client(settings)
    known = client.profile.default_model if client is not None else None
    if endpoint.local:
        local = known or _local_model()
        if settings.model and settings.model != local:
            return (
                f"{local} (nbchat's local model; Chat.model {settings.model!r} is not used "
                "while no key or base URL is set)"
            )
        return f"{local} (nbchat's local model)"
    if settings.model:
        return settings.model
    if known:
        return f"{known} (the server's default)"
    return (
        "not set: the server's model if /models lists only one, else -m on the cell or "
        "%config Chat.model = '...'"
    )


def _local_model() -> str:
    """The id nbchat's local server lists for its model (the model file's name)."""
    from ..local import LocalServerError, default_model_path

    try:
        return default_model_path().stem
    except LocalServerError as exc:
        return f"none ({exc.message})"


def _store_line(settings: ChatSettings) -> str:
    from ..store.config import store_path

    path = store_path()
    if settings.store:
        where = "the store setting"
    elif os.environ.get("NBCHAT_STORE", "").strip():
        where = "$NBCHAT_STORE"
    else:
        where = "the default"
    if path is None:
        return f"off (from {where}): no exchanges are kept"
    return f"{path} (from {where})"


def _budget_line(settings: ChatSettings) -> str:
    from ..protocol.exceptions import NbchatError
    from ..store.config import budget

    try:
        dollars = budget()
    except NbchatError as exc:
        return f"not usable: {exc}"
    if dollars is None:
        return "none (no limit)"
    where = "the budget setting" if settings.budget is not None else "$NBCHAT_BUDGET"
    return f"${dollars:,.2f} (from {where})"
