"""Structured output: the ``response_format`` for JSON mode or a schema, and the reply parsed back.

A pydantic model class, any type pydantic can describe (``list[Model]``, a dataclass…) or a
JSON-schema dict goes in; a validated object comes out, or a :class:`StructuredOutputError`.

Decisions worth knowing:

- Schemas are sent strict (see ``_schema.strict_schema``): every property required, optional
  ones nullable. A ``null`` the model gives for a field that was optional in the original schema
  and does not itself accept null is dropped before validation, so the field's default applies.
- The root of a ``json_schema`` format must be an object: a schema of another type (a list of
  records, say) is wrapped as ``{"items": …}`` (arrays) or ``{"value": …}`` and unwrapped again
  by :func:`parse_reply`.
- A reply that is one Markdown code block (```` ```json … ``` ````, as small models write) is
  accepted: the fence carries no data, and rejecting it would only fail usable answers. Any
  other text around the JSON is an error.
- Dict schemas are validated by a small validator of our own (type, enum, const, properties,
  required, additionalProperties, items, prefixItems, anyOf/oneOf/allOf/not, $ref, string,
  number and array bounds, pattern); other keywords (format, …) are not checked.
"""

from __future__ import annotations

import copy
import json as _json
import math
import re
from typing import Any

from ..protocol.exceptions import NbchatError, first_line
from ..protocol.schema import StrictSchemaError, strict_schema
from ..protocol.schema import accepts_null as _accepts_null
from ..protocol.schema import resolve_ref as _resolve

__all__ = [
    "StructuredOutputError",
    "parse_reply",
    "response_format_for",
    "schema_of",
    "to_frame",
    "validate_json",
]

_FENCE = re.compile(r"\A```[ \t]*(?:json|JSON|json5)?[ \t]*\n(.*?)\n?[ \t]*```\Z", re.DOTALL)
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")
_MAX_ERRORS = 10


