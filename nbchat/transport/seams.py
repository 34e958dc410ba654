"""What the layers above expect of a client, as ``typing.Protocol``s instead of ``Any``.

A conversation, a map, the store's door and the panel work with any object that has these
methods (a ``Client``, an ``AsyncClient``, a test's stand-in); mypy checks each side against them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..protocol.types import ChatCompletion
    from .prepared import PreparedRequest
    from .profiles import ServerProfile

__all__ = ["AsyncSender", "Endpoint", "Sender", "StreamSnapshot", "SyncSender"]


@runtime_checkable
class Endpoint(Protocol):
    """A server's identity and what nbchat knows of it: enough to build, key and price requests."""

    @property
    def profile(self) -> ServerProfile: ...

    @property
    def endpoint(self) -> str: ...

    @property
    def secrets(self) -> tuple[str, ...]: ...


class Sender(Endpoint, Protocol):
    """An endpoint requests are built for (``Chat.prepare``)."""

    def build_request(self, **request: Any) -> PreparedRequest: ...


class SyncSender(Sender, Protocol):
    """A blocking client: ``Client``."""

    def send_completion(self, prepared: PreparedRequest) -> ChatCompletion: ...

    def send_stream(self, prepared: PreparedRequest) -> Any: ...

    def models(self) -> list[str]: ...


class AsyncSender(Sender, Protocol):
    """An asyncio client: ``AsyncClient``."""

    async def send_completion(self, prepared: PreparedRequest) -> ChatCompletion: ...

    def send_stream(self, prepared: PreparedRequest) -> Any: ...

    async def models(self) -> list[str]: ...


class StreamSnapshot(Protocol):
    """What a listener's ``on_chunk`` gets as ``stream``: the completion accumulated so far."""

    @property
    def completion(self) -> ChatCompletion: ...
