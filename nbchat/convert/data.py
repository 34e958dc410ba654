"""Tables and data into the prompt: DataFrames, Series, arrays, dicts and lists as compact JSON.

Past a row or token budget the data is cut deterministically (head and tail, never a sample)
and the text says how much was left out. pandas and numpy are optional and imported lazily.

The JSON, written without spaces and with non-ASCII characters as they are:

- DataFrame, split orientation (column names once, then one array per row — the compact choice
  for anything beyond a single row)::

      {"kind":"DataFrame","shape":[1000,3],"columns":["a","b","when"],
       "dtypes":["int64","float64","datetime64[ns]"],"note":"rows 50–949 (900 of 1,000) left out",
       "index":[...],            # only when the index is not the default 0..n-1
       "data":[[1,0.5,"2024-01-01"],…,"… 900 rows left out …",…]}

- Series: ``{"kind":"Series","name":…,"dtype":…,"length":n,"index":[…],"data":[…]}``
- numpy array: ``{"kind":"ndarray","shape":[…],"dtype":…,"data":[nested lists]}``
- anything else: the value itself; a list (or dict) longer than the budget keeps its head and
  tail with a ``"… N items left out …"`` string (or ``"…": "N keys left out"`` entry) between.

Values: NaN, None, NaT and pd.NA become null; ±inf become "inf"/"-inf"; datetimes become ISO
8601 (date only when a whole column is at midnight); timedeltas, periods and unknown objects
inside a table, list or dict become their str(); numpy scalars become plain numbers; strings
longer than :data:`MAX_CELL_CHARS` are cut with a note. Rows in notes are 0-based positions.
An unsupported top-level object is a DataError.

Token estimate: one token per 4 ASCII characters plus one per non-ASCII character (CJK text
costs about a token a character), rounded up. It is an estimate, not a tokenizer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import html
import json
import math
import sys
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from ..protocol.exceptions import NbchatError

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_MAX_TOKENS",
    "MAX_CELL_CHARS",
    "DataBlock",
    "DataError",
    "data_block",
    "estimate_tokens",
]

DEFAULT_MAX_ROWS = 100
DEFAULT_MAX_COLUMNS = 50
DEFAULT_MAX_TOKENS = 4000
MAX_CELL_CHARS = 500


# Significant digits floats are rounded to, for the data_block call in progress (None: all).
_FLOAT_DIGITS: ContextVar[int | None] = ContextVar("float_digits", default=None)


class DataError(NbchatError, ValueError):
    """An object that cannot be put into the prompt as data."""


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` costs: ASCII characters / 4 plus non-ASCII characters."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / 4 + (len(text) - ascii_chars))


@dataclass(frozen=True, repr=False)
class DataBlock:
    """Data ready for the prompt: ``text`` (JSON), its estimated ``tokens`` and what was cut.

    ``rows``/``columns`` count the whole input (items for a list, keys for a dict);
    ``rows_shown``/``columns_shown`` what the text holds. ``note`` says what was left out
    (None when nothing was).
    """

    text: str
    tokens: int
    kind: str
    name: str | None = None
    shape: tuple[int, ...] | None = None
    rows: int | None = None
    rows_shown: int | None = None
    columns: int | None = None
    columns_shown: int | None = None
    note: str | None = None

    @property
    def truncated(self) -> bool:
        return self.note is not None

    def prompt(self) -> str:
        """The text to put in a message, labelled with the variable name if there is one."""
        if self.name:
            return f"Data `{self.name}` ({self.describe()}):\n{self.text}"
        return self.text

    def to_part(self) -> dict[str, Any]:
        """A ``text`` content part for a user message."""
        return {"type": "text", "text": self.prompt()}

    def describe(self) -> str:
        """What the input was, e.g. ``DataFrame 1,000 rows × 3 columns``."""
        if self.kind == "DataFrame" and self.rows is not None and self.columns is not None:
            return f"DataFrame {_amount(self.rows, 'rows')} × {_amount(self.columns, 'columns')}"
        if self.kind in ("Series", "list", "tuple", "set") and self.rows is not None:
            return f"{self.kind} of {self.rows:,}"
        if self.kind == "dict" and self.rows is not None:
            return f"dict of {self.rows:,} keys"
        if self.kind == "ndarray" and self.shape is not None:
            return "ndarray " + "×".join(str(n) for n in self.shape)
        return self.kind

    def summary(self) -> str:
        """One line: what it is, what was kept, and its cost."""
        label = f"{self.name}: " if self.name else ""
        shown = ""
        if self.truncated and self.rows_shown is not None:
            shown = f", {self.rows_shown:,} of {self.rows:,} shown"
        return f"{label}{self.describe()}{shown}, ~{self.tokens:,} tokens"

    def __repr__(self) -> str:
        return f"DataBlock({self.summary()})"

    def __str__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        note = f"<br><small>✂ {html.escape(self.note)}</small>" if self.note else ""
        return (
            f"<details><summary>{html.escape(self.summary())}</summary>"
            f'<pre style="white-space:pre-wrap;max-height:20em;overflow:auto">'
            f"{html.escape(self.text)}</pre></details>{note}"
        )


def data_block(
    obj: Any,
    *,
    name: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_columns: int = DEFAULT_MAX_COLUMNS,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    float_digits: int | None = None,
) -> DataBlock:
    """Put ``obj`` into the prompt as compact JSON, cut to ``max_rows`` rows (list items, dict
    keys) and ``max_columns`` columns, then further until the estimate is ≤ ``max_tokens``.

    Cuts keep the first ⌈k/2⌉ and last ⌊k/2⌋ rows. ``float_digits`` rounds floats to that
    many significant digits (fewer tokens); by default they are kept exactly.
    Raises :class:`DataError`.
    """
    if max_rows < 1 or max_columns < 1 or max_tokens < 1:
        raise DataError("max_rows, max_columns and max_tokens must be at least 1")
    if float_digits is not None and not 1 <= float_digits <= 17:
        raise DataError("float_digits must be between 1 and 17")
    token = _FLOAT_DIGITS.set(float_digits)
    try:
        return _block(obj, name, max_rows, max_columns, max_tokens)
    finally:
        _FLOAT_DIGITS.reset(token)


def _block(
    obj: Any, name: str | None, max_rows: int, max_columns: int, max_tokens: int
) -> DataBlock:
    pandas = sys.modules.get("pandas")
    numpy = sys.modules.get("numpy")
    if pandas is not None and isinstance(obj, pandas.DataFrame):
        return _frame_block(obj, name, max_rows, max_columns, max_tokens)
    if pandas is not None and isinstance(obj, pandas.Series):
        return _series_block(obj, name, max_rows, max_tokens)
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return _array_block(obj, name, max_rows, max_tokens)
    if not _supported_top_level(obj):
        raise DataError(
            f"cannot put a {type(obj).__name__} into the prompt as data; pass a DataFrame, "
            "Series, array, dict, list or other JSON-serialisable value"
        )
    return _value_block(obj, name, max_rows, max_tokens)


# ---------------------------------------------------------------------------------------------
# Fitting a budget


def _largest_fitting(render: Callable[[int], str], high: int, max_tokens: int) -> int:
    """The largest k in 0..high whose rendering fits ``max_tokens`` (0 if none fits)."""
    if estimate_tokens(render(high)) <= max_tokens:
        return high
    low, high = 0, high - 1
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_tokens(render(middle)) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return low


def _head_tail(count: int, keep: int) -> tuple[range, range]:
    """Positions kept when ``count`` items are cut to ``keep``: the head and the tail."""
    if keep >= count:
        return range(count), range(0)
    head = (keep + 1) // 2
    return range(head), range(count - (keep - head), count)


def _left_out(count: int, keep: int, what: str) -> str | None:
    if keep >= count:
        return None
    head = (keep + 1) // 2
    tail_start = count - (keep - head)
    first, last = head, tail_start - 1
    where = f"{what[:-1]} {first}" if first == last else f"{what} {first}–{last}"
    return f"{where} ({count - keep:,} of {count:,}) left out"


def _amount(count: int, what: str) -> str:
    """``3 rows``, ``1 row``: ``what`` is given in the plural."""
    return f"{count:,} {what if count != 1 else what[:-1]}"


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _within_budget(text: str, note: str | None, max_tokens: int) -> tuple[str, str | None]:
    """(text, note) under ``max_tokens``: the last resort, when even the smallest structure is
    over budget, cuts the text itself and says so in the note."""
    if estimate_tokens(text) <= max_tokens:
        return text, note
    keep = max(0, max_tokens - 20)
    cut = text
    while estimate_tokens(cut) > keep and cut:
        cut = cut[: max(0, len(cut) * keep // max(1, estimate_tokens(cut)) - 1)]
    cut_note = f"text cut at {len(cut):,} of {len(text):,} characters"
    return f"{cut} … [{cut_note}]", f"{note}; {cut_note}" if note else cut_note


# ---------------------------------------------------------------------------------------------
# DataFrame and Series


def _frame_block(
    frame: Any, name: str | None, max_rows: int, max_columns: int, max_tokens: int
) -> DataBlock:
    n_rows, n_cols = frame.shape
    cols_keep = min(n_cols, max_columns)
    rows_keep = min(n_rows, max_rows)
    # Convert only what could be shown: at most max_rows rows and max_columns columns.
    row_head, row_tail = _head_tail(n_rows, rows_keep)
    col_head, col_tail = _head_tail(n_cols, cols_keep)
    row_pos = [*row_head, *row_tail]
    col_pos = [*col_head, *col_tail]
    part = frame.iloc[row_pos, col_pos]
    names = [_column_name(c) for c in frame.columns]
    dtypes = [str(t) for t in frame.dtypes]
    columns = [_column_values(part.iloc[:, i]) for i in range(len(col_pos))]
    index = None if _default_index(frame.index) else [_cell(v) for v in part.index.tolist()]

    def payload(rows: int, cols: int) -> dict[str, Any]:
        chosen_cols = _pick(len(col_pos), n_cols, cols)
        chosen_rows = _pick(len(row_pos), n_rows, rows)
        notes = [
            note
            for note in (_left_out(n_rows, rows, "rows"), _left_out(n_cols, cols, "columns"))
            if note
        ]
        body: dict[str, Any] = {"kind": "DataFrame", "shape": [n_rows, n_cols]}
        body["columns"] = _with_marker([names[col_pos[i]] for i in chosen_cols], n_cols, cols)
        body["dtypes"] = _with_marker([dtypes[col_pos[i]] for i in chosen_cols], n_cols, cols)
        if notes:
            body["note"] = "; ".join(notes)
        if index is not None:
            body["index"] = _with_marker([index[r] for r in chosen_rows], n_rows, rows, "rows")
        data = [[columns[c][r] for c in chosen_cols] for r in chosen_rows]
        if cols < n_cols:
            head = (cols + 1) // 2
            marker = f"… {_amount(n_cols - cols, 'columns')} …"
            data = [[*row[:head], marker, *row[head:]] for row in data]
        body["data"] = _with_marker(data, n_rows, rows, "rows")
        return body

    cols = cols_keep
    # Too wide: drop middle columns until a couple of rows fit beside the header.
    sample = min(rows_keep, 2)
    if estimate_tokens(_dumps(payload(sample, cols))) > max_tokens:
        cols = _largest_fitting(lambda c: _dumps(payload(sample, c)), cols, max_tokens)
    rows = _largest_fitting(lambda r: _dumps(payload(r, cols)), rows_keep, max_tokens)
    text = _dumps(payload(rows, cols))
    note: str | None = "; ".join(
        n for n in (_left_out(n_rows, rows, "rows"), _left_out(n_cols, cols, "columns")) if n
    )
    text, note = _within_budget(text, note, max_tokens)
    return DataBlock(
        text=text,
        tokens=estimate_tokens(text),
        kind="DataFrame",
        name=name,
        shape=(n_rows, n_cols),
        rows=n_rows,
        rows_shown=rows,
        columns=n_cols,
        columns_shown=cols,
        note=note or None,
    )


def _pick(available: int, count: int, keep: int) -> list[int]:
    """Which of the pre-cut head+tail (``available`` of ``count``) a cut to ``keep`` shows.

    A cut to ``keep`` is the first ⌈keep/2⌉ and last ⌊keep/2⌋ of the original, which are the
    first and last of the pre-cut too.
    """
    if keep >= count:
        return list(range(available))
    head = (keep + 1) // 2
    return [*range(head), *range(available - (keep - head), available)]


def _with_marker(items: list[Any], count: int, keep: int, what: str = "columns") -> list[Any]:
    if keep >= count:
        return items
    head = (keep + 1) // 2
    return [*items[:head], f"… {_amount(count - keep, what)} left out …", *items[head:]]


def _series_block(series: Any, name: str | None, max_rows: int, max_tokens: int) -> DataBlock:
    n = len(series)
    keep = min(n, max_rows)
    head, tail = _head_tail(n, keep)
    positions = [*head, *tail]
    part = series.iloc[positions]
    values = _column_values(part)
    index = None if _default_index(series.index) else [_cell(v) for v in part.index.tolist()]

    def payload(rows: int) -> dict[str, Any]:
        chosen = _pick(len(positions), n, rows)
        body: dict[str, Any] = {"kind": "Series"}
        if series.name is not None:
            body["name"] = _column_name(series.name)
        body.update(dtype=str(series.dtype), length=n)
        note = _left_out(n, rows, "items")
        if note:
            body["note"] = note
        if index is not None:
            body["index"] = _with_marker([index[i] for i in chosen], n, rows, "items")
        body["data"] = _with_marker([values[i] for i in chosen], n, rows, "items")
        return body

    rows = _largest_fitting(lambda r: _dumps(payload(r)), keep, max_tokens)
    text = _dumps(payload(rows))
    note = _left_out(n, rows, "items")
    text, note = _within_budget(text, note, max_tokens)
    return DataBlock(
        text=text,
        tokens=estimate_tokens(text),
        kind="Series",
        name=name,
        shape=(n,),
        rows=n,
        rows_shown=rows,
        note=note,
    )


def _default_index(index: Any) -> bool:
    pandas = sys.modules["pandas"]
    if isinstance(index, pandas.RangeIndex):
        return index.start == 0 and index.step == 1 and index.name is None
    return False


def _column_name(name: Any) -> str:
    if isinstance(name, tuple):
        return " / ".join(str(part) for part in name)
    return str(name)


def _column_values(column: Any) -> list[Any]:
    pandas = sys.modules["pandas"]
    kind = column.dtype.kind
    if kind == "M":
        present = column.dropna()
        at_midnight = bool((present == present.dt.normalize()).all()) if len(present) else False
        if at_midnight and getattr(column.dt, "tz", None) is None:
            return [None if pandas.isna(v) else v.date().isoformat() for v in column.tolist()]
    return [_cell(v) for v in column.tolist()]


# ---------------------------------------------------------------------------------------------
# Arrays and plain values


def _array_block(array: Any, name: str | None, max_rows: int, max_tokens: int) -> DataBlock:
    shape = tuple(int(n) for n in array.shape)

    def payload(limit: int) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "ndarray", "shape": list(shape), "dtype": str(array.dtype)}
        notes = _array_notes(shape, limit)
        if notes:
            body["note"] = notes
        body["data"] = _convert(array, limit)
        return body

    rows_total = shape[0] if shape else 1
    largest = max(1, min(max_rows, max(shape, default=1)))
    limit = max(1, _largest_fitting(lambda k: _dumps(payload(max(k, 1))), largest, max_tokens))
    text = _dumps(payload(limit))
    note = _array_notes(shape, limit)
    text, note = _within_budget(text, note, max_tokens)
    return DataBlock(
        text=text,
        tokens=estimate_tokens(text),
        kind="ndarray",
        name=name,
        shape=shape,
        rows=rows_total,
        rows_shown=min(rows_total, limit),
        note=note,
    )


def _array_notes(shape: tuple[int, ...], limit: int) -> str | None:
    cut = [f"axis {axis}: {n - limit:,} of {n:,}" for axis, n in enumerate(shape) if n > limit]
    return "left out (middle entries) — " + ", ".join(cut) if cut else None


def _value_block(obj: Any, name: str | None, max_rows: int, max_tokens: int) -> DataBlock:
    collection = isinstance(obj, list | tuple | set | frozenset | dict)
    kind = type(obj).__name__ if collection else "value"
    size = len(obj) if isinstance(obj, list | tuple | set | frozenset | Mapping) else None

    def render(limit: int) -> str:
        return _dumps(_convert(obj, max(limit, 1)))

    limit = max(1, _largest_fitting(render, max_rows, max_tokens))
    text = render(limit)
    cuts = _count_cuts(obj, limit)
    note: str | None = f"{_amount(cuts, 'items')} left out (the middle of long lists and dicts)"
    note = note if cuts else None
    text, note = _within_budget(text, note, max_tokens)
    shown = None if size is None else min(size, limit)
    return DataBlock(
        text=text,
        tokens=estimate_tokens(text),
        kind=kind,
        name=name,
        shape=(size,) if size is not None else None,
        rows=size,
        rows_shown=shown,
        note=note,
    )


def _count_cuts(obj: Any, limit: int, depth: int = 0) -> int:
    if depth > 50:
        return 0
    if isinstance(obj, Mapping):
        values = list(obj.values())
    elif isinstance(obj, list | tuple | set | frozenset):
        values = list(obj)
    else:
        return 0
    head, tail = _head_tail(len(values), limit)
    kept = [values[i] for i in (*head, *tail)]
    return max(0, len(values) - limit) + sum(_count_cuts(v, limit, depth + 1) for v in kept)


def _supported_top_level(obj: Any) -> bool:
    if obj is None or isinstance(obj, str | int | float | bool | list | tuple | set | frozenset):
        return True
    if isinstance(obj, Mapping | dt.date | dt.time | dt.timedelta | decimal.Decimal):
        return True
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return True
    return callable(getattr(obj, "model_dump", None)) or _is_numpy_scalar(obj)


def _is_numpy_scalar(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.generic)


def _convert(value: Any, limit: int, depth: int = 0) -> Any:
    """A JSON-ready copy of ``value``; lists and dicts longer than ``limit`` keep head and tail."""
    if depth > 50:
        return "…"
    if isinstance(value, Mapping):
        items: list[Any] | tuple[Any, ...] = list(value.items())
        head, tail = _head_tail(len(items), limit)
        result: dict[str, Any] = {}
        for i in head:
            result[_key(items[i][0])] = _convert(items[i][1], limit, depth + 1)
        if len(items) > limit:
            result["…"] = f"{_amount(len(items) - limit, 'keys')} left out"
        for i in tail:
            result[_key(items[i][0])] = _convert(items[i][1], limit, depth + 1)
        return result
    if isinstance(value, list | tuple | set | frozenset):
        items = _ordered(value) if isinstance(value, set | frozenset) else value
        head, tail = _head_tail(len(items), limit)
        converted = [_convert(items[i], limit, depth + 1) for i in head]
        if len(items) > limit:
            converted.append(f"… {_amount(len(items) - limit, 'items')} left out …")
        converted.extend(_convert(items[i], limit, depth + 1) for i in tail)
        return converted
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        if value.ndim == 0:
            return _cell(value.item())
        head, tail = _head_tail(len(value), limit)
        converted = [_convert(value[i], limit, depth + 1) for i in head]
        if len(value) > limit:
            converted.append(f"… {_amount(len(value) - limit, 'items')} left out …")
        converted.extend(_convert(value[i], limit, depth + 1) for i in tail)
        return converted
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame | pandas.Series):
        block = (
            _frame_block(value, None, limit, limit, 10**9)
            if isinstance(value, pandas.DataFrame)
            else _series_block(value, None, limit, 10**9)
        )
        return json.loads(block.text)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _convert(fields, limit, depth + 1)
    if callable(getattr(value, "model_dump", None)):
        return _convert(value.model_dump(mode="json"), limit, depth + 1)
    return _cell(value)


def _ordered(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        # Mixed types do not sort: sort by repr so the output is still deterministic.
        return sorted(items, key=repr)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(_cell(key))


def _cell(value: Any) -> Any:
    """One scalar as a JSON value (see the module docstring for the rules)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        digits = _FLOAT_DIGITS.get()
        return value if digits is None else float(f"{value:.{digits}g}")
    if isinstance(value, str):
        return _cut_string(value)
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    if _is_numpy_scalar(value):
        return _numpy_scalar(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None if value.is_nan() else ("inf" if value > 0 else "-inf")
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return _cell(value.value)
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, bytes | bytearray):
        try:
            return _cut_string(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            return f"<{len(value):,} bytes>"
    if isinstance(value, tuple | list | set | frozenset | Mapping):
        return _convert(value, MAX_CELL_CHARS)
    # Timedelta, Period, Interval, geometry…: their str() is what a person would read.
    return _cut_string(str(value))


def _numpy_scalar(value: Any) -> Any:
    numpy = sys.modules["numpy"]
    if isinstance(value, numpy.datetime64 | numpy.timedelta64):
        if numpy.isnat(value):
            return None
        pandas = sys.modules.get("pandas")
        if pandas is not None:
            converted = (
                pandas.Timestamp(value)
                if isinstance(value, numpy.datetime64)
                else pandas.Timedelta(value)
            )
            return _cell(converted)
        return str(value)
    return _cell(value.item())


def _cut_string(text: str) -> str:
    if len(text) <= MAX_CELL_CHARS:
        return text
    return f"{text[:MAX_CELL_CHARS]}…(+{len(text) - MAX_CELL_CHARS:,} chars)"