class StructuredOutputError(NbchatError, ValueError):
    """The reply is not the structured output that was asked for.

    ``reason`` is one of ``refusal``, ``empty``, ``truncated``, ``invalid_json``,
    ``schema_mismatch`` or ``not_records``; ``raw`` is the reply text (or the refusal);
    ``errors`` lists what did not match, as ``path: message`` strings.
    """

    def __init__(
        self, message: str, *, reason: str, raw: str | None = None, errors: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.raw = raw
        self.errors = errors or []


# ---------------------------------------------------------------------------------------------
# Schemas


class _Target:
    """What a schema or model argument stands for: its schema, name, and how to validate."""

    def __init__(self, spec: Any, name: str | None) -> None:
        self.model: Any = None
        self.adapter: Any = None
        if isinstance(spec, dict):
            self.schema = copy.deepcopy(spec)
            default_name = spec.get("title") if isinstance(spec.get("title"), str) else None
        else:
            self.schema, default_name = self._from_type(spec)
        self.name = _clean_name(name or default_name or "response")
        self.wrap_key = self._wrap_key(self.schema)

    def _from_type(self, spec: Any) -> tuple[dict[str, Any], str | None]:
        from pydantic import BaseModel, TypeAdapter

        if isinstance(spec, BaseModel):
            raise StrictSchemaError(
                f"pass the model class {type(spec).__name__}, not an instance of it"
            )
        try:
            if isinstance(spec, type) and issubclass(spec, BaseModel):
                self.model = spec
                return spec.model_json_schema(), spec.__name__
            self.adapter = TypeAdapter(spec)
            schema = self.adapter.json_schema()
        except StrictSchemaError:
            raise
        except Exception as exc:
            shown = getattr(spec, "__name__", None) or repr(spec)
            detail = " ".join(str(exc).split())[:200]
            raise StrictSchemaError(f"cannot make a JSON schema of {shown}: {detail}") from None
        return schema, getattr(spec, "__name__", None)

    @staticmethod
    def _wrap_key(schema: dict[str, Any]) -> str | None:
        root = schema
        if "$ref" in root and "properties" not in root:
            try:
                root = _resolve(root, schema)
            except KeyError:
                return None
        kind = root.get("type")
        if kind == "object" or "properties" in root:
            return None
        return "items" if kind == "array" else "value"

    def wire_schema(self) -> dict[str, Any]:
        """The schema as sent: wrapped in an object if its root is not one."""
        if self.wrap_key is None:
            return self.schema
        inner = {k: v for k, v in self.schema.items() if k not in ("$defs", "definitions")}
        wrapped: dict[str, Any] = {
            "type": "object",
            "properties": {self.wrap_key: inner},
            "required": [self.wrap_key],
            "additionalProperties": False,
        }
        for key in ("$defs", "definitions"):
            if key in self.schema:
                wrapped[key] = self.schema[key]
        return wrapped


def _clean_name(name: str) -> str:
    return _NAME_CHARS.sub("_", name).strip("_")[:64] or "response"


def schema_of(schema_or_model: Any, *, strict: bool = True) -> dict[str, Any]:
    """The JSON schema a ``json_schema`` response format would send for ``schema_or_model``."""
    target = _Target(schema_or_model, None)
    wire = target.wire_schema()
    return strict_schema(wire) if strict else copy.deepcopy(wire)


def response_format_for(
    schema_or_model: Any = None,
    *,
    json: bool = False,
    name: str | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """The ``response_format`` request field.

    ``{"type": "json_object"}`` for ``json=True`` alone; for a model class, type or JSON-schema
    dict, ``{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`` with a strict
    schema (``strict=False`` sends the schema as it is, for shapes strict mode cannot express).
    Raises ``StrictSchemaError`` (a ValueError) for a schema strict mode cannot express.
    """
    if schema_or_model is None:
        if not json:
            raise ValueError("response_format_for needs a schema or model, or json=True")
        return {"type": "json_object"}
    target = _Target(schema_or_model, name)
    wire = target.wire_schema()
    schema = strict_schema(wire) if strict else copy.deepcopy(wire)
    return {
        "type": "json_schema",
        "json_schema": {"name": target.name, "strict": strict, "schema": schema},
    }


# ---------------------------------------------------------------------------------------------
# Parsing replies


def parse_reply(
    content: str | None,
    refusal: str | None = None,
    *,
    schema_or_model: Any = None,
    finish_reason: str | None = None,
) -> Any:
    """Parse and validate a structured reply.

    Returns a model instance for a model class, the validated value for another type, and the
    parsed JSON otherwise (checked against a dict schema). Raises
    :class:`StructuredOutputError` for a refusal, an empty or cut-off reply, invalid JSON or a
    schema mismatch — never returns them as if valid. Pass the choice's ``finish_reason`` to
    tell a reply cut off by max_tokens from a malformed one.
    """
    if refusal:
        raise StructuredOutputError(
            f"the model refused: {first_line(refusal)}", reason="refusal", raw=refusal
        )
    if content is None or not content.strip():
        if finish_reason == "length":
            raise StructuredOutputError(
                "the reply hit max_tokens before any JSON was written",
                reason="truncated",
                raw=content,
            )
        raise StructuredOutputError("the reply is empty", reason="empty", raw=content)
    text = _strip_fence(content.strip())
    try:
        value = _json.loads(text)
    except ValueError as exc:
        where = (
            f" at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, _json.JSONDecodeError)
            else ""
        )
        message = exc.msg if isinstance(exc, _json.JSONDecodeError) else str(exc)
        if finish_reason == "length":
            raise StructuredOutputError(
                "the reply was cut off at max_tokens, so its JSON is incomplete; raise max_tokens",
                reason="truncated",
                raw=content,
            ) from None
        raise StructuredOutputError(
            f"the reply is not valid JSON: {message}{where}", reason="invalid_json", raw=content
        ) from None
    if schema_or_model is None:
        return value
    target = _Target(schema_or_model, None)
    if target.wrap_key is not None:
        if not isinstance(value, dict) or target.wrap_key not in value:
            raise _mismatch([f"$: expected an object with the key {target.wrap_key!r}"], content)
        value = value[target.wrap_key]
    value = _drop_optional_nulls(value, target.schema, target.schema)
    if target.model is not None or target.adapter is not None:
        return _validate_with_pydantic(target, value, content)
    errors = validate_json(value, target.schema)
    if errors:
        raise _mismatch(errors, content)
    return value


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _validate_with_pydantic(target: _Target, value: Any, raw: str) -> Any:
    from pydantic import ValidationError

    try:
        if target.model is not None:
            return target.model.model_validate(value)
        return target.adapter.validate_python(value)
    except ValidationError as exc:
        errors = []
        for error in exc.errors(include_url=False)[:_MAX_ERRORS]:
            path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
            errors.append(f"{path}: {error['msg']}")
        raise _mismatch(errors, raw) from None


def _mismatch(errors: list[str], raw: str) -> StructuredOutputError:
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return StructuredOutputError(
        f"the reply does not match the schema: {errors[0]}{more}",
        reason="schema_mismatch",
        raw=raw,
        errors=errors,
    )


def _drop_optional_nulls(value: Any, node: Any, root: dict[str, Any], depth: int = 0) -> Any:
    """Remove ``null`` given for a property that was optional and does not accept null.

    Strict mode made such a property required-but-nullable; null there means "not given".
    """
    if depth > 64 or not isinstance(node, dict):
        return value
    try:
        node = _resolve(node, root)
    except KeyError:
        return value
    if isinstance(value, dict):
        for branch in _branches(node, root):
            properties = branch.get("properties")
            if not isinstance(properties, dict):
                continue
            required = set(branch.get("required", []))
            result = {}
            for key, item in value.items():
                sub = properties.get(key)
                if sub is None:
                    result[key] = item
                elif item is None and key not in required and not _accepts_null(sub, root):
                    continue
                else:
                    result[key] = _drop_optional_nulls(item, sub, root, depth + 1)
            return result
    if isinstance(value, list):
        for branch in _branches(node, root):
            items = branch.get("items")
            if isinstance(items, dict):
                return [_drop_optional_nulls(item, items, root, depth + 1) for item in value]
    return value


def _branches(node: dict[str, Any], root: dict[str, Any]) -> list[dict[str, Any]]:
    """The node itself and the alternatives of its anyOf / oneOf / allOf, refs resolved."""
    found = [node]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, []):
            if isinstance(sub, dict):
                try:
                    found.append(_resolve(sub, root))
                except KeyError:
                    continue
    return found


# ---------------------------------------------------------------------------------------------
# A small JSON-schema validator


def validate_json(value: Any, schema: dict[str, Any]) -> list[str]:
    """What in ``value`` does not match ``schema``, as ``path: message`` strings (at most 10)."""
    errors: list[str] = []
    _check(value, schema, schema, "$", errors)
    return errors[:_MAX_ERRORS]


_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _type_name(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _same(a: Any, b: Any) -> bool:
    """JSON equality: True is not 1, and 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if _TYPES["number"](a) and _TYPES["number"](b):
        return a == b
    return type(a) is type(b) and a == b


def _check(value: Any, schema: Any, root: dict[str, Any], path: str, errors: list[str]) -> None:
    if len(errors) >= _MAX_ERRORS or schema is True:
        return
    if schema is False:
        errors.append(f"{path}: no value is allowed here")
        return
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        try:
            schema = _resolve(schema, root)
        except KeyError:
            errors.append(f"{path}: the schema refers to {schema['$ref']!r}, which is not defined")
            return
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPES.get(k, lambda v: True)(value) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}, got {_type_name(value)}")
            return
    if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
        options = ", ".join(_json.dumps(o, ensure_ascii=False) for o in schema["enum"][:10])
        errors.append(f"{path}: {_short(value)} is not one of {options}")
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{path}: expected {_json.dumps(schema['const'], ensure_ascii=False)}")
    _check_combinators(value, schema, root, path, errors)
    if isinstance(value, str):
        _check_string(value, schema, path, errors)
    elif _TYPES["number"](value):
        _check_number(value, schema, path, errors)
    elif isinstance(value, list):
        _check_array(value, schema, root, path, errors)
    elif isinstance(value, dict):
        _check_object(value, schema, root, path, errors)


def _check_combinators(
    value: Any, schema: dict[str, Any], root: dict[str, Any], path: str, errors: list[str]
) -> None:
    for sub in schema.get("allOf", []):
        _check(value, sub, root, path, errors)
    if "anyOf" in schema or "oneOf" in schema:
        key = "anyOf" if "anyOf" in schema else "oneOf"
        passing = 0
        for sub in schema[key]:
            trial: list[str] = []
            _check(value, sub, root, path, trial)
            passing += not trial
        if passing == 0:
            errors.append(f"{path}: {_short(value)} matches none of the allowed shapes")
        elif key == "oneOf" and passing > 1:
            errors.append(f"{path}: {_short(value)} matches more than one of the oneOf shapes")
    if "not" in schema:
        trial = []
        _check(value, schema["not"], root, path, trial)
        if not trial:
            errors.append(f"{path}: {_short(value)} matches a shape that is not allowed")


def _check_string(value: str, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{path}: longer than {schema['maxLength']} characters")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                errors.append(f"{path}: {_short(value)} does not match {pattern!r}")
        except re.error:
            pass  # A pattern Python cannot compile is not the reply's fault.


def _check_number(value: float, schema: dict[str, Any], path: str, errors: list[str]) -> None:
    bounds = (
        ("minimum", lambda v, b: v >= b, "less than"),
        ("maximum", lambda v, b: v <= b, "more than"),
        ("exclusiveMinimum", lambda v, b: v > b, "at most"),
        ("exclusiveMaximum", lambda v, b: v < b, "at least"),
    )
    for key, ok, words in bounds:
        bound = schema.get(key)
        if _TYPES["number"](bound) and not ok(value, bound):
            errors.append(f"{path}: {value} is {words} {bound}")
    step: Any = schema.get("multipleOf")  # any JSON: checked to be a number before use
    if _TYPES["number"](step) and step > 0:
        ratio = value / step
        if not math.isclose(ratio, round(ratio), abs_tol=1e-9):
            errors.append(f"{path}: {value} is not a multiple of {step}")


def _check_array(
    value: list[Any], schema: dict[str, Any], root: dict[str, Any], path: str, errors: list[str]
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(f"{path}: fewer than {schema['minItems']} items")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: more than {schema['maxItems']} items")
    prefix = schema.get("prefixItems", [])
    for i, sub in enumerate(prefix[: len(value)]):
        _check(value[i], sub, root, f"{path}[{i}]", errors)
    items = schema.get("items")
    if isinstance(items, dict | bool):
        for i in range(len(prefix), len(value)):
            _check(value[i], items, root, f"{path}[{i}]", errors)
    if schema.get("uniqueItems"):
        for i in range(len(value)):
            if any(_same(value[i], value[j]) for j in range(i)):
                errors.append(f"{path}[{i}]: repeats an earlier item")
                break


def _check_object(
    value: dict[str, Any],
    schema: dict[str, Any],
    root: dict[str, Any],
    path: str,
    errors: list[str],
) -> None:
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{path}: missing required property {key!r}")
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in properties:
            _check(item, properties[key], root, where, errors)
        elif extra is False:
            errors.append(f"{path}: unexpected property {key!r}")
        elif isinstance(extra, dict):
            _check(item, extra, root, where, errors)


def _short(value: Any) -> str:
    text = _json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:60] + "…"


# ---------------------------------------------------------------------------------------------
# Records to a DataFrame


def to_frame(parsed: Any) -> Any:
    """A pandas DataFrame of a parsed list of records.

    Accepts a list of dicts or models (nested objects become ``a.b`` columns), a model or dict
    whose only list field holds the records, or a single record (one row).
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_frame needs pandas: pip install pandas") from None
    records = _records(parsed)
    if records is None:
        raise StructuredOutputError(
            f"cannot make a table of a {type(parsed).__name__}; expected a list of records",
            reason="not_records",
        )
    if records and not all(isinstance(r, dict) for r in records):
        return pd.DataFrame({"value": records})
    return pd.json_normalize(records) if records else pd.DataFrame()


def _records(parsed: Any) -> list[Any] | None:
    plain = _plain(parsed)
    if isinstance(plain, list):
        return plain
    if isinstance(plain, dict):
        lists = [v for v in plain.values() if isinstance(v, list)]
        if len(lists) == 1 and len(plain) == 1:
            return lists[0]
        if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]) and lists[0]:
            return lists[0]
        return [plain]
    return None


def _plain(value: Any) -> Any:
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
