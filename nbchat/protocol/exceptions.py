"""The errors nbchat raises: one tree, so callers can catch as broadly or narrowly as they like.

    NbchatError
    ├── RequestValidationError (also ValueError)   bad request fields; nothing was sent
    ├── BudgetExceededError                        the request would pass Chat.budget; not sent
    ├── ReplayMissError                            replay mode, and the cassette lacks the request
    └── APIError                                   something went wrong talking to the server
        ├── APIConnectionError                     no response: refused, reset, DNS, TLS…
        │   └── APITimeoutError                    no response in time
        ├── APIResponseValidationError             a 2xx response we could not read
        ├── IncompleteStreamError                  a stream that stopped before its end
        └── APIStatusError                         an error status, or an error inside a stream
            ├── BadRequestError                    400 (context_length_exceeded, …)
            ├── AuthenticationError                401
            ├── PermissionDeniedError              403
            ├── NotFoundError                      404 (model_not_found)
            ├── ConflictError                      409
            ├── UnprocessableEntityError           422
            ├── RateLimitError                     429
            └── InternalServerError                500 and every other 5xx
                └── ServiceUnavailableError        503 (engine_overloaded)

Every APIStatusError carries status_code, message, type, code, param, request_id and body.
Messages and bodies never contain the API key: the client redacts it before raising.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConflictError",
    "IncompleteStreamError",
    "InternalServerError",
    "NbchatError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReplayMissError",
    "RequestValidationError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
]


class NbchatError(Exception):
    """Base of every error nbchat raises on purpose."""


class RequestValidationError(NbchatError, ValueError):
    """A request field is missing or out of range; raised before anything is sent."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BudgetExceededError(NbchatError):
    """Sending would spend more than the budget allows (``Chat.budget``, ``NBCHAT_BUDGET``).

    Raised before anything is sent. ``estimate`` is what the request could cost at most,
    ``spent`` what the store has recorded so far and ``budget`` the limit, all in US dollars.
    """

    def __init__(
        self, message: str, *, estimate: float | None, spent: float, budget: float
    ) -> None:
        super().__init__(message)
        self.message = message
        self.estimate = estimate
        self.spent = spent
        self.budget = budget


class ReplayMissError(NbchatError):
    """``NBCHAT_REPLAY=replay`` and the cassette holds no reply for this request; nothing sent.

    ``key`` is the request's cache key (``PreparedRequest.key``), ``cassette`` the file's path.
    """

    def __init__(self, message: str, *, key: str, cassette: str) -> None:
        super().__init__(message)
        self.message = message
        self.key = key
        self.cassette = cassette


class APIError(NbchatError):
    """Base of errors from talking to a server."""

    message: str
    request: httpx.Request | None

    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request = request


class APIConnectionError(APIError):
    def __init__(
        self,
        message: str = "Could not connect to the server.",
        *,
        request: httpx.Request | None = None,
    ) -> None:
        super().__init__(message, request=request)


class APITimeoutError(APIConnectionError):
    def __init__(
        self, message: str = "The request timed out.", *, request: httpx.Request | None = None
    ) -> None:
        super().__init__(message, request=request)


class APIResponseValidationError(APIError):
    """The server answered 2xx with something that is not a chat completion."""

    def __init__(
        self, message: str, *, request: httpx.Request | None = None, body: Any = None
    ) -> None:
        super().__init__(message, request=request)
        self.body = body


class IncompleteStreamError(APIError):
    """A stream ended (or broke) before ``[DONE]`` or a finish_reason.

    ``completion`` is the partial ChatCompletion accumulated up to the break.
    """

    def __init__(
        self, message: str, *, request: httpx.Request | None = None, completion: Any = None
    ) -> None:
        super().__init__(message, request=request)
        self.completion = completion


