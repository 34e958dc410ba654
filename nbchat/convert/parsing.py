"""A structured reply parsed and validated: a model instance, a checked value, or an error.

``parse_reply()`` turns the reply text into what was asked for, or raises
:class:`StructuredOutputError` naming why (refusal, empty, cut off, invalid JSON, mismatch).

Decisions worth knowing:

- A ``null`` the model gives for a property that was optional in the original schema and does
  not itself accept null is dropped before validation (strict mode made the property required
  and nullable), so a model field's default applies and a dict schema sees it absent.
- Pydantic models and types are validated by pydantic, into instances; dict schemas by the
  ``jsonschema`` library (Draft 2020-12 unless the schema says otherwise, formats checked).
  Each error names the JSON path of the bad value: ``$.items[2].price: …``.
- A reply that is one Markdown code block (```` ```json … ``` ````, as small models write) is
  accepted: the fence carries no data, and rejecting it would only fail usable answers. Any
  other text around the JSON is an error, and so are ``NaN``/``Infinity`` (not JSON) and a number
  too large for a float.
"""

from __future__ import annotations

import json as _json
import math
import re
from typing import Any

from ..protocol.exceptions import NbchatError
from ..protocol.schema import drop_optional_nulls
from ..protocol.validation import MAX_ERRORS, json_path
from .formats import Target

__all__ = ["StructuredOutputError", "parse_reply"]

_FENCE = re.compile(r"\A```[ \t]*(?:json|JSON|json5)?[ \t]*\n(.*?)\n?[ \t]*```\Z", re.DOTALL)


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
    schema mismatch — never returns them as if valid — and SchemaError for a schema that cannot
    be used. Pass the choice's ``finish_reason`` to tell a reply cut off by max_tokens from a
    malformed one.
    """
    if refusal:
        raise StructuredOutputError(
            f"the model refused: {_one_line(refusal)}", reason="refusal", raw=refusal
        )
    if content is None or not content.strip():
        if finish_reason == "length":
            raise StructuredOutputError(
                "the reply hit max_tokens before any JSON was written",
                reason="truncated",
                raw=content,
            )
        raise StructuredOutputError("the reply is empty", reason="empty", raw=content)
    # The schema first: a schema that cannot be used is the caller's error, whatever the reply.
    target = Target(schema_or_model) if schema_or_model is not None else None
    value = _load(content, finish_reason)
    if target is None:
        return value
    if target.wrap_key is not None:
        if not isinstance(value, dict) or target.wrap_key not in value:
            raise _mismatch([f"$: expected an object with the key {target.wrap_key!r}"], content)
        value = value[target.wrap_key]
    value = drop_optional_nulls(value, target.validator)
    if target.model is not None or target.adapter is not None:
        value, errors = _validate_with_pydantic(target, value)
    else:
        errors = target.validator.errors(value)
    if errors:
        if target.wrap_key is not None:
            # Paths name the reply as the model wrote it, wrapper included.
            errors = [f"$.{target.wrap_key}{error[1:]}" for error in errors]
        raise _mismatch(errors, content)
    return value


def _load(content: str, finish_reason: str | None) -> Any:
    text = _strip_fence(content.strip())
    try:
        value = _json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise StructuredOutputError(
            "the reply's JSON is nested too deeply to read", reason="invalid_json", raw=content
        ) from None
    except ValueError as exc:
        if finish_reason == "length":
            raise StructuredOutputError(
                "the reply was cut off at max_tokens, so its JSON is incomplete; raise max_tokens",
                reason="truncated",
                raw=content,
            ) from None
        if isinstance(exc, _json.JSONDecodeError):
            detail = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        else:
            detail = str(exc)
        raise StructuredOutputError(
            f"the reply is not valid JSON: {detail}", reason="invalid_json", raw=content
        ) from None
    where = _non_finite(value)
    if where is not None:
        raise StructuredOutputError(
            f"the reply is not usable JSON: the number at {where} is too large for a float",
            reason="invalid_json",
            raw=content,
        )
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _non_finite(value: Any) -> str | None:
    """The JSON path of a number that overflowed to infinity (``1e999``), if any."""
    pending: list[tuple[Any, tuple[Any, ...]]] = [(value, ())]
    while pending:
        item, parts = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return json_path(parts)
        if isinstance(item, dict):
            pending.extend((sub, (*parts, key)) for key, sub in item.items())
        elif isinstance(item, list):
            pending.extend((sub, (*parts, i)) for i, sub in enumerate(item))
    return None


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text)
    return match.group(1).strip() if match else text


def _validate_with_pydantic(target: Target, value: Any) -> tuple[Any, list[str]]:
    """The validated value, or the problems found (``path: message``)."""
    from pydantic import ValidationError

    try:
        if target.model is not None:
            return target.model.model_validate(value), []
        return target.adapter.validate_python(value), []
    except ValidationError as exc:
        errors = [
            f"{json_path(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False)[:MAX_ERRORS]
        ]
        return None, errors


def _mismatch(errors: list[str], raw: str) -> StructuredOutputError:
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return StructuredOutputError(
        f"the reply does not match the schema: {errors[0]}{more}",
        reason="schema_mismatch",
        raw=raw,
        errors=errors,
    )


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
