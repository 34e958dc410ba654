"""Variables described for a model: what ``--var NAME`` and ``%chat fix`` put into a prompt.

An object that defines ``_repr_llm_()`` describes itself (chatlab's ``__llm__`` and
``repr_llm`` spellings are accepted too); the method takes no arguments and returns text or
Markdown. Everything else gets a summary by type: DataFrame (shape, dtypes, missing values, head
and tail as a data block), Series, ndarray (shape, dtype, min/max/mean), dict/list (length,
keys, a sample), function or class (signature, docstring, the source of notebook-defined ones),
module (name, ``__all__``), PIL image or matplotlib figure (size and mode, attached as an image
where the server can see), strings, numbers and other objects (their repr and attributes).

Descriptions are deterministic (no memory addresses, sets sorted), within a token budget
(:data:`DEFAULT_TOKENS`), and never hold a secret: values under credential-like names are not
shown, and text that looks like a key or token is replaced by ``[hidden]``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import sys
import types
from dataclasses import dataclass, field
from typing import Any

from .codeblocks import fenced
from .data import DataError, data_block
from .redact import HIDDEN, hide_secrets, secret_name
from .tokenbudget import cut_to_tokens, text_tokens

__all__ = ["DEFAULT_TOKENS", "LLM_METHODS", "Description", "describe"]

#: The budget of one variable's description, in estimated tokens.
DEFAULT_TOKENS = 1000
#: The methods an object may define to describe itself, in the order they are looked for.
LLM_METHODS = ("_repr_llm_", "__llm__", "repr_llm")

_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")
# Keys, columns and attributes of a sample shown before "…".
_LISTED = 20


@dataclass(frozen=True)
class Description:
    """A variable described for a model.

    ``text`` is ready for the prompt (first line: the name and what it is). ``image`` is the
    object to attach as an image (a PIL image or figure) when the server can see, else None.
    ``hidden`` is True when the name looked like a credential's and nothing of it is shown.
    """

    name: str | None
    kind: str
    text: str
    image: Any = field(default=None, compare=False, repr=False)
    hidden: bool = False

    @property
    def tokens(self) -> int:
        return text_tokens(self.text)

    def __str__(self) -> str:
        return self.text


def describe(
    obj: Any,
    name: str | None = None,
    *,
    max_tokens: int = DEFAULT_TOKENS,
    attach_images: bool = True,
    not_attached: str = "this server does not take images",
) -> Description:
    """Describe ``obj`` (the notebook's variable ``name``) within ``max_tokens``.

    With ``attach_images=False`` images are described, not attached, and the description says
    why (``not_attached``: by default, that the server cannot see).
    """
    label = f"`{name}`" if name else "The value"
    if name and secret_name(name):
        text = f"{label}: not shown (its name looks like a credential's)."
        return Description(name, type(obj).__name__, text, hidden=True)
    kind, header, body, image = _summary(obj, max(max_tokens - 30, 20), attach_images)
    if image is not None:
        header += (
            " (attached below as an image)" if attach_images else f" (not attached: {not_attached})"
        )
    text = f"{label}: {header}" + (f"\n{body}" if body else "")
    text = hide_secrets(_ADDRESS.sub("", text))
    text = cut_to_tokens(text, max_tokens)
    return Description(name, kind, text, image if attach_images else None)


def _summary(
    obj: Any, budget: int, attach_images: bool, *, own: bool = True
) -> tuple[str, str, str, Any]:
    """(kind, header, body, image) of ``obj``: the header follows the name on the first line."""
    if own:
        described = _self_description(obj, budget, attach_images)
        if described is not None:
            return described
    pandas = sys.modules.get("pandas")
    numpy = sys.modules.get("numpy")
    if pandas is not None and isinstance(obj, pandas.DataFrame):
        return _frame(obj, budget)
    if pandas is not None and isinstance(obj, pandas.Series):
        return _series(obj, budget)
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return _array(obj, budget)
    if numpy is not None and isinstance(obj, numpy.generic):
        return type(obj).__name__, f"numpy {type(obj).__name__} {obj!r}", "", None
    image = _image(obj)
    if image is not None:
        return image
    if isinstance(obj, str | bytes | bytearray):
        return _text(obj, budget)
    if obj is None or isinstance(obj, bool | int | float | complex):
        return type(obj).__name__, f"{type(obj).__name__} {obj!r}", "", None
    if isinstance(obj, types.ModuleType):
        return _module(obj, budget)
    if isinstance(obj, type):
        return _class(obj, budget)
    if callable(obj) and _is_function_like(obj):
        return _function(obj, budget)
    if isinstance(obj, dict) or _is_mapping(obj):
        return _mapping(obj, budget)
    if isinstance(obj, list | tuple | set | frozenset | range):
        return _sequence(obj, budget)
    return _other(obj, budget)


# -- objects that describe themselves ---------------------------------------------------------


def _self_description(
    obj: Any, budget: int, attach_images: bool
) -> tuple[str, str, str, Any] | None:
    if isinstance(obj, type | types.ModuleType):
        # A class's _repr_llm_ describes its instances, not the class.
        return None
    kind = _type_name(obj)
    wrong = ""
    for method_name in LLM_METHODS:
        method = getattr(type(obj), method_name, None)
        if method is None or not callable(method):
            continue
        try:
            text = method(obj)
        except Exception as exc:
            note = f"(its {method_name}() raised {type(exc).__name__}; summarised instead)"
            kind, header, body, image = _summary(obj, budget, attach_images, own=False)
            return kind, f"{header} {note}", body, image
        if not isinstance(text, str):
            # Another spelling may still give text; else the summary says what this gave.
            returned = "None" if text is None else _type_name(text)
            wrong = (
                wrong or f"(its {method_name}() returned {returned}, not str; summarised instead)"
            )
            continue
        header = f"{kind}, as it describes itself ({method_name}):"
        return kind, header, cut_to_tokens(text.strip(), budget), None
    if wrong:
        kind, header, body, image = _summary(obj, budget, attach_images, own=False)
        return kind, f"{header} {wrong}", body, image
    return None


# -- tables and arrays ------------------------------------------------------------------------


def _frame(frame: Any, budget: int) -> tuple[str, str, str, Any]:
    rows, columns = frame.shape
    header = f"pandas DataFrame, {_many(rows, 'row')} × {_many(columns, 'column')}"
    lines = []
    dtypes = [f"{_column(c)} {dtype}" for c, dtype in list(frame.dtypes.items())[:_LISTED]]
    if dtypes:
        more = f", … ({columns - _LISTED:,} more)" if columns > _LISTED else ""
        lines.append("dtypes: " + ", ".join(dtypes) + more)
    try:
        missing = frame.isna().sum()
        gaps = [f"{_column(c)} {int(n):,}" for c, n in missing.items() if n]
    except Exception:  # exotic extension dtypes
        gaps = []
    if gaps:
        lines.append("missing values: " + ", ".join(gaps[:_LISTED]))
    hidden = [c for c in frame.columns if isinstance(c, str) and secret_name(c)]
    if hidden:
        # Passwords are not shaped like keys: a column named like a credential is not shown.
        frame = frame.assign(**dict.fromkeys(hidden, HIDDEN))
    lines.append(_block_text(frame, budget - text_tokens("\n".join(lines)), "head and tail"))
    return "DataFrame", header, "\n".join(lines), None


def _series(series: Any, budget: int) -> tuple[str, str, str, Any]:
    name = f" {series.name!r}" if series.name is not None else ""
    header = f"pandas Series{name}, {_many(len(series), 'value')}, dtype {series.dtype}"
    stats = _stats(series.to_numpy()) if series.dtype.kind in "iufb" else ""
    lines = [stats] if stats else []
    lines.append(_block_text(series, budget - text_tokens(stats), "head and tail"))
    return "Series", header, "\n".join(lines), None


def _array(array: Any, budget: int) -> tuple[str, str, str, Any]:
    shape = "×".join(str(n) for n in array.shape) or "scalar"
    header = f"numpy ndarray, shape {shape}, dtype {array.dtype}"
    stats = _stats(array) if array.dtype.kind in "iufb" else ""
    lines = [stats] if stats else []
    lines.append(_block_text(array, budget - text_tokens(stats), "values"))
    return "ndarray", header, "\n".join(lines), None


def _stats(values: Any) -> str:
    """min, max and mean of numeric values, NaN-aware; empty for no values."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return ""
    nans = int(np.isnan(array).sum())
    if nans == array.size:
        return f"all {array.size:,} values are NaN"
    with np.errstate(all="ignore"):
        low, high, mean = np.nanmin(array), np.nanmax(array), np.nanmean(array)
    text = f"min {_number(low)}, max {_number(high)}, mean {_number(mean)}"
    return text + (f"; {nans:,} NaN" if nans else "")


def _block_text(obj: Any, budget: int, what: str) -> str:
    if budget < 40:
        # Too little room for values that say anything: the lines above say what it is.
        return f"({what} not shown: the description's token budget is spent)"
    room = budget - 10
    limit = room
    try:
        for _ in range(4):
            # Six significant digits tell a model what the numbers are, in fewer tokens.
            block = data_block(obj, max_tokens=max(limit, 1), float_digits=6)
            cost = text_tokens(block.text)
            if cost <= room:
                break
            # The data blocks count tokens their own way (fewer for digits): ask for less.
            limit = max(int(limit * room / cost) - 1, 1)
    except DataError:
        return cut_to_tokens(repr(obj), max(budget, 1))
    note = f" ({block.note})" if block.note else ""
    return f"{what} as JSON{note}:\n{block.text}"


# -- images -----------------------------------------------------------------------------------


def _image(obj: Any) -> tuple[str, str, str, Any] | None:
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(obj, pil.Image):
        width, height = obj.size
        return "image", f"PIL image, {width}×{height} pixels, mode {obj.mode}", "", obj
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and isinstance(obj, figure.Figure):
        width, height = (round(v) for v in obj.get_size_inches() * obj.dpi)
        header = f"matplotlib Figure, {width}×{height} pixels, {_many(len(obj.axes), 'axis')}"
        lines = []
        for i, axes in enumerate(obj.axes[:_LISTED]):
            labels = [
                f"{what} {text!r}"
                for what, text in (
                    ("title", axes.get_title()),
                    ("x", axes.get_xlabel()),
                    ("y", axes.get_ylabel()),
                )
                if text
            ]
            lines.append(f"axes {i}: " + (", ".join(labels) if labels else "no labels"))
        return "Figure", header, "\n".join(lines), obj
    return None


# -- text and numbers -------------------------------------------------------------------------


def _text(value: str | bytes | bytearray, budget: int) -> tuple[str, str, str, Any]:
    kind = type(value).__name__
    if isinstance(value, str):
        header = f"str of {_many(len(value), 'character')}"
        shown = value
    else:
        header = f"{kind} of {_many(len(value), 'byte')}"
        shown = repr(bytes(value[:4000]))
    if len(value) <= 80 and "\n" not in shown:
        return kind, f"{header}: {shown!r}", "", None
    return kind, header + ":", fenced(cut_to_tokens(shown, budget - 10), "text"), None


# -- code -------------------------------------------------------------------------------------


def _module(module: types.ModuleType, budget: int) -> tuple[str, str, str, Any]:
    version = getattr(module, "__version__", None)
    header = f"module {module.__name__}" + (f" (version {version})" if version else "")
    lines = []
    doc = _first_paragraph(inspect.getdoc(module))
    if doc:
        lines.append(doc)
    names = getattr(module, "__all__", None)
    what = "__all__"
    if not isinstance(names, list | tuple):
        names = sorted(n for n in vars(module) if not n.startswith("_"))
        what = "public names"
    names = [str(n) for n in names]
    if names:
        shown = ", ".join(names[:60]) + (
            f", … ({len(names) - 60:,} more)" if len(names) > 60 else ""
        )
        lines.append(f"{what} ({len(names):,}): {shown}")
    return "module", header, cut_to_tokens("\n".join(lines), budget), None


def _class(cls: type, budget: int) -> tuple[str, str, str, Any]:
    bases = [b.__qualname__ for b in cls.__bases__ if b is not object]
    header = (
        f"class {cls.__module__}.{cls.__qualname__}"
        if cls.__module__
        not in (
            "__main__",
            "builtins",
        )
        else f"class {cls.__qualname__}"
    )
    if bases:
        header += f"({', '.join(bases)})"
    source = _notebook_source(cls, budget)
    if source:
        return "class", header, source, None
    lines = []
    signature = _signature(cls)
    if signature:
        lines.append(f"constructor: {cls.__name__}{signature}")
    doc = inspect.getdoc(cls)
    if doc:
        lines.append(_first_paragraph(doc))
    methods = [
        f"{name}{_signature(member) or '(…)'}"
        for name, member in sorted(vars(cls).items())
        if not name.startswith("_") and callable(member)
    ]
    if methods:
        lines.append("methods: " + ", ".join(methods[:_LISTED]))
    return "class", header, cut_to_tokens("\n".join(lines), budget), None


def _function(function: Any, budget: int) -> tuple[str, str, str, Any]:
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", None)
    name = name or type(function).__name__
    kind = "method" if inspect.ismethod(function) else "function"
    module = getattr(function, "__module__", None)
    where = f"{module}." if module and module not in ("__main__", "builtins") else ""
    header = f"{kind} {where}{name}{_signature(function) or '(…)'}"
    source = _notebook_source(function, budget)
    if source:
        return kind, header, source, None
    doc = inspect.getdoc(function) or ""
    return kind, header, cut_to_tokens(doc.strip(), budget) if doc else "", None


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _notebook_source(obj: Any, budget: int) -> str:
    """The source of a function or class written in the notebook (or the user's own files),
    when it fits the budget; "" for library code, whose docstring says more."""
    from .traceback import is_library_path

    target = inspect.unwrap(obj) if callable(obj) else obj
    try:
        path = inspect.getsourcefile(target) or inspect.getfile(target)
    except (TypeError, OSError):
        return ""
    if is_library_path(path) and not path.startswith(("<ipython-input-", "<ipykernel")):
        return ""
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        return ""
    text = fenced(source, "python")
    return text if text_tokens(text) <= budget else ""


def _is_function_like(obj: Any) -> bool:
    return inspect.isroutine(obj) or isinstance(obj, functools.partial)


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return doc.strip().split("\n\n", 1)[0].strip()


# -- containers and other objects -------------------------------------------------------------


def _is_mapping(obj: Any) -> bool:
    from collections.abc import Mapping

    return isinstance(obj, Mapping)


def _mapping(mapping: Any, budget: int) -> tuple[str, str, str, Any]:
    kind = _type_name(mapping)
    keys = list(mapping.keys())
    header = f"{kind} of {_many(len(keys), 'key')}"
    lines = []
    if keys:
        shown = ", ".join(_short(repr(k), 40) for k in keys[:_LISTED])
        more = f", … ({len(keys) - _LISTED:,} more)" if len(keys) > _LISTED else ""
        lines.append(f"keys: {shown}{more}")
    sample = _without_secrets(dict(mapping) if not isinstance(mapping, dict) else mapping)
    lines.append(_block_text(sample, budget - text_tokens("\n".join(lines)), "sample"))
    return kind, header, "\n".join(lines), None


def _sequence(items: Any, budget: int) -> tuple[str, str, str, Any]:
    kind = type(items).__name__
    if isinstance(items, range):
        return kind, repr(items), "", None
    counts: dict[str, int] = {}
    for item in items:
        name = type(item).__name__
        counts[name] = counts.get(name, 0) + 1
    types_seen = ", ".join(f"{name} ×{n:,}" for name, n in sorted(counts.items()))
    header = f"{kind} of {_many(len(items), 'item')}" + (f" ({types_seen})" if counts else "")
    sample = _without_secrets(items)
    return kind, header, _block_text(sample, budget, "sample"), None


def _other(obj: Any, budget: int) -> tuple[str, str, str, Any]:
    kind = _type_name(obj)
    lines = [f"repr: {_short(_safe_repr(obj), 400)}"]
    fields = _fields(obj)
    if fields:
        sample = _without_secrets(fields)
        lines.append(_block_text(sample, budget - text_tokens(lines[0]), "attributes"))
    return kind, kind, "\n".join(lines), None


def _fields(obj: Any) -> dict[str, Any]:
    """The data of an object: pydantic fields, dataclass fields, or public attributes."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and hasattr(type(obj), "model_fields"):
        try:
            data = dump(mode="json")
            if isinstance(data, dict):
                return data
        except Exception:
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
    try:
        attributes = vars(obj)
    except TypeError:
        return {}
    return {k: v for k, v in attributes.items() if not k.startswith("_")}


def _without_secrets(value: Any, depth: int = 0) -> Any:
    """A copy of a dict/list sample whose credential-named keys show no value."""
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {
            k: HIDDEN if isinstance(k, str) and secret_name(k) else _without_secrets(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_without_secrets(v, depth + 1) for v in value)
    return value


def _safe_repr(obj: Any) -> str:
    try:
        return repr(obj)
    except Exception as exc:
        return f"<{_type_name(obj)}: repr raised {type(exc).__name__}>"


def _type_name(obj: Any) -> str:
    cls = type(obj)
    module = cls.__module__
    # A class made inside a function has no name the model could use beyond its own.
    name = cls.__name__ if "<locals>" in cls.__qualname__ else cls.__qualname__
    if not module or module in ("builtins", "__main__") or name != cls.__qualname__:
        return name
    return f"{module.split('.')[0]}.{name}"


def _column(name: Any) -> str:
    return name if isinstance(name, str) else repr(name)


def _many(count: int, what: str) -> str:
    plural = "axes" if what == "axis" else f"{what}s"
    return f"{count:,} {what if count == 1 else plural}"


def _number(value: Any) -> str:
    return f"{float(value):.6g}"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
