"""JSON Schemas made strict-compatible, and strict replies read back in the user's own terms.

``strict_schema()`` makes the copy that ``strict: true`` tools and ``json_schema`` formats send;
``drop_optional_nulls()`` undoes its one change of meaning in a reply, before validation.

Strict mode wants every property required, ``additionalProperties: false`` on every object and
no ``$ref`` with keywords beside it. The transform keeps the meaning of the user's schema:

- An optional property becomes required and nullable; a ``null`` the model then gives for it,
  where the original does not accept null, means "not given" and is dropped again by
  ``drop_optional_nulls()`` before the reply is checked against the original schema.
- ``anyOf`` stays ``anyOf``; ``$ref`` with siblings becomes ``{siblings, anyOf: [{$ref}]}`` (both
  still apply); a root ``$ref`` is written out only where merging keeps every keyword's meaning.
- Objects are closed (``additionalProperties: false``), which strict mode demands; an object
  whose properties are spread over several subschemas cannot be closed without changing what
  it accepts, so that is a StrictSchemaError, as is a free-form object (a dict of any keys).
- ``oneOf`` is sent as ``anyOf``, since strict mode has no ``oneOf``: the one place the wire
  schema is looser. The reply is still validated against the user's ``oneOf``.
- ``title`` and ``default`` (annotations) are dropped: they only cost prompt tokens.
"""

from __future__ import annotations

import copy
from typing import Any

from .validation import SchemaError, Validator

__all__ = [
    "SchemaError",
    "StrictSchemaError",
    "accepts_null",
    "drop_optional_nulls",
    "merged",
    "nullable",
    "resolve_ref",
    "strict_schema",
]

# Keywords strict mode rejects or that only cost prompt tokens.
_DROP = ("default", "title")
# Keywords that describe and never reject a value.
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly"}
    | {"writeOnly", "$schema", "$id", "$defs", "definitions"}
)
# Keywords that apply to a value of every type: a null is checked by them too.
_ANY_TYPE = frozenset(
    {"$ref", "$dynamicRef", "const", "enum", "not", "anyOf", "allOf", "oneOf", "if", "then"}
    | {"else"}
)
# Keywords that read one another: splitting one group over two schemas changes its meaning.
_GROUPS = (
    frozenset({"properties", "patternProperties", "additionalProperties", "unevaluatedProperties"}),
    frozenset({"prefixItems", "items", "additionalItems", "unevaluatedItems"}),
    frozenset({"contains", "minContains", "maxContains"}),
    frozenset({"if", "then", "else"}),
)
_MAX_DEPTH = 64
# An anyOf inside an anyOf… multiplies the ways a value can match; past this, try no more.
_MAX_ALTERNATIVES = 64


class StrictSchemaError(SchemaError):
    """The schema has a part strict mode cannot express."""


# ---------------------------------------------------------------------------------------------
# Helpers every schema user shares: references, null, merging


