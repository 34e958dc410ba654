"""Client and AsyncClient for ``POST /chat/completions`` on any OpenAI-compatible server.

They validate requests before sending, retry what is worth retrying, decode streams and raise
the typed errors of ``protocol.exceptions``. Bodies are read within size limits; the API key
and credentials of the base URL stay out of reprs, errors and logs.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import time
import types
import typing
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

import httpx
from pydantic import BaseModel, Discriminator, SecretStr, Tag, ValidationError

from .._version import __version__
from ..protocol.exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    NbchatError,
    RequestValidationError,
    ResponseDecodingError,
    ResponseTooLargeError,
    credential_field,
    mask_credential,
    redact,
    safe_cause,
    status_error_from_event,
    status_error_from_response,
)
from ..protocol.types import ChatCompletion, ChatCompletionRequest
from .body import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_STREAM_BYTES,
    read_flow,
)
from .credentials import echo_forms, header_credentials, query_credentials
from .drive import Call, Flow, adrive, drive
from .fast import default_async_transport
from .prepared import MASK, PreparedRequest
from .profiles import ServerProfile, azure_deployment, configured_profile, detect_profile
from .retry import retry_delay, should_retry
from .sse import DEFAULT_MAX_EVENT_BYTES
from .streaming import AsyncChatStream, ChatStream
from .urls import split_credentials, without_credentials

if TYPE_CHECKING:
    from .stored import AsyncStoredCompletions, StoredCompletions

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_STREAM_BYTES",
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "AsyncStreamCall",
    "Client",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)

# Per-call options that are not request fields.
_CALL_OPTIONS = ("timeout", "extra_headers")
# Sent with every request, below the request's own headers: only encodings decoded in bounded
# slices (httpx would offer brotli or zstd whenever their packages are installed).
_HTTP_HEADERS = {
    "Accept-Encoding": ACCEPT_ENCODING,
    "Connection": "keep-alive",
    "User-Agent": f"nbchat/{__version__}",
}
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _json_bytes(body: dict[str, Any]) -> bytes:
    # As httpx writes a json= body. The standard library's json: a map row's body takes it
    # about 5 µs of the ~470 µs a row costs, and replies are parsed by pydantic's own JSON
    # (Rust, ~4 µs a completion), so orjson or msgspec would save no measurable share.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def validate_request(params: dict[str, Any]) -> dict[str, Any]:
    """Validate request fields and return the JSON body; a bad field is a one-line error."""
    try:
        request = ChatCompletionRequest.model_validate(params)
    except ValidationError as exc:
        message, field = _describe(exc)
        raise RequestValidationError(message, field=field) from None
    return request.to_dict()


def _describe(exc: ValidationError) -> tuple[str, str | None]:
    # In a union every branch reports; the deepest location is the one that says what is wrong.
    errors = exc.errors(include_url=False)
    depth = max(len(e["loc"]) for e in errors)
    deepest = [e for e in errors if len(e["loc"]) == depth]
    # Among equals, a branch the input was not meant for only says "should be a valid list";
    # the branch it was meant for says what is wrong with it.
    meant = [
        e
        for e in deepest
        if not e["type"].endswith("_type")
        # A choice of words ("auto", "none"…) was not meant for an object given instead.
        and not (e["type"] == "literal_error" and not isinstance(e.get("input"), str))
    ]
    error = (meant or deepest)[0]
    if error["type"] == "field_rule":
        # A rule across fields (top_logprobs needs logprobs…): its message names the field.
        field = error["ctx"]["field"]
        return f"Invalid request: {error['msg']}", field
    field = ".".join(_field_path(error["loc"], ChatCompletionRequest)) or None
    message = error["msg"].removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        # The field at fault is the discriminator itself (role, type): name it. A union told
        # apart by a function (tool calls, which may leave their type out) is by type too.
        tag = ctx["discriminator"].strip("'")
        tag = "type" if tag.endswith("()") else tag
        field = f"{field}.{tag}" if field else tag
        if error["type"] == "union_tag_not_found":
            return f"Invalid request: {field}: Field required", field
        message = f"{ctx['tag']!r} is not one of {ctx['expected_tags']}"
        return f"Invalid request: {field}: {message}", field
    if not meant and len(deepest) > 1:
        # The input fits no branch of a union: name them all.
        message = " or ".join(
            [message] + [e["msg"].removeprefix("Input should be ") for e in deepest[1:]]
        )
    if error["type"] not in ("missing", "value_error", "model_type") and "input" in error:
        shown = repr(error["input"])
        message += f" (got {shown if len(shown) <= 60 else shown[:60] + '…'})"
    text = f"Invalid request: {field}: {message}" if field else f"Invalid request: {message}"
    return text, field


# pydantic names the branch of a union it tried in an error's location: a tag's value (``user``,
# ``input_audio``) or a label (``str``, ``list[...]``, ``tagged-union[...]``). A user thinks in
# fields, so the location is read along the request's type: what a union puts there is left out.
def _field_path(loc: tuple[int | str, ...], kind: Any) -> list[str]:
    path: list[str] = []
    for part in loc:
        kind = _unwrap(kind)
        options = _union(kind)
        if options:
            kind = _branch(options, part)
            continue
        if isinstance(part, int):
            path.append(str(part))
            args = typing.get_args(kind)
            kind = args[0] if typing.get_origin(kind) is list and args else Any
            continue
        path.append(part)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            fields = {info.alias or name: info for name, info in kind.model_fields.items()}
            info = fields.get(part)
            kind = Annotated[info.annotation, *info.metadata, info] if info else Any
        elif typing.get_origin(kind) is dict:
            kind = typing.get_args(kind)[1]
        else:
            kind = Any
    return path


def _unwrap(kind: Any) -> Any:
    """``kind`` without ``None`` as an alternative (pydantic puts no label for it); an
    ``Annotated`` that tells a union apart is kept, so that its tags can be read."""
    while True:
        origin = typing.get_origin(kind)
        if origin is Annotated:
            inner, *meta = typing.get_args(kind)
            if _union(inner) and any(_tells_apart(m) for m in meta):
                return kind
            kind = inner
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            if len(options) != 1:
                return kind
            kind = options[0]
        else:
            return kind


def _tells_apart(meta: Any) -> bool:
    return isinstance(meta, Discriminator) or getattr(meta, "discriminator", None) is not None


def _union(kind: Any) -> list[Any]:
    origin = typing.get_origin(kind)
    if origin is Annotated:
        return _union(typing.get_args(kind)[0])
    if origin in (typing.Union, types.UnionType):
        return [arg for arg in typing.get_args(kind) if arg is not type(None)]
    return []


def _branch(options: list[Any], part: int | str) -> Any:
    """The alternative of a union that ``part`` (a tag or a label) names, or Any."""
    head = _label_head(part)
    for option in options:
        names = _names(option)
        if part in names or head in names:
            return option
    return Any


def _names(option: Any) -> set[Any]:
    """What pydantic may call an alternative in a location: its tag, or its label's head."""
    names: set[Any] = set()
    origin = typing.get_origin(option)
    if origin is Annotated:
        inner, *meta = typing.get_args(option)
        names |= {m.tag for m in meta if isinstance(m, Tag)}
        if _union(inner):
            names.add("tagged-union" if any(_tells_apart(m) for m in meta) else "union")
        return names | _names(inner)
    if isinstance(option, type) and issubclass(option, BaseModel):
        names.add(option.__name__)
        for key in _DISCRIMINATORS:
            info = option.model_fields.get(key)
            values = typing.get_args(info.annotation) if info is not None else ()
            if typing.get_origin(info.annotation if info else None) is Literal:
                names |= set(values)
        return names
    if origin is Literal:
        return {"literal"}
    if origin is not None:
        return {getattr(origin, "__name__", str(origin))}
    return {getattr(option, "__name__", str(option))}


