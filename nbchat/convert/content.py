"""The user message built from a prompt and the notebook objects attached to it.

Data blocks follow the text as JSON; images become image_url parts. Used by Chat.send and the
magic alike, so both send the same message for the same objects.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Attachments", "build_content"]


@dataclass
class Attachments:
    """What was attached to a prompt, for display: image parts and data blocks."""

    images: list[Any] = field(default_factory=list)
    data: list[Any] = field(default_factory=list)
    text_tokens: int = 0

    def __bool__(self) -> bool:
        return bool(self.images or self.data)

    @property
    def tokens(self) -> int:
        """Estimated prompt tokens of the message: text, data and images."""
        images = sum(part.tokens or 0 for part in self.images)
        return self.text_tokens + images

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        pieces = [part._repr_html_() for part in self.images]
        pieces += [block._repr_html_() for block in self.data]
        lines = [part.summary() for part in self.images] + [b.summary() for b in self.data]
        total = f"Prompt: ~{self.tokens:,} tokens (estimated)"
        return {
            "text/html": "<div>"
            + " ".join(pieces)
            + f"<br><small>{html.escape(total)}</small></div>",
            "text/plain": "\n".join([*lines, total]),
        }


def build_content(
    text: str,
    *,
    images: Sequence[Any] = (),
    data: Sequence[Any] = (),
    names: Sequence[str | None] = (),
    detail: str | None = "auto",
) -> tuple[Any, Attachments]:
    """(content, attachments): a string when there are no images, else a list of parts.

    ``names`` label the data blocks (the variable names in the notebook). Raises the
    conversions' ValueErrors (ImageError, DataError) for objects that cannot be sent.
    """
    from .data import estimate_tokens

    attachments = Attachments()
    if data:
        from .data import data_block

        labels = list(names) + [None] * (len(data) - len(names))
        attachments.data = [
            data_block(obj, name=label) for obj, label in zip(data, labels, strict=True)
        ]
        blocks = [block.prompt() for block in attachments.data]
        text = "\n\n".join([text.rstrip(), *blocks]) if text.strip() else "\n\n".join(blocks)
    attachments.text_tokens = estimate_tokens(text)
    if not images:
        return text, attachments
    from .images import image_part

    attachments.images = [image_part(obj, detail=detail or "auto") for obj in images]
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text.strip() else []
    parts += [part.to_dict() for part in attachments.images]
    return parts, attachments
