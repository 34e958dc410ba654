"""Stored completions: what a server kept of requests sent with ``store=True``, listed, read,
re-labelled and deleted through the client's own request path (auth headers, retries, typed
errors): ``client.stored_completions`` and its asyncio twin.

A page (``list``, ``messages``) holds one page of results in ``data``; iterating it goes on
through the next pages. A server without these endpoints (404, 405, 501) raises
StoredCompletionsUnsupportedError in one line, and its profile remembers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from ..protocol.exceptions import APIError, APIStatusError, RequestValidationError
from ..protocol.types import (
    ChatCompletion,
    ChatCompletionDeleted,
    ChatCompletionList,
    StoredMessage,
    StoredMessageList,
    check_metadata,
)
from .drive import Flow, adrive, drive

if TYPE_CHECKING:
    import httpx

    from .client import AsyncClient, Client

__all__ = [
    "AsyncPage",
    "AsyncStoredCompletions",
    "ListFilters",
    "Page",
    "PageFilters",
    "StoredCompletions",
    "StoredCompletionsUnsupportedError",
]

_PATH = "/chat/completions"
# Answers that mean "there is no such endpoint here" (a 404 only without an API error body).
_MISSING = frozenset({404, 405, 501})

Item = TypeVar("Item")


class StoredCompletionsUnsupportedError(APIError):
    """The server keeps no completions: it has no ``/chat/completions`` list, read or delete."""


class Page(Generic[Item]):
    """One page of stored completions (or of a completion's messages): ``data``, ``has_more``,
    ``first_id``, ``last_id``. Iterating it yields every item, fetching the next pages."""

    def __init__(self, data: list[Item], listing: Any, fetch: Callable[[str], Page[Item]]) -> None:
        self.data: list[Item] = data
        self.has_more: bool = bool(listing.has_more)
        self.first_id: str | None = listing.first_id
        self.last_id: str | None = listing.last_id
        self._fetch: Callable[[str], Page[Item]] = fetch

    def next_page(self) -> Page[Item] | None:
        """The page after this one, or None at the end."""
        if not self.has_more or not self.last_id:
            return None
        return self._fetch(self.last_id)

    def __iter__(self) -> Iterator[Item]:
        page: Page[Item] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        more = ", more" if self.has_more else ""
        return f"Page({len(self.data)} items{more})"


class AsyncPage(Generic[Item]):
    """The asyncio twin of Page: ``async for item in page`` fetches the next pages."""

    def __init__(
        self, data: list[Item], listing: Any, fetch: Callable[[str], Awaitable[AsyncPage[Item]]]
    ) -> None:
        self.data: list[Item] = data
        self.has_more: bool = bool(listing.has_more)
        self.first_id: str | None = listing.first_id
        self.last_id: str | None = listing.last_id
        self._fetch: Callable[[str], Awaitable[AsyncPage[Item]]] = fetch

    async def next_page(self) -> AsyncPage[Item] | None:
        if not self.has_more or not self.last_id:
            return None
        return await self._fetch(self.last_id)

    async def __aiter__(self) -> AsyncIterator[Item]:
        page: AsyncPage[Item] | None = self
        while page is not None:
            for item in page.data:
                yield item
            page = await page.next_page()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        more = ", more" if self.has_more else ""
        return f"AsyncPage({len(self.data)} items{more})"


# ---------------------------------------------------------------------------------------------
# Requests, checked before anything is sent


def _id(value: Any, what: str = "completion_id") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestValidationError(
            f"Invalid request: {what}: a stored completion's id is a non-empty string, "
            f"not {value!r}",
            field=what,
        )
    # An id is one path segment, whatever it holds.
    return quote(value, safe="")


def _paging(
    limit: Any, order: Any, after: Any, *, model: Any = None, metadata: Any = None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise RequestValidationError(
                f"Invalid request: limit: a whole number, 1 or more, not {limit!r}", field="limit"
            )
        params["limit"] = limit
    if order is not None:
        if order not in ("asc", "desc"):
            raise RequestValidationError(
                f"Invalid request: order: 'asc' or 'desc', not {order!r}", field="order"
            )
        params["order"] = order
    if after is not None:
        _id(after, "after")  # checked like an id; httpx encodes it in the query
        params["after"] = after
    if model is not None:
        if not isinstance(model, str) or not model:
            raise RequestValidationError(
                f"Invalid request: model: a model's name, not {model!r}", field="model"
            )
        params["model"] = model
    for key, value in (_metadata(metadata) or {}).items():
        params[f"metadata[{key}]"] = value
    return params


def _metadata(metadata: Any) -> dict[str, str] | None:
    try:
        labels: dict[str, str] | None = check_metadata(metadata)
        return labels
    except ValueError as exc:
        raise RequestValidationError(
            f"Invalid request: metadata: {exc}", field="metadata"
        ) from None


def _parse(client: Any, model: type[BaseModel], response: httpx.Response, body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        what = "a " + model.__name__
        raise client.unreadable(response, body, what, f"{where}: {error['msg']}") from None


def _refuse_if_known(client: Any) -> None:
    if client.profile.supports("stored_completions") is False:
        learned = client.profile.learned
        learned = " (learned from an earlier answer)" if "stored_completions" in learned else ""
        raise StoredCompletionsUnsupportedError(
            f"The {client.profile.kind} server at {client.base_url} keeps no stored "
            f"completions{learned}: only servers with OpenAI's /chat/completions list (OpenAI, "
            "Azure) keep requests sent with store=True."
        )


def _unsupported(client: Any, error: APIStatusError, method: str, path: str) -> APIError:
    """``error`` as the one-line StoredCompletionsUnsupportedError when it means the endpoint
    is missing (a 404 of the list, or one without an API error body; 405; 501)."""
    body = error.body if isinstance(error.body, dict) else None
    api_error = body is not None and isinstance(body.get("error"), dict)
    if error.status_code not in _MISSING or (
        error.status_code == 404 and api_error and path != _PATH
    ):
        return error
    client.profile.learn("stored_completions", False)
    return StoredCompletionsUnsupportedError(
        f"The server at {client.base_url} keeps no stored completions ({method} {path} "
        f"answered {error.status_code}): only servers with OpenAI's /chat/completions list "
        "(OpenAI, Azure) keep requests sent with store=True.",
        request=error.request,
    )


class ListFilters(TypedDict, total=False):
    """Which stored completions ``list`` returns: of ``model``, carrying every pair of
    ``metadata``, ``limit`` a page (the server's default is 20), ``order`` "asc" (oldest first,
    the default) or "desc", ``after`` an id (the page after it)."""

    model: str | None
    metadata: dict[str, str] | None
    limit: int | None
    order: str | None
    after: str | None


class PageFilters(TypedDict, total=False):
    """Which of a stored completion's messages ``messages`` returns: ``limit``, ``order``,
    ``after``, as for ``list``."""

    limit: int | None
    order: str | None
    after: str | None


Filters = TypeVar("Filters", ListFilters, PageFilters)


def _next(filters: Filters, last: str) -> Filters:
    """The same filters for the page after the item ``last``."""
    following = filters.copy()
    following["after"] = last
    return following


class _Stored:
    """What both sides do, written once as flows (``drive.py``): each method checks its
    arguments, asks for one request and reads the answer; ``StoredCompletions`` runs them in
    this thread, ``AsyncStoredCompletions`` awaits them."""

    def __init__(self, client: Client | AsyncClient) -> None:
        self._client = client

    def _list(self, filters: ListFilters) -> Flow[Any]:
        params = _paging(
            filters.get("limit"),
            filters.get("order"),
            filters.get("after"),
            model=filters.get("model"),
            metadata=filters.get("metadata"),
        )
        listing = yield from self._call("GET", _PATH, None, params, ChatCompletionList)
        return listing

    def _retrieve(self, completion_id: str) -> Flow[ChatCompletion]:
        path = f"{_PATH}/{_id(completion_id)}"
        result: ChatCompletion = yield from self._call("GET", path, None, None, ChatCompletion)
        return result

    def _update(self, completion_id: str, metadata: dict[str, str]) -> Flow[ChatCompletion]:
        path = f"{_PATH}/{_id(completion_id)}"
        labels = _metadata(metadata)
        if labels is None:
            raise RequestValidationError(
                "Invalid request: metadata: the new labels are required", field="metadata"
            )
        body = {"metadata": labels}
        result: ChatCompletion = yield from self._call("POST", path, body, None, ChatCompletion)
        return result

    def _delete(self, completion_id: str) -> Flow[ChatCompletionDeleted]:
        path = f"{_PATH}/{_id(completion_id)}"
        result: ChatCompletionDeleted = yield from self._call(
            "DELETE", path, None, None, ChatCompletionDeleted
        )
        return result

    def _messages(self, completion_id: str, filters: PageFilters) -> Flow[Any]:
        path = f"{_PATH}/{_id(completion_id)}/messages"
        params = _paging(filters.get("limit"), filters.get("order"), filters.get("after"))
        listing = yield from self._call("GET", path, None, params, StoredMessageList)
        return listing

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
        model: type[BaseModel],
    ) -> Flow[Any]:
        client = self._client
        _refuse_if_known(client)
        try:
            response, content = yield _Send(client, method, path, body, params)
        except APIStatusError as exc:
            raise _unsupported(client, exc, method, path) from None
        return _parse(client, model, response, content)


class _Send:
    """One request through the client's own path: sent here, or awaited."""

    __slots__ = ("body", "client", "method", "params", "path")

    def __init__(
        self,
        client: Client | AsyncClient,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, Any] | None,
    ) -> None:
        self.client, self.method, self.path, self.body, self.params = (
            client,
            method,
            path,
            body,
            params,
        )

    def run(self) -> Any:
        return self.client.send_request(self.method, self.path, self.body, params=self.params)

    async def arun(self) -> Any:
        return await self.client.send_request(self.method, self.path, self.body, params=self.params)


