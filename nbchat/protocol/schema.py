"""JSON Schemas made strict-compatible, for ``strict: true`` tools and ``json_schema`` formats.

Strict mode wants every property required, ``additionalProperties: false`` on every object, and
optional fields written as a union with null. Pure functions over plain dicts.
"""

from __future__ import annotations

import copy
from typing import Any

from .exceptions import NbchatError

__all__ = ["StrictSchemaError", "accepts_null", "resolve_ref", "strict_schema"]

# Keywords strict mode rejects or that only cost prompt tokens.
_DROP = ("default", "title")


class StrictSchemaError(NbchatError, ValueError):
    """The schema has a part strict mode cannot express."""


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A strict-compatible copy of ``schema``; the input is left as it was."""
    if not isinstance(schema, dict):
        raise StrictSchemaError(f"a JSON schema must be a dict, not {type(schema).__name__}")
    result = copy.deepcopy(schema)
    _strict(result, "$", result)
    return result


def _strict(node: Any, path: str, root: dict[str, Any]) -> None:
    if not isinstance(node, dict):
        return
    if node is root and "$ref" in node:
        _inline_ref(node, path, root)
    for key in _DROP:
        node.pop(key, None)
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    if "$ref" in node and len(node) > 1 and "anyOf" not in node:
        # Strict mode allows no keywords beside $ref; a one-branch anyOf keeps the description.
        node["anyOf"] = [{"$ref": node.pop("$ref")}]
    for key in ("$defs", "definitions"):
        for name, sub in node.get(key, {}).items():
            _strict(sub, f"{path}.{key}.{name}", root)
    for key in ("anyOf", "allOf", "prefixItems"):
        for i, sub in enumerate(node.get(key, [])):
            _strict(sub, f"{path}.{key}[{i}]", root)
    if isinstance(node.get("items"), dict):
        _strict(node["items"], f"{path}[]", root)
    if _is_object(node):
        _strict_object(node, path, root)


def _inline_ref(node: dict[str, Any], path: str, root: dict[str, Any]) -> None:
    """Write a root ``$ref`` out in full: the root must be an object, not a reference.

    A recursive model's schema is ``{"$defs": {...}, "$ref": "#/$defs/Node"}``. The
    definitions stay, so the recursive references inside still resolve.
    """
    target = _resolve(node["$ref"], root, path)
    keep = {key: value for key, value in node.items() if key != "$ref"}
    node.clear()
    node.update(copy.deepcopy(target))
    node.update(keep)


def _resolve(ref: Any, root: dict[str, Any], path: str) -> dict[str, Any]:
    target: Any = root
    if isinstance(ref, str) and ref.startswith("#"):
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
    else:
        target = None
    if not isinstance(target, dict) or target is root:
        where = path if path != "$" else "the top level"
        raise StrictSchemaError(f"{where} refers to {ref!r}, which this schema does not define")
    return target


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _strict_object(node: dict[str, Any], path: str, root: dict[str, Any]) -> None:
    extra = node.get("additionalProperties")
    # "properties": {} names no fields (a tool without parameters); no "properties" at all, and
    # nothing that closes the object, is a dict of any keys.
    named = "properties" in node
    properties: dict[str, Any] = node.setdefault("properties", {})
    if isinstance(extra, dict) or (extra is True) or (not named and extra is None):
        where = path if path != "$" else "the top level"
        raise StrictSchemaError(
            f"{where} is a free-form object (a dict of any keys), which strict mode cannot "
            "express; give it named fields or turn strict off"
        )
    required = set(node.get("required", []))
    for name, sub in properties.items():
        _strict(sub, f"{path}.{name}", root)
        if name not in required:
            properties[name] = _nullable(sub)
    node["required"] = list(properties)
    node["additionalProperties"] = False


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    if _allows_null(node):
        return node
    kind = node.get("type")
    if isinstance(kind, str) and "$ref" not in node and "anyOf" not in node:
        node["type"] = [kind, "null"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        return node
    if isinstance(kind, list):
        node["type"] = [*kind, "null"]
        return node
    if "anyOf" in node and len(node) == 1:
        node["anyOf"].append({"type": "null"})
        return node
    return {"anyOf": [node, {"type": "null"}]}


def _allows_null(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(sub) for sub in node.get("anyOf", []) if isinstance(sub, dict))


def resolve_ref(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (local pointers only) until a schema without one; KeyError if dangling."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#") or seen > 64:
            raise KeyError(ref)
        target: Any = root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise KeyError(ref)
            target = target[part]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **siblings} if siblings and isinstance(target, dict) else target
        seen += 1
    return node


def accepts_null(node: Any, root: dict[str, Any], depth: int = 0) -> bool:
    """True when ``node`` (within ``root``, for $ref) lets a value be null."""
    if node is True or node == {}:
        return True
    if not isinstance(node, dict) or depth > 64:
        return False
    try:
        node = resolve_ref(node, root)
    except KeyError:
        return True
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "enum" in node and None in node["enum"]:
        return True
    if "const" in node and node["const"] is None:
        return True
    return any(
        accepts_null(sub, root, depth + 1)
        for key in ("anyOf", "oneOf")
        for sub in node.get(key, [])
    )