def _label_head(part: int | str) -> int | str:
    return part.split("[", 1)[0] if isinstance(part, str) else part


# The fields the protocol's tagged unions are told apart by.
_DISCRIMINATORS = ("type", "role")


def _limit(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a whole number of bytes, 1 or more, or None")
    return value


class _BaseClient:
    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        transport: Any = None,
        headers: dict[str, str] | None = None,
        server: str | ServerProfile | None = None,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        max_stream_bytes: int | None = DEFAULT_MAX_STREAM_BYTES,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        max_file_bytes: int | None = DEFAULT_MAX_FILE_BYTES,
        limits: httpx.Limits | None = None,
        event_hooks: Mapping[str, Iterable[Callable[..., Any]]] | None = None,
        retry_wait: Callable[[float], Any] | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        # Secret wrappers: vars(client) and debuggers show asterisks, not the key.
        self._api_key = SecretStr(key) if key is not None else None
        self._url_auth: SecretStr | None = None
        self._url_secrets: tuple[SecretStr, ...] = ()
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_response_bytes = _limit("max_response_bytes", max_response_bytes)
        self.max_stream_bytes = _limit("max_stream_bytes", max_stream_bytes)
        self.max_event_bytes = _limit("max_event_bytes", max_event_bytes)
        self.max_file_bytes = _limit("max_file_bytes", max_file_bytes)
        self.headers = dict(headers or {})
        #: The connection pool's limits when the client makes its own transport.
        self.limits = limits
        #: ``{"request": [...], "response": [...]}``: called with every request before it is sent
        #: and every response as soon as its headers arrive (retries included); an AsyncClient
        #: awaits a hook that returns an awaitable.
        self.event_hooks: dict[str, list[Callable[..., Any]]] = {"request": [], "response": []}
        for name, hooks in (event_hooks or {}).items():
            if name not in self.event_hooks:
                raise ValueError(f"event_hooks: {name!r} is not 'request' or 'response'")
            self.event_hooks[name] = list(hooks)
        #: How the client waits before a retry: ``retry_wait(seconds)`` (time.sleep, or
        #: asyncio.sleep for an AsyncClient); replace it to wait otherwise.
        self.retry_wait: Callable[[float], Any] = retry_wait or self._default_wait
        if isinstance(server, ServerProfile):
            self._profile = server
        elif server is not None and server != "auto":
            self._profile = configured_profile(server)
            if server == "azure":
                self._profile.default_model = azure_deployment(self.base_url)
        else:
            self._profile = detect_profile(self.base_url)
        # Seams for tests: a fake clock and a fixed jitter.
        self._random: Callable[[], float] = random.random
        self._now: Callable[[], float] = time.time
        self._transport_given = transport
        self._timeouts: dict[Any, dict[str, float | None]] = {}
        self._open(transport, limits or _DEFAULT_LIMITS)

    _default_wait: Callable[[float], Any] = staticmethod(time.sleep)
    #: How this kind of client runs a flow: ``drive`` (this thread) or ``adrive`` (the loop).
    _run: Callable[[Flow[Any]], Any] = staticmethod(drive)

    def _open(self, transport: Any, limits: httpx.Limits) -> None:
        raise NotImplementedError

    @property
    def _sleep(self) -> Callable[[float], Any]:
        # The name the wait had before it was public.
        return self.retry_wait

    @_sleep.setter
    def _sleep(self, wait: Callable[[float], Any]) -> None:
        self.retry_wait = wait

    # -- copies -------------------------------------------------------------------------------

    @classmethod
    def from_client(cls, client: _BaseClient, **overrides: Any) -> Self:
        """A client of this class with the settings of ``client`` (a Client or an
        AsyncClient): its URL and credentials, key, headers, time-out, retries, size limits,
        hooks and server profile (shared: what one learns, the other knows); ``overrides``
        are constructor arguments that differ. Its transport is carried over when it serves
        this class (``httpx.MockTransport`` serves both), otherwise the new client makes its
        own, as a new client would.
        """
        settings: dict[str, Any] = {
            "api_key": client.api_key,
            "base_url": client.base_url,
            "timeout": client.timeout,
            "max_retries": client.max_retries,
            "headers": dict(client.headers),
            "server": client.profile,
            "max_response_bytes": client.max_response_bytes,
            "max_stream_bytes": client.max_stream_bytes,
            "max_event_bytes": client.max_event_bytes,
            "max_file_bytes": client.max_file_bytes,
            "limits": client.limits,
            "event_hooks": {name: list(hooks) for name, hooks in client.event_hooks.items()},
        }
        if type(client) is cls:
            settings["retry_wait"] = client.retry_wait
        if "transport" not in overrides:
            settings["transport"] = cls._carried(client._transport_given)
        settings.update(overrides)
        copy = cls(**settings)
        if "base_url" not in overrides and "api_key" not in overrides:
            copy._url_auth, copy._url_secrets = client._url_auth, client._url_secrets
        copy._random, copy._now = client._random, client._now
        return copy

    def settings(self) -> dict[str, Any]:
        """Constructor arguments for a client of this endpoint elsewhere (a Dask worker) that
        carry no credential: no key, no ``user:password@`` of the base URL, no credential
        header — the other client reads its key from its own environment (OPENAI_API_KEY).
        Plain data: it can be pickled, logged or put in a task graph."""
        profile = self._profile
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "headers": {
                name: value for name, value in self.headers.items() if not credential_field(name)
            },
            "server": profile.kind if profile.configured else None,
            "max_response_bytes": self.max_response_bytes,
            "max_stream_bytes": self.max_stream_bytes,
            "max_event_bytes": self.max_event_bytes,
            "max_file_bytes": self.max_file_bytes,
        }

    @property
    def transport(self) -> Any:
        """The transport the client was given (None: it made its own)."""
        return self._transport_given

    def copy(self, **overrides: Any) -> Self:
        """A new client like this one, ``overrides`` aside (openai-python's ``copy``)."""
        return self.from_client(self, **overrides)

    with_options = copy

    @classmethod
    def _carried(cls, transport: Any) -> Any:
        """``transport`` when a client of this class can use it, else None (its own)."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The server's base URL, without any ``user:password@`` it was given with."""
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        # Credentials in the URL become an Authorization header (unless an API key is set):
        # a URL is printed, logged and shown in dry runs, a masked header is not.
        clean, username, password = split_credentials(url)
        self._base_url = clean.rstrip("/")
        self._url_auth = None
        self._url_secrets = ()
        if username or password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            self._url_auth = SecretStr(f"Basic {token}")
            # What a server could echo back: the token, the password (or a token-as-user).
            shown = password or username
            self._url_secrets = tuple(
                SecretStr(value) for value in (token, shown) if len(value) >= 4
            )

    @property
    def api_key(self) -> str | None:
        return self._api_key.get_secret_value() if self._api_key is not None else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential this client holds, in every form a server could echo it back: the
        API key; a base URL's password (or the token given as its user) and the Basic token
        made of them; credential headers given in ``headers=`` (Authorization, api-key,
        x-api-key…: the value, the part after ``Bearer``, the password inside ``Basic``);
        credential query values of the base URL; each also percent-encoded and JSON-escaped.

        Longest first; values shorter than 4 characters are left out. What error messages,
        the store and cassettes mask: read-only, derived anew whenever what the client holds
        changes (worked out once per key, URL and headers: every request reads it).
        """
        held = (self.api_key, self._url_secrets, tuple(self.headers.items()), self.base_url)
        known = self.__dict__.get("_secrets_of")
        if known is not None and known[0] == held:
            return known[1]
        values = [self.api_key or ""]
        values += [secret.get_secret_value() for secret in self._url_secrets]
        values += header_credentials(self.headers)
        values += query_credentials(self.base_url)
        forms = echo_forms(values)
        self.__dict__["_secrets_of"] = (held, forms)
        return forms

    @property
    def _secrets(self) -> tuple[str, ...]:
        return self.secrets

    @property
    def profile(self) -> ServerProfile:
        """What nbchat knows about this server (its kind, model, features)."""
        return self._profile

    @property
    def default_model(self) -> str | None:
        """The model to use when a request names none (for servers that serve one)."""
        return self._profile.default_model

    @default_model.setter
    def default_model(self, model: str | None) -> None:
        self._profile.default_model = model

    @property
    def endpoint(self) -> str:
        """Who answers this client's requests, as the cache key tells servers apart: the base
        URL (no credentials, no query), a configured kind, the organisation and project; nbchat's
        local model server by its kind (its port changes with every start). Never the key."""
        profile = self._profile
        if profile.local:
            return f"local:{profile.kind}"
        url = self._base_url.split("?", 1)[0]
        parts = [url]
        if profile.configured:
            parts.append(f"server={profile.kind}")
        parts.extend(f"{name}={value}" for name, value in sorted(profile.query.items()))
        headers = {name.lower(): value for name, value in self.headers.items()}
        for name in ("openai-organization", "openai-project"):
            if headers.get(name):
                parts.append(f"{name}={headers[name]}")
        return " ".join(parts)

    def build_request(self, **request: Any) -> PreparedRequest:
        """Validate a request and return it as it would be sent, without sending it.

        ``stream=True`` asks for a stream; ``timeout`` and ``extra_headers`` are per-call options.
        """
        options = {key: request.pop(key) for key in _CALL_OPTIONS if key in request}
        body = validate_request(request)
        headers = {"Content-Type": "application/json", **self._headers(options, masked=True)}
        return PreparedRequest(
            method="POST",
            # Shown, logged and stored: a credential in the base URL's query is masked.
            url=without_credentials(self._url("/chat/completions")),
            headers=headers,
            body=body,
            options=options,
            endpoint=self.endpoint,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        url = without_credentials(self.base_url)
        return f"{type(self).__name__}(base_url={url!r}, api_key={key})"

    def _headers(self, options: dict[str, Any], *, masked: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.headers}
        auth = self._profile.auth_headers(self.api_key)
        if not auth and self._url_auth is not None:
            auth = {"Authorization": self._url_auth.get_secret_value()}
        headers.update(auth)
        headers.update(options.get("extra_headers") or {})
        if masked:
            # Every credential, wherever it came from (the key, the URL, headers=…).
            headers = {
                name: mask_credential(value, MASK) if credential_field(name) else value
                for name, value in headers.items()
            }
        return headers

    def _url(self, path: str) -> str:
        return self._parsed_url(path)[1]

    def _parsed_url(self, path: str) -> tuple[httpx.URL, str]:
        # Parsing a URL costs more than validating a request (nbchat.map builds thousands),
        # and httpx parses a URL given as text again for every request; a client has a
        # handful of paths, so each is parsed once per base URL and sent as httpx.URL.
        cache: dict[tuple[Any, ...], tuple[httpx.URL, str]]
        cache = self.__dict__.setdefault("_url_cache", {})
        key = (self.base_url, path, tuple(self._profile.query.items()))
        known = cache.get(key)
        if known is None:
            url = httpx.URL(self.base_url + path)
            if self._profile.query:
                url = url.copy_merge_params(self._profile.query)
            known = cache[key] = (url, str(url))
        return known

    def _build(
        self, method: str, path: str, params: dict[str, Any] | None, options: dict[str, Any]
    ) -> httpx.Request:
        if not self.api_key and self._url_auth is None and self.base_url == DEFAULT_BASE_URL:
            # Before any network attempt: OpenAI without a key can only fail (a dry run, a
            # cassette replay or the cache still work, since they send nothing).
            raise NbchatError(
                "No API key for OpenAI: set OPENAI_API_KEY (or pass api_key=...), pass the "
                "base_url of a server that needs none, or use nbchat.Chat() / %%chat without "
                "a client to talk to the local model."
            )
        # None means no time limit, as in httpx; leaving timeout out means the client's.
        extensions = {"timeout": self._timeout_of(options.get("timeout", self.timeout))}
        url = self._parsed_url(path)[0]
        if options.get("params"):
            # Query parameters (the stored completions' filters and pages).
            url = url.copy_merge_params(options["params"])
        files, data = options.get("files"), options.get("data")
        if files is not None or data is not None:
            # A multipart upload (the Batch API's /files) instead of a JSON body.
            headers = {**_HTTP_HEADERS, **self._headers(options)}
            return httpx.Request(
                method, url, headers=headers, files=files, data=data, extensions=extensions
            )
        content = None if params is None else _json_bytes(params)
        # Built here rather than by httpx's client (a third of the CPU a request cost it).
        return httpx.Request(
            method,
            url,
            headers=self._wire_headers(options, json=params is not None),
            content=content,
            extensions=extensions,
        )

    def _wire_headers(self, options: dict[str, Any], *, json: bool) -> httpx.Headers:
        """The headers of a request, as httpx.Headers: made once for requests without
        ``extra_headers`` (httpx checks and encodes each header of each request it is given)."""
        if options.get("extra_headers"):
            return httpx.Headers(self._base_headers(options, json))
        # What they are made of may change (headers is a public dict; the key a property).
        key = (json, tuple(self.headers.items()), self.api_key, self._url_auth, self._profile.kind)
        made: dict[Any, httpx.Headers] = self.__dict__.setdefault("_headers_made", {})
        headers = made.get(key)
        if headers is None:
            if len(made) > 8:
                made.clear()
            headers = made[key] = httpx.Headers(self._base_headers(options, json))
        return headers

    def _base_headers(self, options: dict[str, Any], json: bool) -> dict[str, str]:
        headers = {**_HTTP_HEADERS, **self._headers(options)}
        if json:
            headers["Content-Type"] = "application/json"
        return headers

    def _timeout_of(self, timeout: Any) -> dict[str, float | None]:
        key = timeout if not isinstance(timeout, httpx.Timeout) else id(timeout)
        known = self._timeouts.get(key)
        if known is None:
            known = self._timeouts[key] = httpx.Timeout(timeout).as_dict()
        return known

    def _send_flow(
        self, request: httpx.Request, *, stream: bool
    ) -> Flow[tuple[httpx.Response, bytes]]:
        """The response and its decoded body (empty for a stream, whose body is the caller's
        to read); failures are retried while nothing has reached the caller. Written once: a
        Client runs it in its thread, an AsyncClient on its loop."""
        hooks = self.event_hooks
        attempt = 0
        while True:
            for hook in hooks["request"]:
                yield Call(hook, request)
            response: httpx.Response | None = None
            broken: httpx.TransportError | None = None
            content, unreadable = b"", None
            try:
                response = yield Call(self._wire, request)
                for hook in hooks["response"]:
                    yield Call(hook, response)
                if not (stream and response.is_success):
                    try:
                        content = yield from read_flow(response, self.max_response_bytes)
                    except (ResponseDecodingError, ResponseTooLargeError) as exc:
                        if response.is_success:
                            raise
                        unreadable = exc.message  # an error status says more than its body
            except httpx.TransportError as exc:
                response, broken = None, exc
            # Out of the except block, so that httpx's error (which holds the request as sent,
            # key and all) does not ride along as the context.
            if broken is not None:
                error: APIError = self._transport_error(broken, request)
            else:
                assert response is not None  # sent, or broken
                if response.is_success:
                    return response, content
                quick = self._quick_retry(response, content, attempt)
                if quick is not None:
                    # A status that is retried for sure: no error object is made for it (its
                    # masked copies cost more than the request, at a 429 in twenty).
                    yield Call(self.retry_wait, quick)
                    attempt += 1
                    continue
                error = self._status_error(response, content, unreadable)
            try:
                delay = self._decide(error, response, attempt)
            except APIError:
                pass
            else:
                yield Call(self.retry_wait, delay)
                attempt += 1
                continue
            raise error from (self._safe_cause(broken) if broken is not None else None)

    def _wire(self, request: httpx.Request) -> Any:
        raise NotImplementedError

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        options: dict[str, Any],
        *,
        stream: bool = False,
    ) -> Any:
        """``_send_flow`` run the client's way: in this thread, or awaitable on the loop."""
        return self._run(self._send_flow(self._build(method, path, body, options), stream=stream))

    def send_request(
        self,
        method: str,
        path: str,
        json: dict[str, Any] | None = None,
        *,
        stream: bool = False,
        **options: Any,
    ) -> Any:
        """Send any request to ``base_url + path`` the way the client sends completions (its
        headers, retries, limits, typed errors): the response and its decoded body, or, with
        ``stream=True``, the open response, whose body is the caller's to read and close
        (awaitable on an AsyncClient). ``options``: ``timeout``, ``extra_headers``, ``files``
        and ``data`` (a multipart form).
        """
        return self._send(method, path, json, options, stream=stream)

    def connection_error(self, exc: httpx.TransportError, request: httpx.Request) -> APIError:
        """nbchat's error for a connection that failed (``exc``, while reading a body this
        client sent for): credentials masked, chained to a safe copy of ``exc``. Raise it
        outside the ``except`` block that caught ``exc``, which holds the request as sent."""
        error = self._transport_error(exc, request)
        error.__cause__ = self._safe_cause(exc)
        error.__suppress_context__ = True
        return error

    def _prepare(self, request: dict[str, Any], *, stream: bool) -> PreparedRequest:
        if not stream and request.get("stream"):
            raise RequestValidationError(
                "Invalid request: stream: use client.stream(...) for a streamed completion",
                field="stream",
            )
        if stream:
            request["stream"] = True
        return self.build_request(**request)

    def _stream_limits(self) -> dict[str, int | None]:
        return {
            "max_event_bytes": self.max_event_bytes,
            "max_stream_bytes": self.max_stream_bytes,
            "max_response_bytes": self.max_response_bytes,
        }

    def _transport_error(self, exc: httpx.TransportError, request: httpx.Request) -> APIError:
        where = redact(str(request.url.copy_with(query=None)), self._secrets)
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"The request to {where} timed out.", request=request)
        why = redact(str(exc), self._secrets) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return APIConnectionError(f"Could not connect to {where}: {why}", request=request)
        return APIConnectionError(f"The connection to {where} failed: {why}", request=request)

    def _safe_cause(self, cause: BaseException) -> BaseException | None:
        # httpx's error keeps the request as it was sent, key and all: chain a safe copy.
        return safe_cause(cause, self._secrets)

    def _quick_retry(self, response: httpx.Response, body: bytes, attempt: int) -> float | None:
        """Seconds to wait before the retry of a status that ``should_retry`` retries for
        sure (408, 409, 429, 5xx, no ``x-should-retry``, not an exhausted quota), or None when
        only the whole error can tell (``_decide``)."""
        status = response.status_code
        if attempt >= self.max_retries or not (status in (408, 409, 429) or status >= 500):
            return None
        if "x-should-retry" in response.headers or b"insufficient_quota" in body:
            return None
        return retry_delay(attempt, response.headers, random=self._random, now=self._now)

    def _decide(self, error: APIError, response: httpx.Response | None, attempt: int) -> float:
        """Seconds to wait before trying again, or raise ``error`` when we should not."""
        if isinstance(error, APIStatusError):
            error.retries = attempt
        if attempt >= self.max_retries or not should_retry(error, response):
            raise error
        headers = response.headers if response is not None else None
        return retry_delay(attempt, headers, random=self._random, now=self._now)

    def _status_error(
        self, response: httpx.Response, body: bytes, unreadable: str | None
    ) -> APIStatusError:
        return status_error_from_response(
            response, secret=self._secrets, content=body, unreadable=unreadable
        )

    def _completion(self, response: httpx.Response, body: bytes) -> ChatCompletion:
        completion, problem = _parse(ChatCompletion, body)
        if completion is None:
            # pydantic's message quotes the body, which may echo the key: ours is redacted.
            raise self._unreadable(response, body, "a chat completion", problem)
        extra = completion.__pydantic_extra__
        self._profile.observe(extra)
        if extra and "error" in extra and not completion.choices:
            raise status_error_from_event(
                {"error": extra["error"]}, response=response, secret=self._secrets
            )
        if not completion.choices:
            raise self._unreadable(response, body, "a chat completion", _NO_CHOICES)
        return completion

    def _model_ids(self, response: httpx.Response, body: bytes) -> list[str]:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        data = parsed.get("data") if isinstance(parsed, dict) else parsed
        if not isinstance(data, list):
            raise self._unreadable(response, body, "a list of models", None)
        # The list says which server this is (owned_by) and, for some, the context window.
        self._profile.observe_models(parsed)
        return [entry["id"] for entry in data if isinstance(entry, dict) and "id" in entry]

    def unreadable(
        self, response: httpx.Response, body: bytes, wanted: str, problem: str | None
    ) -> APIResponseValidationError:
        """The error for a 2xx ``response`` whose ``body`` is not ``wanted`` (``problem``: what
        is wrong), with the client's credentials masked: for callers of ``send_request``."""
        return self._unreadable(response, body, wanted, problem)

    def _unreadable(
        self, response: httpx.Response, body: bytes, wanted: str, problem: str | None
    ) -> APIResponseValidationError:
        text = redact(body.decode("utf-8", errors="replace"), self._secrets)
        why = f" ({problem})" if problem else ""
        snippet = " ".join(text[:200].split()) + ("…" if len(text) > 200 else "")
        # What is wrong names the server's keys: redacted with the rest.
        message = redact(f"{why}: {snippet or '(empty body)'}", self._secrets)
        return APIResponseValidationError(
            f"The server's response is not {wanted}{message}",
            request=response.request,
            body=text,
        )


