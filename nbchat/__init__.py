"""nbchat: chat models in Jupyter, for any OpenAI-compatible server.

``%load_ext nbchat`` registers the ``%%chat`` magics; ``nbchat.Client`` is the HTTP client.
"""

from __future__ import annotations

from ._client import DEFAULT_BASE_URL, AsyncClient, Client
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteStreamError,
    InternalServerError,
    NbchatError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from ._streaming import AsyncChatStream, ChatStream
from ._types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatStream",
    "Client",
    "ConflictError",
    "IncompleteStreamError",
    "InternalServerError",
    "NbchatError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestValidationError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
    "__version__",
]
