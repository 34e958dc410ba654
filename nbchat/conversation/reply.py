"""``Reply``: what one send produced — the final completion and everything about how it came.

It reads as its final ``ChatCompletion`` too (``nbchat.last.usage``), for code written before
it existed. ``NbchatNote`` is the warning a note becomes in plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol.types import ChatCompletion
from ..transport.prepared import PreparedRequest

__all__ = ["NbchatNote", "Reply"]


class NbchatNote(UserWarning):
    """How a request was fitted to its server, or why a reply is not what was asked for."""


@dataclass
class Reply:
    """What one ``send`` produced: the final completion, and everything about how it came."""

    completion: ChatCompletion
    completions: list[ChatCompletion] = field(default_factory=list)
    #: The body of the last request sent (``prepared.body``).
    request: dict[str, Any] = field(default_factory=dict)
    #: The last request sent, as ``Chat.prepare`` built it (URL, masked headers, body, notes).
    prepared: PreparedRequest | None = None
    parsed: Any = None
    tool_results: list[Any] = field(default_factory=list)
    interrupted: bool = False
    elapsed: float = 0.0
    time_to_first_token: float | None = None
    #: Streamed chunks that carried output, for servers that report no usage in streams.
    output_chunks: int = 0
    notes: list[str] = field(default_factory=list)
    #: The kind of server that answered (``client.profile.kind``).
    server: str | None = None
    #: The user chose Stop at a tool's confirmation: the loop ended there, nothing more sent.
    stopped: bool = False

    @property
    def metadata(self) -> dict[str, Any]:
        """How this answer was obtained, as a saved notebook records it (``metadata["nbchat"]``).

        ``request_hash`` is the prepared request's key; ``model`` the one the server reported.
        """
        from .._version import __version__

        completion = self.completion
        body = self.request
        usage = completion.usage.to_dict() if completion.usage is not None else None
        return {
            "request_hash": self.prepared.key if self.prepared is not None else None,
            "model": completion.model or None,
            "system_fingerprint": completion.system_fingerprint,
            "seed": body.get("seed"),
            "temperature": body.get("temperature"),
            "usage": usage,
            "latency": round(self.elapsed, 3) if self.elapsed else None,
            "version": __version__,
            "server": self.server,
        }

    #: True when nothing was sent: every round came from the response cache or a cassette.
    cached: bool = False
    #: US dollars billed for this reply (all rounds); None when the price is unknown.
    cost: float | None = None
    #: For a cached reply, where and when the original came from (``nbchat.store`` Origin).
    origin: Any = None

    @property
    def content(self) -> str | None:
        """The answer's text, without a reasoning model's leading ``<think>`` block."""
        from ..convert.reasoning import split_think

        return split_think(self.completion.content)[1]

    @property
    def reasoning(self) -> str | None:
        """A reasoning model's thinking (``reasoning_content``, ``reasoning`` or ``<think>``)."""
        from ..convert.reasoning import reasoning_of

        if not self.completion.choices:
            return None
        return reasoning_of(self.completion.choices[0].message)

    @property
    def audio(self) -> Any:
        """A spoken reply (``nbchat.convert.audio.SpokenReply``: the audio's bytes, its
        transcript, its id and expiry, ``player()``), or None."""
        from ..convert.audio import spoken_reply

        if not self.completion.choices:
            return None
        asked = self.request.get("audio")
        fmt = asked.get("format") if isinstance(asked, dict) else None
        return spoken_reply(self.completion.choices[0].message.audio, fmt)

    @property
    def citations(self) -> list[Any]:
        """The web sources the reply cites (``url_citation`` annotations), numbered as shown:
        ``Citation(number, url, title, start, end, text)``."""
        from ..convert.citations import citations_of

        if not self.completion.choices:
            return []
        return citations_of(self.completion.choices[0].message)

    @property
    def value(self) -> Any:
        """The parsed object for structured replies, the text otherwise."""
        return self.parsed if self.parsed is not None else self.content

    def __str__(self) -> str:
        return self.content or ""

    def __getattr__(self, name: str) -> Any:
        # A Reply reads as its final completion too (``nbchat.last.usage``, ``.choices``):
        # nbchat.last was the ChatCompletion before it was the Reply.
        if name.startswith("_") or name == "completion":
            raise AttributeError(name)
        return getattr(self.completion, name)

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from ..render.bundles import reply_bundle, reply_metadata

        # (data, metadata): a saved notebook records how the answer came (metadata["nbchat"]).
        return reply_bundle(self), reply_metadata(self)
