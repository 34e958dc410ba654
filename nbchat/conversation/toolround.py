"""What a round of tool calls leaves besides its tool messages: the images tools returned, as
one user message for a model that can see, and a record of every call (how it was approved,
declined, refused or stopped, and what the model was told) in the store.
"""

from __future__ import annotations

from typing import Any

from ..convert.tooloutput import ToolOutput

__all__ = ["TOOL_IMAGES", "images_message", "record_calls"]

#: The metadata of the user message that carries tool images (``Chat.undo`` skips it).
TOOL_IMAGES = "tool_images"
#: What a stored result keeps of the tool message.
_STORED_CHARS = 20_000


def images_message(results: list[Any], profile: Any) -> dict[str, Any] | None:
    """A user message with the images of this round's results, or None (no images, or a model
    that cannot see: their tool messages already say what each image is)."""
    parts: list[dict[str, Any]] = []
    for result in results:
        value = getattr(result, "value", None)
        if not getattr(result, "ok", False) or not isinstance(value, ToolOutput):
            continue
        if not value.images:
            continue
        parts.append(
            {
                "type": "text",
                "text": f"The images {result.name} returned (call {result.tool_call_id}):",
            }
        )
        parts += [image.to_dict() for image in value.images]
    if not parts or profile.supports("vision") is False:
        return None
    return {"role": "user", "content": parts}


def record_calls(prepared: Any, session: str | None, results: list[Any], client: Any) -> None:
    """Keep each call of the round in the store, linked to the exchange that asked for it."""
    if prepared is None or not results:
        return
    from ..store.exchange import current_store
    from ..store.record import ToolCallRecord, scrub

    store = current_store()
    if store is None:
        return
    # Every credential the client holds, in every form a tool's output could echo it.
    secrets = tuple(getattr(client, "secrets", ()))
    for result in results:
        content = result.content
        if len(content) > _STORED_CHARS:
            content = content[:_STORED_CHARS] + f"… [{len(result.content):,} characters]"
        try:
            store.add(
                ToolCallRecord(
                    key=prepared.key,
                    name=result.name,
                    call_id=result.tool_call_id,
                    session=session,
                    arguments=scrub(result.to_dict()["arguments"], secrets),
                    status=result.status,
                    approval=getattr(result, "approval", None),
                    error=scrub(result.error, secrets),
                    content=scrub(content, secrets),
                    duration=result.duration,
                )
            )
        except Exception:
            # The store never breaks a reply (it warns about its own failures).
            return
