"""Client and AsyncClient for ``POST /chat/completions`` on any OpenAI-compatible server.

They validate requests before sending, retry what is worth retrying, decode streams and raise
the typed errors of ``_exceptions``. The API key stays out of reprs, errors and logs.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import httpx
from pydantic import ValidationError

from ..protocol.exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    RequestValidationError,
    redact,
    status_error_from_event,
    status_error_from_response,
)
from ..protocol.types import ChatCompletion, ChatCompletionRequest
from .prepared import MASK, PreparedRequest
from .profiles import ServerProfile, detect_profile, profile_for
from .retry import retry_delay, should_retry
from .streaming import AsyncChatStream, ChatStream

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "AsyncClient", "AsyncStreamCall", "Client"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)

# Per-call options that are not request fields.
_CALL_OPTIONS = ("timeout", "extra_headers")


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
    meant = [e for e in deepest if not e["type"].endswith("_type")]
    error = (meant or deepest)[0]
    if error["type"] == "field_rule":
        # A rule across fields (top_logprobs needs logprobs…): its message names the field.
        field = error["ctx"]["field"]
        return f"Invalid request: {error['msg']}", field
    field = ".".join(_field_path(error["loc"])) or None
    message = error["msg"].removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    if error["type"] == "union_tag_invalid":
        tag = ctx["discriminator"].strip("'")
        message = f"{tag} {ctx['tag']!r} is not one of {ctx['expected_tags']}"
        return f"Invalid request: {field}: {message}", field
    if error["type"] == "union_tag_not_found":
        return f"Invalid request: {field}: needs a {ctx['discriminator']} field", field
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


# pydantic puts the names of union branches in an error's location; a user thinks in fields.
_TAGS = frozenset(
    {
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "text",
        "image_url",
        "json_object",
        "json_schema",
        "str",
        "int",
        "float",
        "bool",
    }
)
_UNION_FIELDS = frozenset({"response_format", "tool_choice", "content", "stop"})


def _field_path(loc: tuple[int | str, ...]) -> list[str]:
    path: list[str] = []
    previous: int | str | None = None
    for part in loc:
        branch = isinstance(part, str) and (
            "[" in part
            or part[:1].isupper()
            or (part in _TAGS and (isinstance(previous, int) or previous in _UNION_FIELDS))
        )
        if not branch:
            path.append(str(part))
        previous = part
    return path


class _BaseClient:
    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        *,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        headers: dict[str, str] | None,
        server: str | ServerProfile | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.headers = dict(headers or {})
        if isinstance(server, ServerProfile):
            self._profile = server
        elif server is not None:
            self._profile = profile_for(server)
        else:
            self._profile = detect_profile(self.base_url)
        # Seams for tests: a fake clock and a fixed jitter.
        self._random: Callable[[], float] = random.random
        self._now: Callable[[], float] = time.time

    @property
    def api_key(self) -> str | None:
        return self._api_key

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

    def build_request(self, **request: Any) -> PreparedRequest:
        """Validate a request and return it as it would be sent, without sending it.

        ``stream=True`` asks for a stream; ``timeout`` and ``extra_headers`` are per-call options.
        """
        options = {key: request.pop(key) for key in _CALL_OPTIONS if key in request}
        body = validate_request(request)
        headers = {"Content-Type": "application/json", **self._headers(options, masked=True)}
        return PreparedRequest(
            method="POST",
            url=self._url("/chat/completions"),
            headers=headers,
            body=body,
            options=options,
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def _headers(self, options: dict[str, Any], *, masked: bool = False) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.headers}
        auth = self._profile.auth_headers(self._api_key)
        if masked:
            auth = dict.fromkeys(auth, f"Bearer {MASK}" if self._profile.auth == "bearer" else MASK)
        headers.update(auth)
        headers.update(options.get("extra_headers") or {})
        return headers

    def _url(self, path: str) -> str:
        # Parsing a URL costs more than validating a request (nbchat.map builds thousands);
        # a client has a handful of paths, so each is parsed once per base URL.
        cache: dict[tuple[Any, ...], str] = self.__dict__.setdefault("_url_cache", {})
        key = (self.base_url, path, tuple(self._profile.query.items()))
        text = cache.get(key)
        if text is None:
            url = httpx.URL(self.base_url + path)
            if self._profile.query:
                url = url.copy_merge_params(self._profile.query)
            text = cache[key] = str(url)
        return text

    def _build(
        self, method: str, path: str, params: dict[str, Any] | None, options: dict[str, Any]
    ) -> httpx.Request:
        # None means no time limit, as in httpx; leaving timeout out means the client's.
        timeout = options.get("timeout", self.timeout)
        return self._http.build_request(  # type: ignore[attr-defined]
            method,
            self._url(path),
            json=params,
            # A multipart upload (the Batch API's /files) instead of a JSON body.
            files=options.get("files"),
            data=options.get("data"),
            headers=self._headers(options),
            timeout=timeout,
        )

    def _prepare(self, request: dict[str, Any], *, stream: bool) -> PreparedRequest:
        if not stream and request.get("stream"):
            raise RequestValidationError(
                "Invalid request: stream: use client.stream(...) for a streamed completion",
                field="stream",
            )
        if stream:
            request["stream"] = True
        return self.build_request(**request)

    def _transport_error(self, exc: httpx.TransportError, request: httpx.Request) -> APIError:
        where = redact(str(request.url.copy_with(query=None)), self._api_key)
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"The request to {where} timed out.", request=request)
        why = redact(str(exc), self._api_key) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            return APIConnectionError(f"Could not connect to {where}: {why}", request=request)
        return APIConnectionError(f"The connection to {where} failed: {why}", request=request)

    def _safe_cause(self, cause: BaseException) -> BaseException | None:
        # A traceback prints the cause's message; drop the cause if it carries the key.
        if self._api_key and self._api_key in str(cause):
            return None
        return cause

    def _decide(self, error: APIError, response: httpx.Response | None, attempt: int) -> float:
        """Seconds to wait before trying again, or raise ``error`` when we should not."""
        if isinstance(error, APIStatusError):
            error.retries = attempt
        if attempt >= self.max_retries or not should_retry(error, response):
            raise error
        headers = response.headers if response is not None else None
        return retry_delay(attempt, headers, random=self._random, now=self._now)

    def _completion(self, response: httpx.Response) -> ChatCompletion:
        try:
            completion = ChatCompletion.model_validate_json(response.content)
        except ValidationError as exc:
            # Not chained: pydantic's message quotes the body, which may echo the key.
            raise self._unreadable(response, "a chat completion", exc) from None
        extra = completion.__pydantic_extra__
        if extra and "error" in extra and not completion.choices:
            raise status_error_from_event(
                {"error": extra["error"]}, response=response, secret=self._api_key
            )
        return completion

    def _model_ids(self, response: httpx.Response) -> list[str]:
        try:
            body = response.json()
        except ValueError:
            raise self._unreadable(response, "a list of models", None) from None
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise self._unreadable(response, "a list of models", None)
        return [entry["id"] for entry in data if isinstance(entry, dict) and "id" in entry]

    def _unreadable(
        self, response: httpx.Response, wanted: str, exc: ValidationError | None
    ) -> APIResponseValidationError:
        text = redact(response.text, self._api_key)
        why = ""
        if exc is not None:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            why = f" ({where}: {first['msg']})"
        snippet = " ".join(text[:200].split()) + ("…" if len(text) > 200 else "")
        return APIResponseValidationError(
            f"The server's response is not {wanted}{why}: {snippet or '(empty body)'}",
            request=response.request,
            body=text,
        )


class Client(_BaseClient):
    """A client for one OpenAI-compatible server.

    ``api_key`` and ``base_url`` default to OPENAI_API_KEY and OPENAI_BASE_URL. ``transport`` takes
    any httpx transport (``httpx.MockTransport`` in tests). ``server`` names the kind of server
    (``"vllm"``, ``"azure"``…, see ``nbchat.transport.profiles.KINDS``) or gives a ServerProfile;
    by default it is detected from the URL. ``build_request()`` returns the exact request
    without sending it; ``send_completion()``/``send_stream()`` send one built that way.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
        server: str | ServerProfile | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            server=server,
        )
        self._http = httpx.Client(transport=transport, timeout=timeout)
        self._sleep: Callable[[float], None] = time.sleep

    def create(self, **request: Any) -> ChatCompletion:
        """Send a chat completion request and return the ChatCompletion."""
        return self.send_completion(self._prepare(request, stream=False))

    def stream(self, **request: Any) -> ChatStream:
        """Send a streamed request; iterate the returned ChatStream for chunks."""
        return self.send_stream(self._prepare(request, stream=True))

    def send_completion(self, prepared: PreparedRequest) -> ChatCompletion:
        """Send a request from ``build_request()`` (not streamed) exactly as it was built."""
        response = self._send("POST", "/chat/completions", prepared.body, prepared.options)
        return self._completion(response)

    def send_stream(self, prepared: PreparedRequest) -> ChatStream:
        """Send a streamed request from ``build_request(stream=True)`` exactly as it was built."""
        response = self._send(
            "POST", "/chat/completions", prepared.body, prepared.options, stream=True
        )
        return ChatStream(response, secret=self._api_key)

    def models(self) -> list[str]:
        """The model ids the server lists at ``GET /models``."""
        response = self._send("GET", "/models", None, {})
        return self._model_ids(response)

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        options: dict[str, Any],
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """The response, read unless ``stream``; failures are retried while nothing has reached
        the caller (a streamed body is the caller's to read, so it is never retried)."""
        request = self._build(method, path, body, options)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.send(request, stream=True)
                if not (stream and response.is_success):
                    try:
                        response.read()
                    finally:
                        response.close()
            except httpx.TransportError as exc:
                response = None
                error: APIError = self._transport_error(exc, request)
                cause: BaseException = exc
            else:
                if response.is_success:
                    return response
                error = status_error_from_response(response, secret=self._api_key)
                cause = error
            try:
                delay = self._decide(error, response, attempt)
            except APIError:
                if cause is not error:
                    raise error from self._safe_cause(cause)
                raise
            self._sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_BaseClient):
    """The asyncio twin of Client: the same methods, as coroutines."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
        server: str | ServerProfile | None = None,
    ) -> None:
        super().__init__(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            headers=headers,
            server=server,
        )
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)
        self._sleep: Callable[[float], Any] = asyncio.sleep

    async def create(self, **request: Any) -> ChatCompletion:
        return await self.send_completion(self._prepare(request, stream=False))

    def stream(self, **request: Any) -> AsyncStreamCall:
        """Send a streamed request: ``async with client.stream(...) as stream`` (or await it).

        The request is validated at once; it is sent when awaited or entered.
        """
        return self.send_stream(self._prepare(request, stream=True))

    async def send_completion(self, prepared: PreparedRequest) -> ChatCompletion:
        response = await self._send("POST", "/chat/completions", prepared.body, prepared.options)
        return self._completion(response)

    def send_stream(self, prepared: PreparedRequest) -> AsyncStreamCall:
        return AsyncStreamCall(self._open_stream(prepared.body, prepared.options))

    async def _open_stream(self, body: dict[str, Any], options: dict[str, Any]) -> AsyncChatStream:
        response = await self._send("POST", "/chat/completions", body, options, stream=True)
        return AsyncChatStream(response, secret=self._api_key)

    async def models(self) -> list[str]:
        response = await self._send("GET", "/models", None, {})
        return self._model_ids(response)

    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        options: dict[str, Any],
        *,
        stream: bool = False,
    ) -> httpx.Response:
        request = self._build(method, path, body, options)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.send(request, stream=True)
                if not (stream and response.is_success):
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
            except httpx.TransportError as exc:
                response = None
                error: APIError = self._transport_error(exc, request)
                cause: BaseException = exc
            else:
                if response.is_success:
                    return response
                error = status_error_from_response(response, secret=self._api_key)
                cause = error
            try:
                delay = self._decide(error, response, attempt)
            except APIError:
                if cause is not error:
                    raise error from self._safe_cause(cause)
                raise
            await self._sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

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
