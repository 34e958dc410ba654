"""The errors nbchat raises: one tree, so callers can catch as broadly or narrowly as they like.

    NbchatError                                    every error nbchat raises on purpose
    ├── RequestValidationError (also ValueError)   bad request fields; nothing was sent
    │   ├── CassetteError                          a cassette file or entry nbchat cannot read
    │   └── UnsupportedFeatureError                a part the server is known to lack; not sent
    ├── BudgetExceededError                        the request would pass Chat.budget; not sent
    ├── ReplayMissError                            replay mode, and the cassette lacks the request
    ├── APIError                                   something went wrong talking to the server
    │   ├── APIConnectionError                     no response: refused, reset, DNS, TLS…
    │   │   └── APITimeoutError                    no response in time
    │   ├── APIResponseValidationError             a 2xx response we could not read
    │   │   └── ResponseDecodingError              a body not in the Content-Encoding it claims
    │   ├── ResponseTooLargeError                  a body, stream or event past its size limit
    │   ├── IncompleteStreamError                  a stream that stopped before its end
    │   ├── BatchUnsupportedError                  a server without the Batch API (/files, /batches)
    │   ├── BatchError                             a Batch API answer or batch nbchat cannot use
    │   ├── StoredCompletionsUnsupportedError      a server that keeps no stored completions
    │   └── APIStatusError                         an error status, or an error inside a stream
    │       ├── BadRequestError                    400 (context_length_exceeded, …)
    │       ├── AuthenticationError                401
    │       ├── PermissionDeniedError              403
    │       ├── NotFoundError                      404 (model_not_found)
    │       ├── ConflictError                      409
    │       ├── UnprocessableEntityError           422
    │       ├── RateLimitError                     429
    │       └── InternalServerError                500 and every other 5xx
    │           └── ServiceUnavailableError        503 (engine_overloaded)
    ├── SchemaError (also ValueError)              a JSON schema nbchat cannot use
    │   └── StrictSchemaError                      a schema strict mode cannot express
    ├── InterpolationError (also ValueError)       a {expression} in a prompt failed
    ├── ImageError (also ValueError)               an object that cannot be sent as an image
    ├── AudioError (also ValueError)               an object that cannot be sent as a recording
    ├── FileInputError (also ValueError)           an object that cannot be sent as a file
    ├── DataError (also ValueError)                an object that cannot be sent as data
    ├── ToolDefinitionError (also TypeError)       a function that cannot become a tool
    ├── ToolArgumentsError (also ValueError)       a model's tool arguments that do not fit
    ├── StructuredOutputError (also ValueError)    a reply that is not the output asked for
    ├── LogprobsError (also ValueError)            no logprobs to show
    ├── MCPConfigError (also ValueError)           an MCP configuration nbchat cannot use
    ├── MCPServerError                             an MCP server that failed to start or broke off
    │   └── MCPTimeoutError                        an MCP server that did not answer in time
    ├── MCPToolError                               an MCP tool that answered with isError
    ├── LocalServerError                           the local model server failed or stopped
    │   └── LocalServerUnavailable                 its extra (nbchat[local]) is not installed
    ├── LimiterClosed                              a stopped map run (internal: never reaches you)
    └── ChatCellError                              a %%chat cell failed; its card shows why

    KeyboardInterrupt (not errors: Ctrl-C, which ``except Exception`` must not swallow)
    ├── ToolRunInterrupted                         Ctrl-C while tools ran; every call answered
    └── StopRequested                              the panel's Stop button

    UserWarning (not errors: what plain Python shows where a notebook shows a note)
    ├── NbchatNote                                 how a request was fitted to its server
    ├── StoreWarning                               the store could not be written; replies go on
    └── MCPToolNote                                an MCP tool left out: its schema cannot be sent

Every error is defined beside the code that raises it (``protocol/schema.py``,
``convert/*``, ``mcpclient/errors.py``, ``render/logprobs.py``, ``local/supervisor.py``,
``notebook/run.py``…) and is
drawn here (private signals, named with a leading underscore, are not); a test checks that
the two agree. Every APIStatusError carries status_code,
message, type, code, param, request_id and body. Messages and bodies never contain the API
key or any other credential the client holds: the client redacts ``client.secrets`` before
raising. ``exc.request`` and ``exc.response`` are copies with
credential headers masked (see ``safe_request``/``safe_response``), never the objects that went
over the wire. ``first_line()`` is the one way to shorten an
error to one line (a cell's failure, a status bar).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

import httpx

if TYPE_CHECKING:
    from ..conversation.reply import Reply

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
    "ResponseDecodingError",
    "ResponseTooLargeError",
    "ServiceUnavailableError",
    "UnprocessableEntityError",
]


class NbchatError(Exception):
    """Base of every error nbchat raises on purpose.

    ``reply`` is what arrived before the error, where a send had begun: the ``Reply`` so far
    (a partial stream, the rounds of a tool loop, a reply that is not the output asked for),
    set by the conversation in one place; None otherwise.
    """

    reply: Reply | None = None


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
        # A copy with credentials masked: the request that was sent carries the key.
        self.request = safe_request(request) if request is not None else None


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


class ResponseDecodingError(APIResponseValidationError):
    """The body is not in the Content-Encoding its headers claim (or in one nbchat refuses)."""


class ResponseTooLargeError(APIError):
    """A response body, a whole stream or one event of it passed its size limit.

    ``limit`` is the limit in bytes, counted after decoding; reading stopped there.
    """

    def __init__(self, message: str, *, limit: int, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)
        self.limit = limit


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
        # A copy whose request has credentials masked and whose body is the decoded one.
        self.response = safe_response(response, secret=None) if response is not None else None
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


#: What a masked credential shows instead of its value.
MASK = "••••••••"
# The same in the headers of an httpx copy, which must be ASCII.
_ASCII_MASK = "********"

#: Headers whose values are credentials, in lower case: masked wherever a request is shown.
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie", "set-cookie"}
)

# Words that make a header or a query parameter a credential's, beyond the names above:
# X-Goog-Api-Key, Ocp-Apim-Subscription-Key, Private-Token, X-Amz-Security-Token, ?key=, ?sig=.
# Whole words only: x-ratelimit-remaining-tokens is a count, not a token.
_CREDENTIAL_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "cookie",
        "credential",
        "credentials",
        "sig",
        "signature",
    }
)
_CREDENTIAL_ENDINGS = ("apikey", "token", "secret", "password")


def credential_field(name: str) -> bool:
    """Whether the header or query parameter ``name`` carries a credential (Authorization,
    api-key, X-Goog-Api-Key, Private-Token, ``?key=``, ``?access_token=``, ``?sig=``…)."""
    lowered = name.lower()
    if lowered in CREDENTIAL_HEADERS:
        return True
    words = [word for word in re.split(r"[^a-z0-9]+", lowered) if word]
    return any(w in _CREDENTIAL_WORDS or w.endswith(_CREDENTIAL_ENDINGS) for w in words)


#: One secret, several (an API key, a password, a Basic token), or none.
Secrets = str | Iterable[str] | None


def _secrets(secret: Secrets) -> list[str]:
    if not secret:
        return []
    if isinstance(secret, str):
        return [secret]
    # Longest first, so that a secret containing another is masked whole.
    return sorted((s for s in secret if s), key=len, reverse=True)


def _redact(text: str, secret: Secrets) -> str:
    secrets = _secrets(secret)
    if "\\" in text or "%" in text:
        # A server may echo a secret as JSON escapes ("\u0073k-…") or percent-encoded: the
        # text is shown decoded wherever that reveals one.
        for decode in (_json_unescaped, _percent_decoded):
            decoded = decode(text)
            if decoded != text and any(one in decoded for one in secrets):
                text = decoded
    for one in secrets:
        if one in text:
            text = text.replace(one, _mask(one))
    return text


_JSON_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_SIMPLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_unescaped(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        escape = match.group()[1:]
        if escape[0] == "u":
            return chr(int(escape[1:], 16))
        return _SIMPLE_ESCAPES.get(escape, escape)

    return _JSON_ESCAPE.sub(one, text)


def _percent_decoded(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def redact_cut(text: str, secret: Secrets, *, shortest: int = 4) -> str:
    """``redact`` for text cut off at its end (the first bytes of a body): a secret's beginning
    left at the cut is masked too."""
    text = _redact(text, secret)
    for one in _secrets(secret):
        for size in range(min(len(one) - 1, len(text)), shortest - 1, -1):
            if text.endswith(one[:size]):
                return text[:-size] + _mask(one)
    return text


def _mask(secret: str) -> str:
    return secret[:3] + "…" if len(secret) > 8 else "…"


def redact(value: Any, secret: Secrets) -> Any:
    """Replace every occurrence of ``secret`` (one or several) in a str or JSON-like value."""
    secrets = _secrets(secret)
    if not secrets:
        return value
    if isinstance(value, str):
        return _redact(value, secrets)
    if isinstance(value, dict):
        return {redact(k, secrets): redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    return value


def mask_credential(value: str, mask: str = MASK) -> str:
    """``Bearer sk-…`` → ``Bearer ••••••••``: the scheme stays readable, the credential not."""
    scheme, space, _ = value.partition(" ")
    return f"{scheme} {mask}" if space and scheme.isalpha() else mask


def mask_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], mask: str = MASK
) -> list[tuple[str, str]]:
    """The headers with every credential value masked (names as given, order kept)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name, mask_credential(value, mask) if credential_field(name) else value)
        for name, value in items
    ]


