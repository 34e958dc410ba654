"""JSON values checked against JSON schemas by the ``jsonschema`` library, not by code of ours.

``Validator(schema)`` checks the schema once (a ``SchemaError`` if it cannot be used) and then
names every bad value by its JSON path: ``$.items[2].price: -1 is less than the minimum of 0``.

Decisions worth knowing:

- The dialect is the one the schema declares in ``$schema``, else Draft 2020-12; formats
  (``date-time``, ``email``, ``uri``…) are checked by the library's format checker for every
  format it knows; others are annotations.
- ``$ref`` resolves within the schema only: a reference to anything else is a SchemaError when
  the validator is built, and nothing is ever fetched.
- A schema the library cannot apply (a failure inside it while validating) is a SchemaError too,
  never an AttributeError or OverflowError and never a silent pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from .exceptions import NbchatError

# jsonschema and referencing are imported where a schema is first checked, not with this module:
# importing jsonschema loads the format checkers of every optional package installed, and with
# Jupyter's rfc3987-syntax (a Lark grammar built at import) that took 1.1 s of the first request
# of every kernel, schemas or none.

__all__ = ["MAX_ERRORS", "SchemaError", "Validator", "json_path"]

#: At most this many problems are listed for one value.
MAX_ERRORS = 10

# Keywords whose value is a schema, a list of schemas, or a map of names to schemas (every draft
# jsonschema knows): where references and nested resources can be.
_ONE = (
    "additionalItems",
    "additionalProperties",
    "contains",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_MAP = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
# Checking a schema against its metaschema takes ~30 ms; one schema is checked again and again.
_PROBLEMS: dict[tuple[Any, str], str | None] = {}


class SchemaError(NbchatError, ValueError):
    """A JSON schema nbchat cannot use: not valid JSON Schema, or a ``$ref`` it cannot resolve."""


class Validator:
    """One JSON schema, checked once, that values are validated against.

    ``errors(value)`` lists what does not match as ``path: message`` strings; ``is_valid(value,
    at=node)`` asks about a part of the schema (its references resolve within the whole);
    ``lookup(ref)`` is the schema a reference points to.
    """

    def __init__(self, schema: Any) -> None:
        if not isinstance(schema, dict | bool):
            raise SchemaError(f"a JSON schema must be a dict, not {type(schema).__name__}")
        try:
            self._build(schema)
        except SchemaError:
            raise
        except Exception as exc:  # the library failing on a strange schema ("$schema": 5, …)
            raise SchemaError(f"not a usable JSON schema: {_describe(exc)}") from None

    def _build(self, schema: Any) -> None:
        import jsonschema.validators
        import referencing.jsonschema

        dialect = schema.get("$schema") if isinstance(schema, dict) else None
        if dialect is not None and not isinstance(dialect, str):
            raise SchemaError(
                f"not a valid JSON schema: $schema must be a string, not {type(dialect).__name__}"
            )
        cls: Any = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )
        problem = _problem(cls, schema)
        if problem:
            raise SchemaError(problem)
        self.schema = schema
        # The dialect of the validator chosen, so an unknown "$schema" reads as the default.
        specification = referencing.jsonschema.specification_with(
            cls.META_SCHEMA.get("$schema") or cls.META_SCHEMA["$id"],
            default=referencing.jsonschema.DRAFT202012,
        )
        resource = specification.create_resource(schema)
        # A registry of this schema alone: a reference to anything else is never fetched.
        registry: referencing.Registry[Any] = referencing.Registry()
        self._resolver = registry.resolver_with_root(resource)
        self._validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
        _check_references(schema, self._resolver, "$")

    def lookup(self, ref: str) -> Any:
        """The schema that ``ref`` points to (from the root); SchemaError if nothing is there."""
        import referencing.exceptions

        try:
            return self._resolver.lookup(ref).contents
        except referencing.exceptions.Unresolvable:
            raise SchemaError(f"the schema refers to {ref!r}, which it does not define") from None

    def is_valid(self, value: Any, at: Any = None) -> bool:
        """Whether ``value`` matches the schema, or the part ``at`` of it."""
        validator = self._validator if at is None else self._validator.evolve(schema=at)
        try:
            return bool(validator.is_valid(value))
        except RecursionError:
            return False
        except Exception as exc:
            raise _unusable(exc) from None

    def errors(self, value: Any) -> list[str]:
        """What in ``value`` does not match, as ``path: message`` strings (at most MAX_ERRORS)."""
        import jsonschema.exceptions

        found: list[str] = []
        try:
            for error in self._validator.iter_errors(value):
                # An anyOf/oneOf failure says little by itself: the branch that came closest does.
                best = jsonschema.exceptions.best_match([error]) or error
                found.append(f"{json_path(best.absolute_path)}: {_short(best.message)}")
                if len(found) >= MAX_ERRORS:
                    break
        except RecursionError:
            found.append("$: the value is nested too deeply to check")
        except Exception as exc:
            raise _unusable(exc) from None
        return found


def json_path(parts: Sequence[Any] | Iterator[Any]) -> str:
    """``$.items[2].price`` for the parts ``("items", 2, "price")``; odd keys are quoted."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return path


def _problem(cls: Any, schema: Any) -> str | None:
    """What makes ``schema`` unusable, or None; remembered by its JSON text (the check is slow)."""
    try:
        key = (cls, json.dumps(schema, sort_keys=True))
    except (TypeError, ValueError):
        return _check(cls, schema)
    if key not in _PROBLEMS:
        if len(_PROBLEMS) >= 256:
            _PROBLEMS.clear()
        _PROBLEMS[key] = _check(cls, schema)
    return _PROBLEMS[key]


def _check(cls: Any, schema: Any) -> str | None:
    import jsonschema.exceptions

    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        return f"not a valid JSON schema: {_schema_path(exc.absolute_path)}: {_short(exc.message)}"
    except Exception as exc:  # the library failing on a strange schema (e.g. far too deep)
        return f"not a usable JSON schema: {_describe(exc)}"
    return None


def _schema_path(parts: Any) -> str:
    path = json_path(parts)
    return "the top level" if path == "$" else path


def _check_references(node: Any, resolver: Any, path: str, depth: int = 0) -> None:
    """Every ``$ref`` resolves within the schema; a nested ``$id`` starts a new base."""
    import referencing.exceptions
    import referencing.jsonschema

    if not isinstance(node, dict) or depth > 200:
        return
    if "$id" in node and depth:
        sub = referencing.Resource.from_contents(
            node, default_specification=referencing.jsonschema.DRAFT202012
        )
        resolver = resolver.in_subresource(sub)
    ref = node.get("$ref")
    if isinstance(ref, str):
        try:
            resolver.lookup(ref)
        except referencing.exceptions.Unresolvable:
            where = "the top level" if path == "$" else path
            raise SchemaError(
                f"{where} refers to {ref!r}, which this schema does not define"
            ) from None
    for key in _ONE:
        if isinstance(node.get(key), dict):
            _check_references(node[key], resolver, f"{path}.{key}", depth + 1)
    for key in _MANY:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                _check_references(sub, resolver, f"{path}.{key}[{i}]", depth + 1)
    for key in _MAP:
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                _check_references(sub, resolver, f"{path}.{key}.{name}", depth + 1)


def _unusable(exc: Exception) -> SchemaError:
    return SchemaError(f"the schema could not be applied: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return _short(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
