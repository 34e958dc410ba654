"""What a tool may return besides a value: text for the model and images beside it.

A ``ToolOutput``'s text is the tool message as it is (its maker bounds it); its images are shown
as thumbnails under the call and, where the model can see, sent after the tool messages as the
image parts of one user message (the protocol's tool messages carry text only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolOutput"]


@dataclass
class ToolOutput:
    """A tool's answer: ``text`` for the tool message, ``images`` (``ImagePart``) beside it."""

    text: str
    images: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 80 else self.text[:79] + "…"
        return f"ToolOutput({shown!r}, images={len(self.images)})"
