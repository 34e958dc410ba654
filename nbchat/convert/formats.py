"""The ``response_format`` request field: JSON mode, or a schema built from a model, type or dict.

A pydantic model class, any type pydantic can describe (``list[Model]``, a dataclass…) or a
JSON-schema dict goes in; ``Target`` remembers what it stands for so a reply can be read back.

Decisions worth knowing:

- Schemas are sent strict (see ``protocol.schema.strict_schema``): every property required,
  optional ones nullable; ``strict=False`` sends the schema as it is.
- The root of a ``json_schema`` format must be an object: a schema of another type (a list of
  records, say) is wrapped as ``{"items": …}`` (arrays) or ``{"value": …}`` and unwrapped again
  when the reply is parsed.
- A dict schema is checked by ``jsonschema`` before anything is sent: one it cannot use is a
  SchemaError naming the bad part.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ..protocol.schema import SchemaError, StrictSchemaError, resolve_ref, strict_schema
from ..protocol.validation import Validator

__all__ = ["Target", "response_format_for", "schema_of"]

_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")


class Target:
    """What a schema or model argument stands for: its schema, its name, and how to validate.

    ``model`` is the pydantic model class, ``adapter`` a TypeAdapter for another type (both None
    for a dict schema); ``wrap_key`` is ``"items"`` or ``"value"`` when the schema is sent inside
    an object; ``validator`` checks values against the original (not the strict) schema.
    """

    def __init__(self, spec: Any, name: str | None = None) -> None:
        self.model: Any = None
        self.adapter: Any = None
        if isinstance(spec, dict):
            try:
                self.schema = copy.deepcopy(spec)
            except RecursionError:
                raise SchemaError("not a usable JSON schema: it is nested too deeply") from None
            default_name = spec.get("title") if isinstance(spec.get("title"), str) else None
        else:
            self.schema, default_name = self._from_type(spec)
        self.validator = Validator(self.schema)
        self.name = _clean_name(name or default_name or "response")
        self.wrap_key = self._wrap_key()

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
        except Exception as exc:
            shown = getattr(spec, "__name__", None) or repr(spec)
            detail = " ".join(str(exc).split())[:200]
            raise StrictSchemaError(f"cannot make a JSON schema of {shown}: {detail}") from None
        return schema, getattr(spec, "__name__", None)

    def _wrap_key(self) -> str | None:
        root: Any = self.schema
        for _ in range(8):
            if not (isinstance(root, dict) and "$ref" in root and "properties" not in root):
                break
            root = resolve_ref(root, self.validator)
        if not isinstance(root, dict):
            return "value"
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
    wire = Target(schema_or_model).wire_schema()
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
    Raises SchemaError (a ValueError) for a schema jsonschema cannot use, and its subclass
    StrictSchemaError for one strict mode cannot express.
    """
    if schema_or_model is None:
        if not json:
            raise ValueError("response_format_for needs a schema or model, or json=True")
        return {"type": "json_object"}
    target = Target(schema_or_model, name)
    wire = target.wire_schema()
    schema = strict_schema(wire) if strict else copy.deepcopy(wire)
    return {
        "type": "json_schema",
        "json_schema": {"name": target.name, "strict": strict, "schema": schema},
    }