def resolve_ref(node: dict[str, Any], validator: Validator) -> Any:
    """The schema ``node["$ref"]`` points to, one step (it may have a ``$ref`` of its own)."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        raise SchemaError(f"$ref must be a string, not {type(ref).__name__}")
    return validator.lookup(ref)


def accepts_null(node: Any, validator: Validator) -> bool:
    """Whether ``node`` (a part of the validator's schema) lets a value be null."""
    return validator.is_valid(None, at=node)


def nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` or null, as a type list where that keeps the meaning, else ``anyOf [node, null]``.

    A type list is exact only when nothing but ``type``-specific keywords (and ``enum``, which
    gains ``null``) would also judge a null.
    """
    rest = {key: value for key, value in node.items() if key not in _ANNOTATIONS}
    kind = rest.get("type")
    types = [kind] if isinstance(kind, str) else kind
    if isinstance(types, list) and not (set(rest) & (_ANY_TYPE - {"enum"})):
        result = dict(node)
        if "null" not in types:
            result["type"] = [*types, "null"]
        enum = rest.get("enum")
        if isinstance(enum, list) and not any(option is None for option in enum):
            result["enum"] = [*enum, None]
        return result
    if set(rest) == {"anyOf"} and isinstance(rest["anyOf"], list):
        return {**node, "anyOf": [*rest["anyOf"], {"type": "null"}]}
    outside = {key: value for key, value in node.items() if key in _ANNOTATIONS}
    return {**outside, "anyOf": [rest, {"type": "null"}]}


def merged(target: dict[str, Any], siblings: dict[str, Any]) -> dict[str, Any] | None:
    """One schema meaning ``target`` and ``siblings`` together (a ``$ref`` and its neighbours).

    None where a flat merge would change the meaning: the same keyword on both sides with
    different values, or one group of related keywords (``properties`` and
    ``additionalProperties``…) split between them. Annotations beside a ``$ref`` win.
    """
    result = dict(target)
    for key, value in siblings.items():
        if key in _ANNOTATIONS or key not in target or target[key] == value:
            result[key] = value
        else:
            return None
    for group in _GROUPS:
        mine = {key for key in group if key in target}
        theirs = {key for key in group if key in siblings}
        if mine and theirs and any(target.get(k) != siblings.get(k) for k in mine | theirs):
            return None
    return result


# ---------------------------------------------------------------------------------------------
# The strict transform


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A strict-compatible copy of ``schema``; the input is left as it was.

    Raises StrictSchemaError (a SchemaError) for a schema jsonschema cannot use or strict mode
    cannot express.
    """
    if not isinstance(schema, dict):
        raise StrictSchemaError(f"a JSON schema must be a dict, not {type(schema).__name__}")
    try:
        result = copy.deepcopy(schema)
        # Built on the copy: references then resolve to the copy's own, transformed, nodes.
        validator = Validator(result)
        _inline_root_ref(result, validator)
        _Strict(result, validator).node(result, "$")
    except StrictSchemaError:
        raise
    except SchemaError as exc:
        # What cannot be used cannot be made strict either; callers catch one error here.
        raise StrictSchemaError(str(exc)) from None
    except RecursionError:
        raise StrictSchemaError("not a usable JSON schema: it is nested too deeply") from None
    return result


def _inline_root_ref(root: dict[str, Any], validator: Validator) -> None:
    """Write a root ``$ref`` out in full: the root must be an object, not a reference.

    A recursive model's schema is ``{"$defs": {...}, "$ref": "#/$defs/Node"}``. The definitions
    stay, so the recursive references inside still resolve.
    """
    for _ in range(_MAX_DEPTH):
        if "$ref" not in root:
            return
        target = resolve_ref(root, validator)
        if target is root or not isinstance(target, dict):
            raise StrictSchemaError(f"the top level refers to {root['$ref']!r}, itself")
        siblings = {key: value for key, value in root.items() if key != "$ref"}
        combined = merged(copy.deepcopy(target), siblings)
        if combined is None:
            raise StrictSchemaError(
                f"the top level refers to {root['$ref']!r} and adds keywords that cannot be "
                "merged with it; strict mode needs the top level written out as one object"
            )
        root.clear()
        root.update(combined)
    raise StrictSchemaError("the top level is a chain of references too long to follow")


class _Strict:
    """One pass over a copy of the schema, changing it in place."""

    def __init__(self, root: dict[str, Any], validator: Validator) -> None:
        self.root = root
        self.validator = validator

    def node(self, node: Any, path: str) -> Any:
        """Make ``node`` strict; returns the node to use in its place (the same one, or new)."""
        if not isinstance(node, dict):
            return node
        for key in _DROP:
            node.pop(key, None)
        if "oneOf" in node and "anyOf" not in node:
            node["anyOf"] = node.pop("oneOf")
        if "$ref" in node and len(node) > 1:
            if "anyOf" in node:
                raise StrictSchemaError(
                    f"{_where(path)} has both $ref and anyOf, which strict mode cannot express"
                )
            # Strict mode allows no keywords beside $ref; a one-branch anyOf keeps them applying.
            node["anyOf"] = [{"$ref": node.pop("$ref")}]
        self._refuse_spread_properties(node, path)
        for key in ("$defs", "definitions"):
            for name, sub in node.get(key, {}).items():
                node[key][name] = self.node(sub, f"{path}.{key}.{name}")
        for key in ("anyOf", "allOf", "prefixItems"):
            for i, sub in enumerate(node.get(key, [])):
                node[key][i] = self.node(sub, f"{path}.{key}[{i}]")
        if isinstance(node.get("items"), dict):
            node["items"] = self.node(node["items"], f"{path}[]")
        if _is_object(node):
            self.object(node, path)
        return node

    def object(self, node: dict[str, Any], path: str) -> None:
        extra = node.get("additionalProperties")
        named = "properties" in node
        if not named and extra is None and self._all_branches_are_objects(node):
            # {"type": "object", "anyOf": [A, B]}: each branch is closed on its own.
            return
        # "properties": {} names no fields (a tool without parameters); no "properties" at all,
        # and nothing that closes the object, is a dict of any keys.
        if isinstance(extra, dict) or extra is True or (not named and extra is None):
            raise StrictSchemaError(
                f"{_where(path)} is a free-form object (a dict of any keys), which strict mode "
                "cannot express; give it named fields or turn strict off"
            )
        properties: dict[str, Any] = node.setdefault("properties", {})
        required = set(node.get("required", []))
        for name, sub in properties.items():
            sub = self.node(sub, f"{path}.{name}")
            if name not in required and isinstance(sub, dict) and not self._accepts_null(sub):
                sub = nullable(sub)
            properties[name] = sub
        node["required"] = list(properties)
        node["additionalProperties"] = False

    def _accepts_null(self, node: dict[str, Any]) -> bool:
        return accepts_null(node, self.validator)

    def _refuse_spread_properties(self, node: dict[str, Any], path: str) -> None:
        """One value's properties named in several subschemas cannot be closed one by one.

        ``{"allOf": [{"properties": {"a"}}, {"properties": {"b"}}]}`` accepts ``{"a", "b"}``;
        closing each part would accept nothing.
        """
        places = ["properties"] if "properties" in node else []
        places += ["allOf" for sub in node.get("allOf", []) if self._names_properties(sub)]
        branches = node.get("anyOf", [])
        if len(branches) == 1 and self._names_properties(branches[0]):
            places.append("$ref" if "$ref" in branches[0] else "anyOf")
        elif places and any(self._names_properties(branch) for branch in branches):
            places.append("anyOf")
        if len(places) > 1:
            raise StrictSchemaError(
                f"{_where(path)} names its properties in more than one place "
                f"({', '.join(places)}); strict mode closes each object on its own, so it "
                "cannot express this; list the properties in one object or turn strict off"
            )

    def _names_properties(self, sub: Any, depth: int = 0) -> bool:
        if not isinstance(sub, dict) or depth > _MAX_DEPTH:
            return False
        if "properties" in sub:
            return True
        if "$ref" in sub and self._names_properties(resolve_ref(sub, self.validator), depth + 1):
            return True
        return any(
            self._names_properties(branch, depth + 1)
            for key in ("anyOf", "allOf", "oneOf")
            for branch in sub.get(key, [])
        )

    def _all_branches_are_objects(self, node: dict[str, Any]) -> bool:
        branches = node.get("anyOf", [])
        return bool(branches) and "allOf" not in node and all(map(self._names_properties, branches))


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _where(path: str) -> str:
    return "the top level" if path == "$" else path


# ---------------------------------------------------------------------------------------------
# Reading a strict reply back


def drop_optional_nulls(value: Any, validator: Validator) -> Any:
    """``value`` without the nulls given for properties that were optional and reject null.

    Strict mode made such a property required-but-nullable, so null there means "not given".
    ``validator`` holds the original (not the strict) schema. Where the schema offers
    alternatives (``anyOf``/``oneOf``), the first whose reading of the value then validates
    decides which properties were optional. The input is not changed.
    """
    return _Undo(validator).value(value, [validator.schema], 0)


class _Undo:
    def __init__(self, validator: Validator) -> None:
        self.validator = validator
        # Asked once per schema node, not once per value: a list of records asks the same.
        self._nullable: dict[int, bool] = {}
        self._ways: dict[int, list[list[dict[str, Any]]]] = {}

    def accepts_null(self, node: Any) -> bool:
        key = id(node)
        if key not in self._nullable:
            self._nullable[key] = accepts_null(node, self.validator)
        return self._nullable[key]

    def value(self, value: Any, nodes: list[Any], depth: int) -> Any:
        """``value`` read against ``nodes``, every one of which applies at its place."""
        if depth > _MAX_DEPTH or not isinstance(value, dict | list) or not nodes:
            return value
        alternatives: list[list[dict[str, Any]]] = [[]]
        for node in nodes:
            if id(node) not in self._ways:
                self._ways[id(node)] = self._flatten(node, 0)
            alternatives = _product(alternatives, self._ways[id(node)])
        if len(alternatives) == 1:
            return self._read(value, alternatives[0], depth)
        first = None
        for conjuncts in alternatives:
            candidate = self._read(value, conjuncts, depth)
            if all(self.validator.is_valid(candidate, at=node) for node in nodes):
                return candidate
            first = candidate if first is None else first
        return first

    def _flatten(self, node: Any, depth: int) -> list[list[dict[str, Any]]]:
        """The ways ``node`` can match, each a list of subschemas that must all hold."""
        if not isinstance(node, dict):
            return [[]]
        alternatives: list[list[dict[str, Any]]] = [[node]]
        if depth > _MAX_DEPTH:
            return alternatives
        parts = list(node.get("allOf", []))
        if isinstance(node.get("$ref"), str):
            parts.append(resolve_ref(node, self.validator))
        for part in parts:
            alternatives = _product(alternatives, self._flatten(part, depth + 1))
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                branches = [way for sub in node[key] for way in self._flatten(sub, depth + 1)]
                alternatives = _product(alternatives, branches or [[]])
        return alternatives

    def _read(self, value: Any, conjuncts: list[dict[str, Any]], depth: int) -> Any:
        if isinstance(value, dict):
            return self._read_object(value, conjuncts, depth)
        items: list[Any] = []
        for index, item in enumerate(value):
            nodes = []
            for node in conjuncts:
                prefix = node.get("prefixItems")
                if isinstance(prefix, list) and index < len(prefix):
                    nodes.append(prefix[index])
                elif isinstance(node.get("items"), dict):
                    nodes.append(node["items"])
            items.append(self.value(item, nodes, depth + 1))
        return items

    def _read_object(
        self, value: dict[str, Any], conjuncts: list[dict[str, Any]], depth: int
    ) -> Any:
        required = {key for node in conjuncts for key in _strings(node.get("required"))}
        result = {}
        for key, item in value.items():
            declared = [
                node["properties"][key]
                for node in conjuncts
                if isinstance(node.get("properties"), dict) and key in node["properties"]
            ]
            if (
                item is None
                and declared
                and key not in required
                and not all(self.accepts_null(sub) for sub in declared)
            ):
                continue
            nodes = declared or [
                node["additionalProperties"]
                for node in conjuncts
                if isinstance(node.get("additionalProperties"), dict)
            ]
            result[key] = self.value(item, nodes, depth + 1)
        return result


def _product(
    left: list[list[dict[str, Any]]], right: list[list[dict[str, Any]]]
) -> list[list[dict[str, Any]]]:
    return [a + b for a in left for b in right][:_MAX_ALTERNATIVES]


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