class APIStatusError(APIError):
    """The server answered with an error, as an HTTP status or as an error event in a stream."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        code: str | int | None = None,
        param: str | None = None,
        request_id: str | None = None,
        body: Any = None,
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message, request=request)
        self.status_code = status_code
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.body = body
        self.response = response
        #: How many retries the client made before giving up (set by the client).
        self.retries = 0

    def __str__(self) -> str:
        parts = [f"Error code: {self.status_code}"]
        if self.type:
            parts.append(f"type: {self.type}")
        if self.code:
            parts.append(f"code: {self.code}")
        return f"{' - '.join(parts)} - {self.message}"


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class ServiceUnavailableError(InternalServerError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}

# An error event inside a 200 stream has no status of its own; its type tells what it would be.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "server_error": 500,
}


def class_for_status(status_code: int) -> type[APIStatusError]:
    if status_code in _BY_STATUS:
        return _BY_STATUS[status_code]
    if status_code >= 500:
        return InternalServerError
    return APIStatusError


def _redact(text: str, secret: str | None) -> str:
    if secret and secret in text:
        return text.replace(secret, _mask(secret))
    return text


def _mask(secret: str) -> str:
    return secret[:3] + "…" if len(secret) > 8 else "…"


def redact(value: Any, secret: str | None) -> Any:
    """Replace every occurrence of ``secret`` in a str or JSON-like value with a mask."""
    if not secret:
        return value
    if isinstance(value, str):
        return _redact(value, secret)
    if isinstance(value, dict):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return value


def error_fields(body: Any) -> tuple[str | None, str | None, str | int | None, str | None]:
    """(message, type, code, param) from an error body of any of the shapes servers use."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]  # some servers wrap the error object in a list
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, str):
        # Some servers send {"error": "text"}; keep a sibling message if there is one.
        return error, None, None, None
    if not isinstance(error, dict):
        return None, None, None, None
    message = error.get("message") or error.get("detail")
    if message is not None and not isinstance(message, str):
        message = json.dumps(message, ensure_ascii=False)
    code = error.get("code")
    param = error.get("param")
    return (
        message,
        error.get("type") if isinstance(error.get("type"), str) else None,
        code if isinstance(code, str | int) and not isinstance(code, bool) else None,
        param if isinstance(param, str) else None,
    )


def status_error_from_response(
    response: httpx.Response, *, secret: str | None = None
) -> APIStatusError:
    """Build the typed error for an error response whose body has been read."""
    raw = response.content
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    message, type_, code, param = error_fields(body)
    if not message:
        message = _message_from_non_json(response, body)
    body = redact(body, secret)
    cls = class_for_status(response.status_code)
    return cls(
        _redact(message, secret),
        status_code=response.status_code,
        type=type_,
        code=code,
        param=param,
        request_id=response.headers.get("x-request-id"),
        body=body,
        request=response.request,
        response=response,
    )


def status_error_from_event(
    error: Any, *, response: httpx.Response | None = None, secret: str | None = None
) -> APIStatusError:
    """Build the typed error for an ``{"error": …}`` object met inside a stream."""
    message, type_, code, param = error_fields(error)
    status = error.get("error", {}).get("status_code") if isinstance(error, dict) else None
    if not isinstance(status, int):
        status = _STATUS_BY_TYPE.get(type_ or "", 500)
    cls = class_for_status(status)
    return cls(
        _redact(message or "The server sent an error in the stream.", secret),
        status_code=status,
        type=type_,
        code=code,
        param=param,
        request_id=response.headers.get("x-request-id") if response is not None else None,
        body=redact(error, secret),
        request=response.request if response is not None else None,
        response=response,
    )


def _message_from_non_json(response: httpx.Response, body: Any) -> str:
    reason = response.reason_phrase or "error"
    if body is not None and not isinstance(body, str):
        # JSON, but no error object we know: show it as it came.
        body = json.dumps(body, ensure_ascii=False)
    if isinstance(body, str) and body.strip():
        text = " ".join(body.split())
        if text.startswith("<"):
            return f"{response.status_code} {reason} (the server sent an HTML page, not JSON)"
        return text if len(text) <= 300 else text[:300] + "…"
    return f"{response.status_code} {reason} (empty response body)"
