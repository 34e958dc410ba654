"""A tool's JSON schema from its argument model: tidied to cost fewer tokens, strict when it can be.

``model_schema()`` is the plain schema (no titles, described ``$ref``s written out, unused
definitions gone); ``choose_strict()`` picks the schema sent and whether it is strict.
"""

from __future__ import annotations

import copy
import json
import re
import warnings
from typing import Any

import pydantic
from pydantic import BaseModel

from ..protocol.exceptions import first_line
from ..protocol.schema import (
    SchemaError,
    StrictSchemaError,
    merged,
    nullable,
    resolve_ref,
    strict_schema,
)
from ..protocol.validation import Validator
from .toolerrors import ToolDefinitionError

__all__ = ["choose_strict", "model_schema"]

_ANNOTATIONS = ("description", "default", "title", "examples")


def model_schema(model: type[BaseModel], name: str, param_docs: dict[str, str]) -> dict[str, Any]:
    """The plain (non-strict) parameters schema of ``model``; ``param_docs`` fill descriptions."""
    try:
        with warnings.catch_warnings():
            # A default JSON cannot show is simply left out of the schema.
            warnings.simplefilter("ignore", pydantic.json_schema.PydanticJsonSchemaWarning)
            schema = model.model_json_schema()
        validator = Validator(schema)
    except Exception as exc:
        raise ToolDefinitionError(f"cannot build a schema for {name}: {first_line(exc)}") from None
    schema.pop("title", None)
    # The description travels as the tool's own description, not twice.
    schema.pop("description", None)
    for key, sub in schema.get("properties", {}).items():
        if key in param_docs and isinstance(sub, dict) and "description" not in sub:
            sub["description"] = param_docs[key]
    _inline_refs_with_siblings(schema, validator)
    _drop_unused_defs(schema)
    _tidy(schema)
    return schema


def _inline_refs_with_siblings(node: Any, validator: Validator) -> None:
    """Write ``{"$ref": X, "description": ...}`` out in full where that keeps its meaning.

    Pydantic emits that shape for a described model or enum parameter, and strict mode on
    OpenAI rejects a ``$ref`` with sibling keywords.
    """
    if isinstance(node, list):
        for item in node:
            _inline_refs_with_siblings(item, validator)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if isinstance(value, dict) and "$ref" in value and len(value) > 1:
            target = resolve_ref(value, validator)
            siblings = {k: v for k, v in value.items() if k != "$ref"}
            combined = merged(copy.deepcopy(target), siblings) if isinstance(target, dict) else None
            if combined is not None and target is not value:
                node[key] = combined
        elif key != "$defs" or node is validator.schema:
            _inline_refs_with_siblings(value, validator)


def _drop_unused_defs(schema: dict[str, Any]) -> None:
    defs = schema.get("$defs")
    if not defs:
        return
    used: set[str] = set()
    pending = [{k: v for k, v in schema.items() if k != "$defs"}]
    while pending:
        text = json.dumps(pending.pop())
        for name in re.findall(r'"#/\$defs/([^"]+)"', text):
            if name not in used and name in defs:
                used.add(name)
                pending.append(defs[name])
    for name in list(defs):
        if name not in used:
            del defs[name]
    if not defs:
        del schema["$defs"]


def choose_strict(
    base: dict[str, Any], strict: bool | None, name: str
) -> tuple[dict[str, Any], bool]:
    """The parameters schema to send and whether it is strict.

    ``strict=None`` is strict when the schema allows it; ``True`` on a schema that does not is a
    ToolDefinitionError; ``False`` sends ``base`` as it is.
    """
    if strict is False:
        return copy.deepcopy(base), False
    try:
        strict_version = strict_schema(base)
        problem = _untyped_part(strict_version, "$")
        if problem:
            raise StrictSchemaError(
                f"{problem} accepts any value, which strict mode cannot express; "
                "give it a type or turn strict off"
            )
    except SchemaError as exc:
        if strict:
            raise ToolDefinitionError(f"{name} cannot be strict: {exc}") from None
        return copy.deepcopy(base), False
    return strict_version, True


def _untyped_part(node: Any, path: str) -> str | None:
    """Where a schema says nothing about a value (``Any``), or None."""
    if not isinstance(node, dict):
        return None
    typed = ("type", "$ref", "anyOf", "allOf", "oneOf", "enum", "const")
    if not any(key in node for key in typed):
        return "the top level" if path == "$" else path
    children: list[tuple[str, Any]] = []
    children += [(f"{path}.{key}", sub) for key, sub in node.get("properties", {}).items()]
    children += [(f"{path}.$defs.{key}", sub) for key, sub in node.get("$defs", {}).items()]
    children += [(f"{path}.anyOf[{i}]", sub) for i, sub in enumerate(node.get("anyOf", []))]
    if isinstance(node.get("items"), dict):
        children.append((f"{path}[]", node["items"]))
    for child_path, child in children:
        found = _untyped_part(child, child_path)
        if found:
            return found
    return None


def _tidy(node: Any) -> None:
    """Drop titles and write ``anyOf: [T, null]`` as ``type: [T, "null"]``: fewer tokens."""
    if not isinstance(node, dict):
        return
    node.pop("title", None)
    for key in ("properties", "$defs"):
        for name, sub in list(node.get(key, {}).items()):
            _tidy(sub)
            node[key][name] = _collapse_nullable(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _tidy(node[key])
            node[key] = _collapse_nullable(node[key])
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for sub in node.get(key, []):
            _tidy(sub)


def _collapse_nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``{"anyOf": [T, {"type": "null"}], ...annotations}`` written by the one nullable writer."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    if any(key != "anyOf" and key not in _ANNOTATIONS for key in node):
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    if not isinstance(other, dict):
        return node
    result = nullable(other)
    result.update({key: value for key, value in node.items() if key != "anyOf"})
    return result
