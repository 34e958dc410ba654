"""Rows for ``nbchat.map``: a DataFrame, a list of dicts or any iterable, read one row at a time,
and a ``{column}`` prompt template filled in from each row with the cells' interpolation rules.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from ..protocol.exceptions import RequestValidationError
from .interpolate import InterpolationError, interpolate

__all__ = ["RowSource", "RowTemplate", "as_prompt", "row_source"]

_MISSING_NAME = re.compile(r"NameError: name '([^']+)' is not defined")
_SHOWN_COLUMNS = 8


class RowSource:
    """The rows of a map, by position: ``len()``, ``row(i)`` (a mapping) and the input's index.

    A DataFrame's columns are read once as lists, so a row costs a dict and no pandas call;
    other inputs are kept as the list they are (an iterator is read into one).
    """

    def __init__(
        self,
        items: Sequence[Any],
        *,
        index: Any = None,
        columns: list[str] | None = None,
        frame: bool = False,
    ) -> None:
        self._items = items
        self.index = index
        self.columns = columns
        #: True when the input was a DataFrame: the result is one too, with its index.
        self.frame = frame

    def __len__(self) -> int:
        return len(self._items)

    def row(self, position: int) -> Any:
        """The row at ``position``: a mapping of column to value, or the item as it was."""
        return self._items[position]

    def namespace(self, position: int) -> Mapping[str, Any]:
        """What a template sees for one row: its columns, and the whole row as ``row``."""
        item = self._items[position]
        if isinstance(item, Mapping):
            # The row's own columns win over the name "row".
            return {"row": item, **item}
        return {"row": item}

    def key_sets(self) -> list[tuple[int, frozenset[str]]]:
        """The first position of each distinct set of columns among the rows."""
        if self.frame:
            return [(0, frozenset(self.columns or ()))] if len(self) else []
        seen: dict[frozenset[str], int] = {}
        for position, item in enumerate(self._items):
            keys = frozenset(item.keys()) if isinstance(item, Mapping) else frozenset()
            seen.setdefault(keys, position)
        return [(position, keys) for keys, position in seen.items()]


class _FrameRows(Sequence[dict[str, Any]]):
    """A DataFrame's rows as dicts, built on demand from its columns read as lists."""

    def __init__(self, frame: Any) -> None:
        self._names = [str(name) for name in frame.columns]
        self._columns = [frame[name].tolist() for name in frame.columns]
        self._length = len(frame)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, position: Any) -> Any:
        if isinstance(position, slice):
            return [self[i] for i in range(*position.indices(self._length))]
        return {
            name: column[position] for name, column in zip(self._names, self._columns, strict=True)
        }


def row_source(rows: Any) -> RowSource:
    """Wrap a DataFrame, a list (of dicts, strings…), a Series or any iterable of rows."""
    if isinstance(rows, (str, bytes, Mapping)):
        raise RequestValidationError(
            f"rows must be a DataFrame, a list of dicts or an iterable of rows, not "
            f"{type(rows).__name__}",
            field="rows",
        )
    module = type(rows).__module__ or ""
    if module.startswith("pandas") and hasattr(rows, "columns") and hasattr(rows, "index"):
        if not rows.columns.is_unique:
            duplicated = sorted({str(c) for c in rows.columns[rows.columns.duplicated()]})
            raise RequestValidationError(
                f"rows: the DataFrame has duplicate columns: {', '.join(duplicated)}", field="rows"
            )
        columns = [str(name) for name in rows.columns]
        return RowSource(_FrameRows(rows), index=rows.index, columns=columns, frame=True)
    if module.startswith("pandas") and hasattr(rows, "index") and hasattr(rows, "tolist"):
        # A Series: each value is a row, seen as {row} in the template.
        return RowSource(rows.tolist(), index=rows.index, frame=True)
    if isinstance(rows, Sequence):
        return RowSource(rows)
    if isinstance(rows, Iterable):
        return RowSource(list(rows))
    raise RequestValidationError(
        f"rows must be a DataFrame, a list of dicts or an iterable of rows, not "
        f"{type(rows).__name__}",
        field="rows",
    )


class RowTemplate:
    """A prompt filled in from each row: ``{column}`` and any expression over the columns.

    The rules are the cells' (``nbchat.convert.interpolate``): JSON and code fences stay as
    written, ``{{``/``}}`` are literal braces. ``fallback`` (a notebook's namespace) answers for
    names that are not columns. A missing value (None, NaN, pandas' NA/NaT) is filled in as
    empty text, not as "nan"; ``missing()`` counts where that happens.
    """

    def __init__(
        self,
        text: str,
        *,
        fallback: Mapping[str, Any] | None = None,
        enabled: bool = True,
    ) -> None:
        self.text = text
        self.fallback = fallback
        self.enabled = enabled and ("{" in text or "}" in text)

    def fill(
        self, namespace: Mapping[str, Any], on_missing: Callable[[str], None] | None = None
    ) -> str:
        if not self.enabled:
            return self.text
        if self.fallback is not None:
            namespace = ChainMap(dict(namespace), cast("dict[str, Any]", self.fallback))
        return interpolate(self.text, namespace, on_missing=on_missing or _ignore)

    def missing(self, source: RowSource) -> dict[str, int]:
        """How many rows fill each expression with a missing value (so, with empty text)."""
        counts: dict[str, int] = {}
        if not self.enabled:
            return counts
        for position in range(len(source)):
            seen: set[str] = set()
            try:
                self.fill(source.namespace(position), seen.add)
            except InterpolationError:
                continue
            for expression in seen:
                counts[expression] = counts.get(expression, 0) + 1
        return counts

    def check(self, source: RowSource) -> None:
        """Fill the template for one row of each shape; a name no row has is a one-line error."""
        if not self.enabled:
            return
        for position, keys in source.key_sets():
            try:
                self.fill(source.namespace(position))
            except InterpolationError as exc:
                raise RequestValidationError(
                    _explain(str(exc), keys, position, source), field="prompt"
                ) from None


def _ignore(expression: str) -> None:
    pass


def _explain(message: str, keys: frozenset[str], position: int, source: RowSource) -> str:
    match = _MISSING_NAME.search(message)
    if match is None:
        return f"prompt, row {position}: {message}"
    name = match.group(1)
    columns = source.columns if source.frame and source.columns is not None else sorted(keys)
    if columns:
        shown = ", ".join(columns[:_SHOWN_COLUMNS]) + (
            ", …" if len(columns) > _SHOWN_COLUMNS else ""
        )
        have = f"the rows have the columns {shown}"
    else:
        have = "the rows have no columns (each is {row})"
    where = "" if source.frame or position == 0 else f" (row {position})"
    return (
        f"The prompt names {{{name}}}, which is not a column{where}: {have}. "
        f"Write {{{{{name}}}}} to keep the braces."
    )


def as_prompt(prompt: Any) -> Callable[[Any], Any] | RowTemplate:
    """A template for a string, the function itself for a callable; anything else is an error."""
    if isinstance(prompt, str):
        return RowTemplate(prompt)
    if callable(prompt):
        return prompt
    raise RequestValidationError(
        f"prompt must be a template string or a function of a row, not {type(prompt).__name__}",
        field="prompt",
    )
