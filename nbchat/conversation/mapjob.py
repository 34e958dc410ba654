"""What one ``nbchat.map`` runs, checked before anything is sent (rows, prompt, fields, schema),
and each row's request, reply and result column; shared by the online and the Batch API runners.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..convert.rows import RowSource, RowTemplate, as_prompt, row_source
from ..protocol.exceptions import RequestValidationError, first_line, one_line
from ..protocol.types import ChatCompletion
from ..transport.prepared import PreparedRequest
from .chat import Chat

if TYPE_CHECKING:
    from ..transport.client import AsyncClient, Client

__all__ = ["COLUMNS", "EXTRA_COLUMNS", "MapJob", "Outcome", "one_line_error"]

#: The columns every result has, before the schema's fields.
COLUMNS = ("reply", "error")
#: The columns after the schema's fields.
EXTRA_COLUMNS = ("finish_reason", "tokens", "latency")
#: The column for a schema whose root is not an object (a list, a number…).
PARSED = "parsed"
_MAX_ERROR = 300


@dataclasses.dataclass(slots=True)
class Outcome:
    """What became of one row."""

    reply: str | None = None
    error: str | None = None
    values: dict[str, Any] | None = None
    finish_reason: str | None = None
    tokens: int | None = None
    latency: float | None = None
    #: True when the store or a cassette answered: nothing was sent for this row.
    kept: bool = False


def one_line_error(exc: BaseException) -> str:
    """The error of one row as one line, as a failed cell says it (``one_line``)."""
    return one_line(exc, limit=_MAX_ERROR)


def _first_line(text: str | None) -> str:
    return first_line(text or "", limit=_MAX_ERROR)


class MapJob:
    """One map, checked: every mistake below is a one-line error raised before anything is sent.

    ``namespace`` (a notebook's variables) answers template names that are not columns.
    """

    def __init__(
        self,
        prompt: Any,
        rows: Any,
        *,
        model: str | None = None,
        system: str | None = None,
        schema: Any = None,
        concurrency: int = 16,
        client: Client | AsyncClient | None = None,
        fields: Mapping[str, Any] | None = None,
        namespace: Mapping[str, Any] | None = None,
        interpolate: bool = True,
        cache: bool | None = None,
        resume: bool = False,
        session: str = "map",
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RequestValidationError(
                f"concurrency must be a whole number of 1 or more, not {concurrency!r}",
                field="concurrency",
            )
        self.concurrency = concurrency
        if resume:
            from ..store.config import store_path

            if cache is False:
                raise RequestValidationError(
                    "resume=True answers rows from the store: leave out cache=False",
                    field="resume",
                )
            if store_path() is None:
                raise RequestValidationError(
                    "resume=True needs the store, which is off (%config Chat.store or "
                    "NBCHAT_STORE): it is where the rows that arrived were kept",
                    field="resume",
                )
            cache = True
        self.resume = resume
        #: The door's keywords for every row: which session the rows are logged under, and
        #: whether rows sent before are answered from the store.
        self.door: dict[str, Any] = {"session": session, "cache": cache}
        self.fields: dict[str, Any] = {k: v for k, v in (fields or {}).items() if v is not None}
        for name, why in (
            ("stream", "map sends each row unstreamed"),
            ("messages", "the prompt makes each row's messages"),
        ):
            if name in self.fields:
                raise RequestValidationError(f"{name}: leave it out; {why}", field=name)
        given = self.fields.pop("model", None)
        self.model = model or given
        self.system = system
        self.client = client
        self.schema = schema
        self.columns: list[str] = []
        if schema is not None:
            if "response_format" in self.fields:
                raise RequestValidationError(
                    "Pass schema=... or response_format=..., not both", field="schema"
                )
            self.fields["response_format"] = _response_format(schema)
            self.columns = _schema_columns(schema)
            clash = [c for c in self.columns if c in COLUMNS or c in EXTRA_COLUMNS]
            if clash:
                raise RequestValidationError(
                    f"schema: the field {clash[0]!r} would overwrite map's own {clash[0]!r} "
                    "column; rename it in the schema",
                    field="schema",
                )
        self.source: RowSource = row_source(rows)
        made = as_prompt(prompt)
        if isinstance(made, RowTemplate):
            made = RowTemplate(made.text, fallback=namespace, enabled=interpolate)
            made.check(self.source)
        self.prompt: RowTemplate | Callable[[Any], Any] = made
        self._chat: Chat | None = None
        self._text_request: tuple[PreparedRequest, Any] | None = None

    # -- requests -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.source)

    def bind(self, client: Client | AsyncClient, model: str | None) -> None:
        """Build requests for ``client`` (its profile and URL) with ``model`` from now on.

        With no model, ``Chat`` finds one through the (synchronous) client, as cells do.
        """
        self._chat = Chat(model=model, system=self.system, client=client)
        self._text_request = None

    def content(self, position: int) -> Any:
        """The row's user content (text or parts), or a list of messages from a prompt function."""
        if isinstance(self.prompt, RowTemplate):
            return self.prompt.fill(self.source.namespace(position))
        made = self.prompt(self.source.row(position))
        if isinstance(made, str):
            return made
        if isinstance(made, list):
            return made
        raise TypeError(
            f"the prompt function returned {type(made).__name__} for row {position}; it must "
            "return a str or a list of messages"
        )

    def prepare(self, position: int) -> PreparedRequest:
        """Row ``position``'s request, exactly as it will be sent (``Chat.prepare``)."""
        chat = self._chat
        if chat is None:
            raise RuntimeError("bind() a client first")
        content = self.content(position)
        if isinstance(content, str) and self._text_request is not None:
            if self._text_request[1] == _fitted(chat.client):
                return self._with_text(content)
            self._text_request = None  # the server was found to be another: fit again
        if (
            isinstance(content, list)
            and content
            and all(isinstance(m, Mapping) and "role" in m for m in content)
        ):
            # A whole conversation for this row: its messages after the system prompt.
            row_chat = Chat(
                model=chat.settings.get("model"), system=self.system, client=chat.client
            )
            for message in content:
                row_chat.add(dict(message))
            return row_chat.prepare(None, stream=False, **self.fields)
        prepared = chat.prepare(content, stream=False, **self.fields)
        if isinstance(content, str) and self._text_request is None:
            self._learn(prepared, content)
        return prepared

    def _learn(self, prepared: PreparedRequest, text: str) -> None:
        """Keep a row's request to build later rows of text from: such rows differ only in the
        text of their last message (a template of text, the same fields, no history to trim),
        so validating and fitting each again would only repeat row 0's work (a fifth of a
        row's CPU) — as long as what the client knows of the server stays the same."""
        messages = prepared.body.get("messages")
        if isinstance(messages, list) and messages[-1] == {"role": "user", "content": text}:
            self._text_request = (
                prepared,
                _fitted(self._chat.client if self._chat is not None else None),
            )

    def _with_text(self, text: str) -> PreparedRequest:
        """The kept request with ``text`` as its last message: what ``Chat.prepare`` builds."""
        assert self._text_request is not None
        known = self._text_request[0]
        body = dict(known.body)
        body["messages"] = [*body["messages"][:-1], {"role": "user", "content": text}]
        return dataclasses.replace(known, body=body)

    def requests(self) -> Iterator[tuple[int, PreparedRequest | Exception]]:
        """Every row's request in order: row 0's mistakes raise, a later row's is yielded."""
        if not len(self):
            return
        yield 0, self.first_request()
        for position in range(1, len(self)):
            try:
                yield position, self.prepare(position)
            except Exception as exc:
                yield position, exc

    def first_request(self) -> PreparedRequest:
        """Row 0's request; its mistakes are the user's, so they are raised, not recorded."""
        try:
            return self.prepare(0)
        except RequestValidationError:
            raise
        except Exception as exc:
            raise RequestValidationError(f"prompt, row 0: {one_line_error(exc)}") from None

    # -- replies ------------------------------------------------------------------------------

    def outcome(self, completion: ChatCompletion, latency: float | None) -> Outcome:
        """Read one row's completion: the text, the schema's values, tokens, finish reason."""
        usage = completion.usage
        result = Outcome(latency=latency, tokens=usage.total_tokens if usage else None)
        if not completion.choices:
            result.error = "The server sent no choices"
            return result
        choice = completion.choices[0]
        message = choice.message
        result.reply = message.content
        result.finish_reason = choice.finish_reason
        if self.schema is not None:
            from ..convert.parsing import parse_reply

            try:
                value = parse_reply(
                    message.content,
                    message.refusal,
                    schema_or_model=self.schema,
                    finish_reason=choice.finish_reason,
                )
            except ValueError as exc:
                result.error = one_line_error(exc)
                return result
            result.values = self._values(value)
        elif message.refusal and not message.content:
            result.error = first_line(f"The model refused: {message.refusal}", limit=_MAX_ERROR)
        return result

    def outcome_from_body(self, body: Mapping[str, Any], latency: float | None) -> Outcome:
        """An outcome from a completion's JSON (a batch output line)."""
        try:
            completion = ChatCompletion.model_validate(body)
        except ValueError as exc:
            return Outcome(
                error=f"The batch output is not a chat completion: {_first_line(str(exc))}"
            )
        return self.outcome(completion, latency)

    def _values(self, value: Any) -> dict[str, Any]:
        if self.columns == [PARSED]:
            return {PARSED: value}
        if hasattr(value, "model_dump"):
            data = value.model_dump()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            data = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        elif isinstance(value, Mapping):
            data = value
        else:
            return {PARSED: value}
        return {column: data.get(column) for column in self.columns}

    # -- the result ---------------------------------------------------------------------------

    @property
    def result_columns(self) -> list[str]:
        return [*COLUMNS, *self.columns, *EXTRA_COLUMNS]

    def assemble(self, outcomes: Sequence[Outcome | None], unfinished: Callable[[int], str]) -> Any:
        """The result: a DataFrame with the input's index for a DataFrame, else a list of dicts.

        ``unfinished(position)`` is the error of a row that has no outcome.
        """
        names = self.result_columns
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for position, outcome in enumerate(outcomes):
            if outcome is None:
                outcome = Outcome(error=unfinished(position))
            columns["reply"].append(outcome.reply)
            columns["error"].append(outcome.error)
            values = outcome.values or {}
            for name in self.columns:
                columns[name].append(values.get(name))
            columns["finish_reason"].append(outcome.finish_reason)
            columns["tokens"].append(outcome.tokens)
            # Seconds to the millisecond: more digits are noise, and they crowd the table.
            latency = outcome.latency
            columns["latency"].append(None if latency is None else round(latency, 3))
        if not self.source.frame:
            rows = zip(*columns.values(), strict=True)
            return [dict(zip(names, row, strict=True)) for row in rows] if outcomes else []
        import pandas as pd

        data: dict[str, Any] = dict(columns)
        # A row without an error has an empty one, so the table shows nothing there (None
        # shows as "None"): the rows that failed are ``out[out.error != ""]``.
        data["error"] = ["" if error is None else error for error in columns["error"]]
        data["tokens"] = pd.array(columns["tokens"], dtype="Int64")
        data["latency"] = pd.array(columns["latency"], dtype="Float64")
        return pd.DataFrame(data, index=self.source.index, columns=names)


def _fitted(client: Any) -> Any:
    """What a request's fitting to the server depends on: what the client knows of it."""
    profile = getattr(client, "profile", None)
    if profile is None:
        return None
    return (profile.kind, profile.default_model, tuple(sorted(profile.learned.items())))


def _response_format(schema: Any) -> dict[str, Any]:
    from ..convert.formats import response_format_for

    try:
        return response_format_for(schema)
    except (TypeError, ValueError) as exc:
        raise RequestValidationError(
            f"schema: cannot be sent as a strict schema: {_first_line(str(exc))}", field="schema"
        ) from None


def _schema_columns(schema: Any) -> list[str]:
    """The result columns a schema adds: its top-level fields, or ``parsed``."""
    if isinstance(schema, type) and hasattr(schema, "model_fields"):
        return list(schema.model_fields)
    if isinstance(schema, dict):
        root = schema
    else:
        from pydantic import TypeAdapter

        root = TypeAdapter(schema).json_schema()
    ref = root.get("$ref")
    if isinstance(ref, str) and "properties" not in root:
        name = ref.rsplit("/", 1)[-1]
        root = (root.get("$defs") or root.get("definitions") or {}).get(name, root)
    properties = root.get("properties")
    if (root.get("type") == "object" or properties) and isinstance(properties, dict):
        return list(properties)
    return [PARSED]