class StoredCompletions(_Stored):
    """``client.stored_completions``: the completions a server stored (``store=True``)."""

    def list(self, **filters: Unpack[ListFilters]) -> Page[ChatCompletion]:
        """Stored completions (see ``ListFilters``), a page at a time."""
        listing = drive(self._list(filters))
        return Page(listing.data, listing, lambda last: self.list(**_next(filters, last)))

    def retrieve(self, completion_id: str) -> ChatCompletion:
        """One stored completion."""
        return drive(self._retrieve(completion_id))

    def update(self, completion_id: str, *, metadata: dict[str, str]) -> ChatCompletion:
        """Re-label a stored completion: its ``metadata`` becomes ``metadata``."""
        return drive(self._update(completion_id, metadata))

    def delete(self, completion_id: str) -> ChatCompletionDeleted:
        """Delete a stored completion on the server."""
        return drive(self._delete(completion_id))

    def messages(self, completion_id: str, **filters: Unpack[PageFilters]) -> Page[StoredMessage]:
        """The messages of a stored completion's request, a page at a time."""
        listing = drive(self._messages(completion_id, filters))
        return Page(
            listing.data,
            listing,
            lambda last: self.messages(completion_id, **_next(filters, last)),
        )


class AsyncStoredCompletions(_Stored):
    """The asyncio twin of StoredCompletions: the same methods, as coroutines."""

    async def list(self, **filters: Unpack[ListFilters]) -> AsyncPage[ChatCompletion]:
        listing = await adrive(self._list(filters))
        return AsyncPage(listing.data, listing, lambda last: self.list(**_next(filters, last)))

    async def retrieve(self, completion_id: str) -> ChatCompletion:
        return await adrive(self._retrieve(completion_id))

    async def update(self, completion_id: str, *, metadata: dict[str, str]) -> ChatCompletion:
        return await adrive(self._update(completion_id, metadata))

    async def delete(self, completion_id: str) -> ChatCompletionDeleted:
        return await adrive(self._delete(completion_id))

    async def messages(
        self, completion_id: str, **filters: Unpack[PageFilters]
    ) -> AsyncPage[StoredMessage]:
        listing = await adrive(self._messages(completion_id, filters))
        return AsyncPage(
            listing.data,
            listing,
            lambda last: self.messages(completion_id, **_next(filters, last)),
        )