_NO_CHOICES = "choices: it has none"


def _parse(model: type[ChatCompletion], body: bytes) -> tuple[ChatCompletion | None, str | None]:
    """The body as ``model``, or None and what is wrong (its first error, without the input).

    A body that is not valid UTF-8 is read with invalid bytes replaced, as a stream is.
    """
    try:
        return model.model_validate_json(body), None
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
    if error["type"] == "json_invalid":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            try:
                return model.model_validate_json(body.decode("utf-8", errors="replace")), None
            except ValidationError as again:
                error = again.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return None, f"{where}: {error['msg']}"


class Client(_BaseClient):
    """A client for one OpenAI-compatible server.

    ``api_key`` and ``base_url`` default to OPENAI_API_KEY and OPENAI_BASE_URL. Credentials in
    the base URL (``http://user:pass@host/v1``) are taken out of it and sent as an
    ``Authorization: Basic`` header instead, so that no URL nbchat shows or logs carries them;
    when an API key is set too, the key (``Authorization: Bearer``) wins and they are not sent.
    The key is kept in a ``SecretStr``; ``api_key`` reads it.

    ``transport`` takes any httpx transport (``httpx.MockTransport`` in tests); without one the
    client makes its own, its pool within ``limits`` (``httpx.Limits``: 100 connections, 20 kept
    idle by default). ``event_hooks`` and ``retry_wait`` are public hooks (see the attributes);
    ``copy(**overrides)`` (or ``with_options``) and ``AsyncClient.from_client(client)`` make
    clients like this one. ``server``
    names the kind of server (``"vllm"``, ``"azure"``…, see
    ``nbchat.transport.profiles.KINDS``) or gives a ServerProfile; by default it is detected
    from the URL. ``build_request()`` returns the exact request without sending it;
    ``send_completion()``/``send_stream()`` send one built that way.

    Limits, in bytes after decoding (None: none), past which reading stops with
    ResponseTooLargeError: ``max_response_bytes`` (32 MiB) for a body read whole — a completion,
    an error, the model list; ``max_stream_bytes`` (32 MiB) for a whole stream;
    ``max_event_bytes`` (8 MiB) for one line or event of a stream, or of a Batch API file;
    ``max_file_bytes`` (1 GiB) for a whole file read from ``/files`` (a batch's output), which
    is read a line at a time. nbchat asks for gzip or deflate only and decodes them itself,
    64 KiB at a time, so a small body that inflates to gigabytes costs no more memory than the
    limit.

    What an error exposes is safe to show: ``exc.request`` and ``exc.response`` are copies with
    credential headers masked, messages and bodies have the key and the URL's password masked,
    and a chained httpx error is a copy of the same kind. The ChatStream a call returns is the
    caller's own: its ``response.request`` is the request as sent, credentials included.
    """

    def _open(self, transport: Any, limits: httpx.Limits) -> None:
        # httpx's client: proxies from the environment are its mounts.
        self._http = httpx.Client(transport=transport, limits=limits)

    @classmethod
    def _carried(cls, transport: Any) -> Any:
        return transport if hasattr(transport, "handle_request") else None

    def _wire(self, request: httpx.Request) -> httpx.Response:
        return self._http.send(request, stream=True)

    def create(self, **request: Any) -> ChatCompletion:
        """Send a chat completion request and return the ChatCompletion."""
        return self.send_completion(self._prepare(request, stream=False))

    def stream(self, **request: Any) -> ChatStream:
        """Send a streamed request; iterate the returned ChatStream for chunks."""
        return self.send_stream(self._prepare(request, stream=True))

    def send_completion(self, prepared: PreparedRequest) -> ChatCompletion:
        """Send a request from ``build_request()`` (not streamed) exactly as it was built."""
        response, body = self._send("POST", "/chat/completions", prepared.body, prepared.options)
        return self._completion(response, body)

    def send_stream(self, prepared: PreparedRequest) -> ChatStream:
        """Send a streamed request from ``build_request(stream=True)`` exactly as it was built."""
        response, _ = self._send(
            "POST", "/chat/completions", prepared.body, prepared.options, stream=True
        )
        return ChatStream(response, secret=self._secrets, **self._stream_limits())

    def models(self) -> list[str]:
        """The model ids the server lists at ``GET /models``."""
        response, body = self._send("GET", "/models", None, {})
        return self._model_ids(response, body)

    @property
    def stored_completions(self) -> StoredCompletions:
        """The completions the server stored (requests sent with ``store=True``): ``list``,
        ``retrieve``, ``update``, ``delete``, ``messages``."""
        from .stored import StoredCompletions

        return StoredCompletions(self)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asyncio twin of Client: the same methods, as coroutines.

    Without a ``transport`` it sends through aiohttp when it is installed (the ``fast`` extra:
    a pool that costs a fraction of httpx's CPU per request at many requests in flight), else
    through httpx; both behave alike (retries, time-outs, size limits, errors). Close it
    (``async with``, or ``await client.aclose()``) when its loop ends with the work, as in a
    script run by ``asyncio.run``; one dropped on a loop that runs on is closed there.
    """

    _default_wait = staticmethod(asyncio.sleep)
    _run = staticmethod(adrive)

    def _open(self, transport: Any, limits: httpx.Limits) -> None:
        self._transport: httpx.AsyncBaseTransport = transport or default_async_transport(limits)

    @classmethod
    def _carried(cls, transport: Any) -> Any:
        return transport if hasattr(transport, "handle_async_request") else None

    async def _wire(self, request: httpx.Request) -> httpx.Response:
        # The transport itself, not httpx's client around it: redirects are not followed
        # and cookies not kept either way, and its bookkeeping cost a fifth of a request's CPU.
        response = await self._transport.handle_async_request(request)
        response.request = request
        return response

    async def create(self, **request: Any) -> ChatCompletion:
        return await self.send_completion(self._prepare(request, stream=False))

    def stream(self, **request: Any) -> AsyncStreamCall:
        """Send a streamed request: ``async with client.stream(...) as stream`` (or await it).

        The request is validated at once; it is sent when awaited or entered.
        """
        return self.send_stream(self._prepare(request, stream=True))

    async def send_completion(self, prepared: PreparedRequest) -> ChatCompletion:
        response, body = await self._send(
            "POST", "/chat/completions", prepared.body, prepared.options
        )
        return self._completion(response, body)

    def send_stream(self, prepared: PreparedRequest) -> AsyncStreamCall:
        return AsyncStreamCall(self._open_stream(prepared.body, prepared.options))

    async def _open_stream(self, body: dict[str, Any], options: dict[str, Any]) -> AsyncChatStream:
        response, _ = await self._send("POST", "/chat/completions", body, options, stream=True)
        return AsyncChatStream(response, secret=self._secrets, **self._stream_limits())

    async def models(self) -> list[str]:
        response, body = await self._send("GET", "/models", None, {})
        return self._model_ids(response, body)

    @property
    def stored_completions(self) -> AsyncStoredCompletions:
        """The completions the server stored, with coroutine methods."""
        from .stored import AsyncStoredCompletions

        return AsyncStoredCompletions(self)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncStreamCall:
    """What ``AsyncClient.stream`` returns: an ``async with`` block, or an awaitable stream."""

    __slots__ = ("_opening", "_stream")

    def __init__(self, opening: Coroutine[Any, Any, AsyncChatStream]) -> None:
        self._opening = opening
        self._stream: AsyncChatStream | None = None

    def __await__(self) -> Generator[Any, None, AsyncChatStream]:
        return self._opening.__await__()

    async def __aenter__(self) -> AsyncChatStream:
        self._stream = await self._opening
        return self._stream

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            await self._stream.close()