def mask_url(url: str | httpx.URL, mask: str = MASK) -> str:
    """``url`` as it can be shown: no user info, and the values of credential query parameters
    (``?api-key=…``, ``&sig=…``) masked; the rest as it was."""
    parsed = httpx.URL(url) if isinstance(url, str) else url
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    text = str(parsed)
    if not parsed.query:
        return text
    head, _, rest = text.partition("?")
    query, hash_, fragment = rest.partition("#")
    pieces = []
    for piece in query.split("&"):
        name, equals, _value = piece.partition("=")
        pieces.append(
            f"{name}={mask}" if equals and credential_field(unquote_plus(name)) else piece
        )
    return f"{head}?{'&'.join(pieces)}{hash_}{fragment}"


def safe_request(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` that can be shown: credential headers masked, no user:password in
    its URL nor credential in its query. The body is kept (nbchat never puts a credential
    there)."""
    try:
        content: bytes | None = request.content
    except httpx.RequestNotRead:
        content = None  # a streamed upload: nothing of it is kept
    return httpx.Request(
        request.method,
        httpx.URL(mask_url(request.url, _ASCII_MASK)),
        headers=mask_headers(request.headers.multi_items(), _ASCII_MASK),
        content=content,
        extensions={k: v for k, v in request.extensions.items() if k == "timeout"},
    )


def safe_cause(exc: BaseException, secret: Secrets = None) -> BaseException | None:
    """An httpx error fit to be the cause of ours: the same class and message (``secret``
    masked), its request made safe. The original holds the request as sent, key and all."""
    if not isinstance(exc, httpx.RequestError):
        return None
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:
        request = None
    try:
        return type(exc)(
            _redact(str(exc), secret), request=safe_request(request) if request else None
        )
    except TypeError:  # a subclass with another signature: no cause rather than a leak
        return None


# A decoded copy must not claim the encoding or length of the bytes that were on the wire.
_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def safe_response(
    response: httpx.Response, *, content: bytes | None = None, secret: Secrets = None
) -> httpx.Response:
    """A copy of ``response`` that can be kept in an error: its request made safe, credential
    headers masked, and ``content`` (the decoded body; by default what was read of it, or
    nothing) with ``secret`` masked."""
    if content is None:
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = b""  # a stream still being read, or read by nbchat itself
    for one in _secrets(secret):
        content = content.replace(one.encode(), _mask(one).encode())
    try:
        request: httpx.Request | None = safe_request(response.request)
    except RuntimeError:  # a response built without a request
        request = None
    headers = [
        (name, value)
        for name, value in mask_headers(response.headers.multi_items(), _ASCII_MASK)
        if name.lower() not in _BODY_HEADERS
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions={
            k: v for k, v in response.extensions.items() if k in ("http_version", "reason_phrase")
        },
    )


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
    response: httpx.Response,
    *,
    secret: Secrets = None,
    content: bytes | None = None,
    unreadable: str | None = None,
) -> APIStatusError:
    """Build the typed error for an error response.

    ``content`` is its decoded body (by default ``response.content``, which must have been
    read); ``unreadable`` says why the body could not be read, when it could not.
    """
    raw = response.content if content is None else content
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", errors="replace")
    message, type_, code, param = error_fields(body)
    if unreadable:
        reason = response.reason_phrase or "error"
        message = f"{response.status_code} {reason} (its body could not be read: {unreadable})"
    elif not message:
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
        response=safe_response(response, content=raw, secret=secret),
    )


def status_error_from_event(
    error: Any, *, response: httpx.Response | None = None, secret: Secrets = None
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


def one_line(error: BaseException, *, limit: int = 300) -> str:
    """An error as one line, the same wherever it is shown (a failed cell, a map row's
    ``error``, a compare column, the panel): its class, for a status error the status and
    code, then ``first_line`` of its message; retries made are said at the end."""
    if isinstance(error, APIStatusError):
        code = f", {error.code}" if error.code else ""
        retried = f" (after {error.retries} retries)" if error.retries else ""
        head = f"{type(error).__name__} ({error.status_code}{code})"
        text = _shorten(f"{head}: {first_line(error.message, limit=limit)}", limit - len(retried))
        return text + retried
    text = first_line(error, limit=limit)
    name = type(error).__name__
    return name if text == name else _shorten(f"{name}: {text}", limit)


def first_line(error: BaseException | str, *, limit: int = 300) -> str:
    """What went wrong, in one line: for a cell's error, a status bar or another error's message.

    The first non-blank line of the message, its whitespace collapsed and cut at ``limit``
    characters; a pydantic ValidationError gives its first error as ``Model: location: message``
    (its own first line only counts the errors); an error without a message gives its class name.
    """
    if isinstance(error, BaseException):
        summary = _validation_summary(error)
        if summary is not None:
            return _shorten(summary, limit)
    text = str(error)
    line = next((line for line in text.splitlines() if line.strip()), "")
    if not line and isinstance(error, BaseException):
        return type(error).__name__
    return _shorten(line, limit)


def _validation_summary(error: BaseException) -> str | None:
    # pydantic is loaded by whoever raised its error: no error of its kind exists otherwise.
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is None or not isinstance(error, pydantic_core.ValidationError):
        return None
    problems = error.errors()
    if not problems:
        return None
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    text = f"{error.title}: {where + ': ' if where else ''}{first.get('msg', '')}"
    more = len(problems) - 1
    return text + (f" (and {more} more)" if more else "")


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
