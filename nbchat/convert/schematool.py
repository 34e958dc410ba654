"""A tool given as a JSON schema and a function of the arguments, not as a Python signature:
how a tool of an MCP server becomes an nbchat ``Tool``.

The schema is sent strict where strict mode can express it and as written where not (a free-form
object, an untyped value); the model's arguments are checked against the schema as given, after
strict mode's nulls for optional properties are dropped, and reach the function as one dict.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..protocol.schema import SchemaError, drop_optional_nulls
from ..protocol.validation import Validator
from .toolerrors import ToolArgumentsError, ToolDefinitionError
from .tools import Tool, _parse_arguments, _tool_name
from .toolschema import choose_strict

__all__ = ["SchemaTool"]

# Keywords that only cost prompt tokens in a tool's parameters.
_ANNOTATIONS = ("title", "$schema", "$id")


class SchemaTool(Tool):
    """A Tool whose parameters are a JSON schema and whose ``fn`` takes the arguments dict."""

    def __init__(
        self,
        fn: Callable[[dict[str, Any]], Any],
        *,
        name: str,
        parameters: Mapping[str, Any] | None,
        description: str = "",
        strict: bool | None = None,
        confirm: bool = False,
    ) -> None:
        self.fn = fn
        self._call = fn
        self.confirm = bool(confirm)
        self._is_model = False
        # Always a function tool: JSON arguments in (never a custom tool's free text).
        self.custom = False
        self.grammar = None
        self.name = _tool_name(fn, name)
        self.description = (description or "").strip()
        schema = copy.deepcopy(dict(parameters or {"type": "object", "properties": {}}))
        kind = schema.get("type", "object")
        if kind != "object":
            raise ToolDefinitionError(
                f"{self.name}: the parameters must be an object schema, not type {kind!r}"
            )
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        self._schema = copy.deepcopy(schema)
        try:
            self._base = Validator(schema)
        except SchemaError as exc:
            raise ToolDefinitionError(f"{self.name}: its schema cannot be used: {exc}") from None
        tidy = {key: value for key, value in schema.items() if key not in _ANNOTATIONS}
        self.parameters, self.strict = choose_strict(tidy, strict, self.name)
        self._strict_requested = strict
        self._positional_only = []
        self._keys = {}
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__wrapped__ = fn
        self.__doc__ = self.description
        self.__name__ = self.name
        self.__qualname__ = self.name
        self.__module__ = getattr(fn, "__module__", __name__)

    def replace(self, **changes: Any) -> Tool:
        unknown = set(changes) - {"name", "description", "strict", "confirm"}
        if unknown:
            raise TypeError(
                f"{type(self).__name__}.replace() got unexpected options: "
                f"{', '.join(sorted(unknown))} (a tool from a schema takes JSON arguments)"
            )
        options = {key: self._options()[key] for key in ("name", "description", "strict")}
        options["confirm"] = self.confirm
        options.update(changes)
        return type(self)(self._call, parameters=self._schema, **options)

    def validate(self, arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
        data = drop_optional_nulls(_parse_arguments(arguments, self.name), self._base)
        errors = self._base.errors(data)
        if errors:
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {'; '.join(errors)}",
                tool_name=self.name,
                errors=[{"msg": error} for error in errors],
            )
        return dict(data)

    def _start(self, kwargs: Mapping[str, Any]) -> Any:
        return self._call(dict(kwargs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"{self.name}() takes its arguments by keyword")
        return self._call(kwargs)
