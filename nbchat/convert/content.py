"""The user message built from a prompt and the notebook objects attached to it.

Data blocks follow the text as JSON; images become image_url parts, recordings input_audio
parts and files file parts. Used by Chat.send and the magic alike, so both send the same
message for the same objects.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Attachments", "build_content"]


@dataclass
class Attachments:
    """What was attached to a prompt, for display: images, recordings, files, data blocks."""

    images: list[Any] = field(default_factory=list)
    data: list[Any] = field(default_factory=list)
    text_tokens: int = 0
    recordings: list[Any] = field(default_factory=list)
    files: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.images or self.data or self.recordings or self.files)

    @property
    def tokens(self) -> int:
        """Estimated prompt tokens of the message: text, data, images, recordings and files."""
        parts = [*self.images, *self.recordings, *self.files]
        return self.text_tokens + sum(part.tokens or 0 for part in parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        shown = [*self.images, *self.recordings, *self.files]
        pieces = [part._repr_html_() for part in shown]
        pieces += [block._repr_html_() for block in self.data]
        lines = [part.summary() for part in shown] + [b.summary() for b in self.data]
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
    recordings: Sequence[Any] = (),
    files: Sequence[Any] = (),
    sample_rate: int | None = None,
) -> tuple[Any, Attachments]:
    """(content, attachments): a string when nothing but text is attached, else a list of
    parts: the text, then images, recordings (``sample_rate`` for arrays of samples) and files.

    ``names`` label the data blocks (the variable names in the notebook). Raises the
    conversions' ValueErrors (ImageError, DataError, AudioError, FileInputError) for objects
    that cannot be sent.
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
    if not (images or recordings or files):
        return text, attachments
    if images:
        from .images import image_part

        attachments.images = [image_part(obj, detail=detail or "auto") for obj in images]
    if recordings:
        from .audio import audio_part

        attachments.recordings = [audio_part(obj, sample_rate=sample_rate) for obj in recordings]
    if files:
        from .files import check_total, file_part

        attachments.files = [file_part(obj) for obj in files]
        check_total(attachments.files)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text.strip() else []
    parts += [
        part.to_dict()
        for part in [*attachments.images, *attachments.recordings, *attachments.files]
    ]
    return parts, attachments
