"""Client and AsyncClient for ``POST /chat/completions`` on any OpenAI-compatible server.

They validate requests before sending, retry what is worth retrying, decode streams and raise
the typed errors of ``_exceptions``. The API key stays out of reprs, errors and logs.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import ValidationError

from ._exceptions import (
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
from ._retry import retry_delay, should_retry
from ._streaming import AsyncChatStream, ChatStream
from ._types import ChatCompletion, ChatCompletionRequest

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "AsyncClient", "Client"]

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
    error = max(errors, key=lambda e: len(e["loc"]))
    field = ".".join(_field_path(error["loc"])) or None
    message = error["msg"].removeprefix("Value error, ")
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
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        base = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.headers = dict(headers or {})
        # Seams for tests: a fake clock and a fixed jitter.
        self._random: Callable[[], float] = random.random
        self._now: Callable[[], float] = time.time

    @property
    def api_key(self) -> str | None:
        return self._api_key

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    def _build(
        self, method: str, path: str, params: dict[str, Any] | None, options: dict[str, Any]
    ) -> httpx.Request:
        headers = {"Accept": "application/json", **self.headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        headers.update(options.get("extra_headers") or {})
        timeout = options.get("timeout", self.timeout)
        return self._http.build_request(  # type: ignore[attr-defined]
            method,
            self.base_url + path,
            json=params,
            headers=headers,
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        )

    @staticmethod
    def _split(params: dict[str, Any], *, stream: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        options = {key: params.pop(key) for key in _CALL_OPTIONS if key in params}
        if not stream and params.get("stream"):
            raise RequestValidationError(
                "Invalid request: stream: use client.stream(...) for a streamed completion",
                field="stream",
            )
        if stream:
            params["stream"] = True
        return validate_request(params), options

    def _transport_error(self, exc: httpx.TransportError, request: httpx.Request) -> APIError:
        where = redact(str(request.url.copy_with(query=None)), self._api_key)
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(f"The request to {where} timed out.", request=request)
        why = redact(str(exc), self._api_key) or type(exc).__name__
        return APIConnectionError(f"Could not connect to {where}: {why}", request=request)

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
            text = response.text
            raise APIResponseValidationError(
                "The server's response is not a chat completion: "
                + redact(text[:200] + ("…" if len(text) > 200 else ""), self._api_key),
                request=response.request,
                body=redact(text, self._api_key),
            ) from exc
        extra = completion.__pydantic_extra__
        if extra and "error" in extra and not completion.choices:
            raise status_error_from_event(
                {"error": extra["error"]}, response=response, secret=self._api_key
            )
        return completion


class Client(_BaseClient):
    """A client for one OpenAI-compatible server.

    ``api_key`` and ``base_url`` default to OPENAI_API_KEY and OPENAI_BASE_URL. ``transport`` takes
    any httpx transport (``httpx.MockTransport`` in tests).
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
    ) -> None:
        super().__init__(
            api_key, base_url, timeout=timeout, max_retries=max_retries, headers=headers
        )
        self._http = httpx.Client(transport=transport, timeout=timeout)
        self._sleep: Callable[[float], None] = time.sleep

    def create(self, **request: Any) -> ChatCompletion:
        """Send a chat completion request and return the ChatCompletion."""
        body, options = self._split(request, stream=False)
        response = self._send("POST", "/chat/completions", body, options)
        try:
            response.read()
        except httpx.TransportError as exc:
            raise self._transport_error(exc, response.request) from exc
        finally:
            response.close()
        return self._completion(response)

    def stream(self, **request: Any) -> ChatStream:
        """Send a streamed request; iterate the returned ChatStream for chunks."""
        body, options = self._split(request, stream=True)
        response = self._send("POST", "/chat/completions", body, options)
        return ChatStream(response, secret=self._api_key)

    def models(self) -> list[str]:
        """The model ids the server lists at ``GET /models``."""
        response = self._send("GET", "/models", None, {})
        try:
            response.read()
        finally:
            response.close()
        data = response.json().get("data", [])
        return [entry["id"] for entry in data if isinstance(entry, dict) and "id" in entry]

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, options: dict[str, Any]
    ) -> httpx.Response:
        request = self._build(method, path, body, options)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                error: APIError = self._transport_error(exc, request)
                cause: BaseException = exc
            else:
                if response.is_success:
                    return response
                try:
                    response.read()
                finally:
                    response.close()
                error = status_error_from_response(response, secret=self._api_key)
                cause = error
            try:
                delay = self._decide(error, response, attempt)
            except APIError:
                if cause is not error:
                    raise error from cause
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
    ) -> None:
        super().__init__(
            api_key, base_url, timeout=timeout, max_retries=max_retries, headers=headers
        )
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)
        self._sleep: Callable[[float], Any] = asyncio.sleep

    async def create(self, **request: Any) -> ChatCompletion:
        body, options = self._split(request, stream=False)
        response = await self._send("POST", "/chat/completions", body, options)
        try:
            await response.aread()
        except httpx.TransportError as exc:
            raise self._transport_error(exc, response.request) from exc
        finally:
            await response.aclose()
        return self._completion(response)

    async def stream(self, **request: Any) -> AsyncChatStream:
        body, options = self._split(request, stream=True)
        response = await self._send("POST", "/chat/completions", body, options)
        return AsyncChatStream(response, secret=self._api_key)

    async def models(self) -> list[str]:
        response = await self._send("GET", "/models", None, {})
        try:
            await response.aread()
        finally:
            await response.aclose()
        data = response.json().get("data", [])
        return [entry["id"] for entry in data if isinstance(entry, dict) and "id" in entry]

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, options: dict[str, Any]
    ) -> httpx.Response:
        request = self._build(method, path, body, options)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                error: APIError = self._transport_error(exc, request)
                cause: BaseException = exc
            else:
                if response.is_success:
                    return response
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                error = status_error_from_response(response, secret=self._api_key)
                cause = error
            try:
                delay = self._decide(error, response, attempt)
            except APIError:
                if cause is not error:
                    raise error from cause
                raise
            await self._sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
