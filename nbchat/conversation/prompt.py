"""``Prompt``: everything one request is made from, as one frozen value built once and passed down.

``Chat.send``/``asend``/``prepare``, a cell, a map row, a compare column and the panel all make a
Prompt and hand it to the conversation; an option is added here and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from ..protocol.exceptions import RequestValidationError

__all__ = ["OPTIONS", "Prompt"]


@dataclasses.dataclass(frozen=True)
class Prompt:
    """What one send is made from: the new message, request fields, attachments, tools, output.

    ``content`` is the next user message (a string or content parts; None sends the history as
    it is); ``messages`` are whole messages added before it (a row of ``map`` that is a
    conversation). ``fields`` are request fields on top of the conversation's settings (None
    removes a setting). ``cache`` answers a request seen before from the store (None follows
    the conversation, then ``%config Chat.cache``); ``log=False`` keeps the exchange out of the
    store. ``Prompt.of(content, **options)`` sorts keyword arguments into options and fields,
    as ``Chat.send`` takes them.
    """

    content: Any = None
    messages: tuple[Mapping[str, Any], ...] = ()
    model: str | None = None
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    images: tuple[Any, ...] = ()
    data: tuple[Any, ...] = ()
    detail: str | None = None
    #: Audio attached as ``input_audio`` parts (WAV/MP3 bytes or paths, arrays of samples at
    #: ``sample_rate``, IPython Audio), and files as ``file`` parts (paths, bytes, file ids).
    recordings: tuple[Any, ...] = ()
    files: tuple[Any, ...] = ()
    sample_rate: int | None = None
    tools: tuple[Any, ...] | None = None
    schema: Any = None
    json: bool = False
    stream: bool | None = None
    cache: bool | None = None
    log: bool = True
    max_rounds: int | None = None
    confirm: Any = None
    parse: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down: a caller's list or dict changed later changes no Prompt.
        fix = object.__setattr__
        fix(self, "messages", tuple(dict(m) for m in self.messages))
        fix(self, "fields", MappingProxyType(dict(self.fields)))
        fix(self, "images", tuple(self.images))
        fix(self, "data", tuple(self.data))
        fix(self, "recordings", tuple(self.recordings))
        fix(self, "files", tuple(self.files))
        if self.tools is not None:
            fix(self, "tools", tuple(self.tools) or None)
        if isinstance(self.content, list):
            fix(self, "content", [dict(p) if isinstance(p, Mapping) else p for p in self.content])
        if self.max_rounds is not None and (
            isinstance(self.max_rounds, bool)
            or not isinstance(self.max_rounds, int)
            or self.max_rounds < 0
        ):
            raise RequestValidationError(
                f"max_rounds must be a whole number of 0 or more, not {self.max_rounds!r}",
                field="max_rounds",
            )

    @classmethod
    def of(cls, content: Any = None, /, **options: Any) -> Prompt:
        """A Prompt from ``send``'s arguments: known options by name, the rest request fields.

        ``content`` may be a Prompt already: ``options`` are then applied on top of it.
        """
        base = content if isinstance(content, Prompt) else cls(content=content)
        if not options:
            return base
        return base.with_(**options)

    def with_(self, **options: Any) -> Prompt:
        """A copy with options replaced and request fields added (None removes a field)."""
        known: dict[str, Any] = {}
        fields = dict(self.fields)
        for name, value in options.items():
            if name in OPTIONS:
                if name in _SEQUENCES and value is None:
                    value = () if name != "tools" else None
                known[name] = value
            else:
                fields[name] = value
        if "model" in fields:
            # ``model`` is an option of its own; as a field it is the same thing.
            model = fields.pop("model")
            known.setdefault("model", model)
        return dataclasses.replace(self, fields=fields, **known)

    @property
    def request_fields(self) -> dict[str, Any]:
        """The request fields this prompt sets, ``model`` included when it names one."""
        fields = dict(self.fields)
        if self.model:
            fields["model"] = self.model
        return fields


#: The options of a Prompt that are not request fields.
OPTIONS = frozenset(f.name for f in dataclasses.fields(Prompt)) - {"fields"}
_SEQUENCES = frozenset({"messages", "images", "data", "recordings", "files", "tools"})


def merged_fields(settings: Mapping[str, Any], prompt_fields: Iterable[tuple[str, Any]]) -> dict:
    """Settings with a prompt's fields on top; a field given as None removes the setting."""
    params = dict(settings)
    for key, value in prompt_fields:
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params
