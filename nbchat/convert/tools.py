"""Python functions and pydantic model classes as tools the model may call.

``@tool`` / ``as_tool()`` build a ``Tool``: its JSON Schema comes from the signature, type hints
and docstring through a pydantic model; ``Tool.validate()`` turns the model's JSON into kwargs.

Decisions, so a user knows what to expect:

- **Description**: ``description=`` if given, else the first paragraph of the docstring (put
  everything the model should know there). Per-parameter descriptions come, in this order of
  precedence, from ``Field(description=...)`` (as default or inside ``Annotated``), a string in
  ``Annotated[T, "..."]``, and the docstring's Google (``Args:``), NumPy (``Parameters`` + dashes)
  or Sphinx (``:param name:``) section.
- **Strict**: ``strict=None`` (the default) means strict when the schema allows it and
  non-strict otherwise; a free-form ``dict`` parameter (``dict[str, int]``, ``dict``) or an
  ``Any`` value cannot be strict. ``strict=True`` on such a tool is a ``ToolDefinitionError``;
  ``strict=False`` always sends the plain schema. ``Tool.strict`` is the mode in effect.
- **null for an optional parameter**: strict mode makes every parameter required and writes the
  optional ones as nullable, so the model sends ``null`` for "not given". ``validate()`` reads a
  ``null`` for a parameter that has a default and whose type does not accept None as "use the
  default", in either mode; where the type accepts None, None is passed on.
- **Pydantic model classes**: the fields are the parameters and the docstring the description.
  Calling the tool validates the arguments into an instance and returns ``instance()`` if the
  class defines ``__call__``, else ``instance.run()`` if it defines ``run``, else the instance
  itself (handy for structured extraction).
- **Async functions** (or functions returning an awaitable): ``invoke()`` runs them to completion
  with ``asyncio.run`` when no event loop runs in this thread. Inside Jupyter a loop is already
  running in the kernel's thread, so the coroutine runs on a fresh loop in a helper thread and
  must not rely on objects tied to the kernel's loop; from async code use ``await ainvoke()``,
  which awaits it on the current loop.
- ``Tool.__call__`` calls the wrapped function exactly as Python would (no validation, an async
  function returns its coroutine), so a decorated function stays usable from code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import functools
import inspect
import json
import re
import threading
import typing
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, overload

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from ..protocol.exceptions import NbchatError, first_line
from ..protocol.schema import StrictSchemaError, accepts_null, resolve_ref, strict_schema

__all__ = [
    "MAX_ROUNDS",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "as_tool",
    "tool",
    "tool_definitions",
    "tools_by_name",
]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

#: Default cap on model ↔ tool rounds in one turn; the conversation loop enforces it.
MAX_ROUNDS = 8


class ToolDefinitionError(NbchatError, TypeError):
    """A function or class cannot become a tool (no type hint, a lambda, ``*args``, …)."""


class ToolArgumentsError(NbchatError, ValueError):
    """The arguments the model sent for a tool are not valid JSON or fail validation."""

    def __init__(
        self, message: str, *, tool_name: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tool_name = tool_name
        self.errors = errors or []


# ---------------------------------------------------------------------------------------------
# The Tool object


class Tool:
    """A callable the model may call: name, description, JSON Schema and the code to run."""

    def __init__(
        self,
        fn: Callable[..., Any] | type[BaseModel],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool | None = None,
        confirm: bool = False,
    ) -> None:
        self.fn = fn
        self.confirm = bool(confirm)
        self._is_model = isinstance(fn, type) and issubclass(fn, BaseModel)
        self.name = _tool_name(fn, name)
        doc_description, param_docs = parse_docstring(_docstring(fn, self._is_model))
        self.description = (description if description is not None else doc_description).strip()
        self._positional_only: list[inspect.Parameter] = []
        if self._is_model:
            self.model: type[BaseModel] = fn  # type: ignore[assignment]
            self._keys = _model_keys(self.model)
            base = _model_schema(self.model, self.name, param_docs)
        else:
            self.model, self._keys, self._positional_only = _signature_model(
                fn, self.name, param_docs
            )
            base = _model_schema(self.model, self.name, {})
        # The plain schema stays around: validate() reads which fields had defaults from it.
        self._base_schema = base
        self.parameters, self.strict = _choose_strict(base, strict, self.name)
        self._strict_requested = strict
        self.is_async = _is_async(fn)
        # Look like the function to help(), inspect and IPython's ``?``.
        self.__wrapped__ = fn
        self.__doc__ = getattr(_hinted(fn), "__doc__", None)
        self.__name__ = self.name
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = getattr(fn, "__module__", __name__)

    def __repr__(self) -> str:
        flags = f"strict={self.strict}" + (", confirm=True" if self.confirm else "")
        return f"Tool(name={self.name!r}, {flags})"

    def replace(self, **changes: Any) -> Tool:
        """A copy with some of ``name``, ``description``, ``strict``, ``confirm`` changed."""
        unknown = set(changes) - {"name", "description", "strict", "confirm"}
        if unknown:
            raise TypeError(f"Tool.replace() got unexpected options: {', '.join(sorted(unknown))}")
        options: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "strict": self._strict_requested,
            "confirm": self.confirm,
        }
        options.update(changes)
        return Tool(self.fn, **options)

    def definition(self) -> dict[str, Any]:
        """The protocol's tool entry: ``{"type": "function", "function": {...}}``."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = copy.deepcopy(self.parameters)
        function["strict"] = self.strict
        return {"type": "function", "function": function}

    to_dict = definition

    def validate(self, arguments: str | Mapping[str, Any] | None) -> dict[str, Any]:
        """The model's arguments (a JSON string or a dict) as Python keyword arguments.

        Every parameter is in the result, defaults filled in; nested models arrive as model
        instances, enums as members. Raises ToolArgumentsError naming what is wrong.
        """
        data = _parse_arguments(arguments, self.name)
        data = _drop_defaulted_nulls(data, self._base_schema, self._base_schema)
        try:
            instance = self.model.model_validate(data)
        except pydantic.ValidationError as exc:
            errors = exc.errors(include_url=False)
            detail = "; ".join(_describe_error(error) for error in errors)
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {detail}",
                tool_name=self.name,
                errors=[dict(error) for error in errors],
            ) from None
        return {key: getattr(instance, attr) for key, attr in self._keys.items()}

    def invoke(self, kwargs: Mapping[str, Any]) -> Any:
        """Run the tool with already validated kwargs; an awaitable result is awaited."""
        result = self._start(kwargs)
        if inspect.isawaitable(result):
            result = _run_awaitable(result)
        return result

    async def ainvoke(self, kwargs: Mapping[str, Any]) -> Any:
        """Like invoke(), awaiting an async tool on the running loop."""
        result = self._start(kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._is_model:
            return _run_model(self.model(*args, **kwargs))
        return self.fn(*args, **kwargs)

    def _start(self, kwargs: Mapping[str, Any]) -> Any:
        if self._is_model:
            return _run_model(self.model.model_validate(dict(kwargs)))
        rest = dict(kwargs)
        args = []
        for parameter in self._positional_only:
            if parameter.name in rest:
                args.append(rest.pop(parameter.name))
            elif parameter.default is not inspect.Parameter.empty:
                args.append(parameter.default)
            else:
                break
        return self.fn(*args, **rest)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    fn: Callable[..., Any],
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    confirm: bool = False,
) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    confirm: bool = False,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    confirm: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make ``fn`` a Tool: ``@tool``, ``@tool(name=..., confirm=True)`` or ``tool(fn, ...)``."""

    def make(target: Callable[..., Any]) -> Tool:
        return as_tool(target, name=name, description=description, strict=strict, confirm=confirm)

    return make if fn is None else make(fn)


def as_tool(obj: Any, **options: Any) -> Tool:
    """A Tool from a Tool, a function (sync or async) or a pydantic model class.

    ``options`` are Tool's keywords (``name``, ``description``, ``strict``, ``confirm``); those
    left at None keep the Tool's own value when ``obj`` is a Tool already.
    """
    options = {key: value for key, value in options.items() if value is not None}
    if isinstance(obj, Tool):
        current = {"name": obj.name, "description": obj.description, "confirm": obj.confirm}
        current["strict"] = obj._strict_requested
        changes = {key: value for key, value in options.items() if current.get(key) != value}
        return obj.replace(**changes) if changes else obj
    if isinstance(obj, type) and issubclass(obj, BaseModel):
        return Tool(obj, **options)
    if isinstance(obj, type):
        raise ToolDefinitionError(
            f"class {obj.__name__} is not a pydantic model; a tool is a function, a pydantic "
            "model class or a Tool"
        )
    if not callable(obj):
        raise ToolDefinitionError(
            f"{type(obj).__name__} object is not callable; a tool is a function, a pydantic "
            "model class or a Tool"
        )
    return Tool(obj, **options)


def tools_by_name(tools: Iterable[Any] | Mapping[str, Any] | None) -> dict[str, Tool]:
    """Tools keyed by name from a list of tool-likes, or a mapping (its keys become the names)."""
    if tools is None:
        return {}
    if isinstance(tools, Mapping):
        items = [as_tool(value, name=str(key)) for key, value in tools.items()]
    elif isinstance(tools, Tool) or callable(tools):
        items = [as_tool(tools)]
    else:
        items = [as_tool(value) for value in tools]
    result: dict[str, Tool] = {}
    for item in items:
        if item.name in result:
            raise ToolDefinitionError(f"two tools are named {item.name!r}; tool names must differ")
        result[item.name] = item
    return result


def tool_definitions(tools: Iterable[Any] | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The request's ``tools`` list for these tool-likes."""
    return [item.definition() for item in tools_by_name(tools).values()]


# ---------------------------------------------------------------------------------------------
# Building the argument model


def _tool_name(fn: Any, name: str | None) -> str:
    if name is None:
        name = getattr(fn, "__name__", None)
        if name == "<lambda>":
            raise ToolDefinitionError("a lambda has no name; pass tool(fn, name=...) or use def")
        if not isinstance(name, str):
            raise ToolDefinitionError(
                f"{type(fn).__name__} object has no __name__; pass tool(fn, name=...)"
            )
    if not _NAME.match(name):
        raise ToolDefinitionError(
            f"tool name {name!r} is not allowed: use 1 to 64 letters, digits, '_' or '-'"
        )
    return name


def _docstring(fn: Any, is_model: bool) -> str:
    if is_model:
        # A model class without a docstring would otherwise show BaseModel's.
        return inspect.cleandoc(fn.__dict__.get("__doc__") or "")
    return inspect.getdoc(_hinted(fn)) or ""


def _hinted(fn: Any) -> Any:
    """The function whose annotations and docstring describe ``fn``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn) or isinstance(fn, type):
        return fn
    # An object with __call__: its method holds the hints.
    return inspect.getattr_static(type(fn), "__call__", fn)


def _signature_model(
    fn: Callable[..., Any], name: str, param_docs: dict[str, str]
) -> tuple[type[BaseModel], dict[str, str], list[inspect.Parameter]]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"cannot read the signature of {name}: {exc}") from None
    try:
        hints = typing.get_type_hints(_hinted(fn), include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"cannot resolve the type hints of {name}: {exc}") from None
    fields: dict[str, Any] = {}
    keys: dict[str, str] = {}
    positional_only = []
    for index, parameter in enumerate(signature.parameters.values()):
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ToolDefinitionError(
                f"{name} takes *{parameter.name}; a tool needs named parameters only"
            )
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            raise ToolDefinitionError(
                f"{name} takes **{parameter.name}; a tool needs named parameters only"
            )
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only.append(parameter)
        annotation = hints.get(parameter.name, parameter.annotation)
        if annotation is inspect.Parameter.empty:
            raise ToolDefinitionError(
                f"parameter {parameter.name!r} of {name} has no type hint; the model needs one"
            )
        field_name = f"p{index}"
        fields[field_name] = _field(parameter, annotation, param_docs)
        keys[parameter.name] = field_name
    config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, arbitrary_types_allowed=False)
    try:
        model = pydantic.create_model(f"{name}_arguments", __config__=config, **fields)
    except Exception as exc:
        raise ToolDefinitionError(f"cannot build a schema for {name}: {first_line(exc)}") from None
    return model, keys, positional_only


def _field(
    parameter: inspect.Parameter, annotation: Any, param_docs: dict[str, str]
) -> tuple[Any, FieldInfo]:
    default = parameter.default
    user_field = default if isinstance(default, FieldInfo) else None
    annotated_doc = None
    if typing.get_origin(annotation) is typing.Annotated:
        for extra in typing.get_args(annotation)[1:]:
            if isinstance(extra, FieldInfo):
                user_field = user_field or extra
            elif isinstance(extra, str) and annotated_doc is None:
                annotated_doc = extra
            elif isinstance(getattr(extra, "documentation", None), str) and not annotated_doc:
                # typing_extensions.Doc("...")
                annotated_doc = extra.documentation
    options: dict[str, Any] = {"alias": parameter.name}
    if user_field is None or not user_field.description:
        description = annotated_doc or param_docs.get(parameter.name)
        if description:
            options["description"] = description
    if isinstance(default, FieldInfo):
        # Field(...) as the default carries the default (or none): pydantic merges it from
        # Annotated with the alias given here.
        return typing.Annotated[annotation, default], Field(**options)
    if default is not inspect.Parameter.empty:
        options["default"] = default
    return annotation, Field(**options)


def _model_keys(model: type[BaseModel]) -> dict[str, str]:
    keys = {}
    for attr, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        keys[alias or attr] = attr
    return keys


def _model_schema(model: type[BaseModel], name: str, param_docs: dict[str, str]) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            # A default JSON cannot show is simply left out of the schema.
            warnings.simplefilter("ignore", pydantic.json_schema.PydanticJsonSchemaWarning)
            schema = model.model_json_schema()
    except Exception as exc:
        raise ToolDefinitionError(f"cannot build a schema for {name}: {first_line(exc)}") from None
    schema.pop("title", None)
    # The description travels as the tool's own description, not twice.
    schema.pop("description", None)
    for key, sub in schema.get("properties", {}).items():
        if key in param_docs and isinstance(sub, dict) and "description" not in sub:
            sub["description"] = param_docs[key]
    _inline_refs_with_siblings(schema, schema)
    _drop_unused_defs(schema)
    _tidy(schema)
    return schema


def _inline_refs_with_siblings(node: Any, root: dict[str, Any]) -> None:
    """Write ``{"$ref": X, "description": ...}`` out in full.

    Pydantic emits that shape for a described model or enum parameter, and strict mode on
    OpenAI rejects a ``$ref`` with sibling keywords.
    """
    if isinstance(node, list):
        for item in node:
            _inline_refs_with_siblings(item, root)
        return
    if not isinstance(node, dict):
        return
    for key, value in list(node.items()):
        if isinstance(value, dict) and "$ref" in value and len(value) > 1:
            target = _resolve(value, root)
            if isinstance(target, dict) and target is not value:
                siblings = {k: v for k, v in value.items() if k != "$ref"}
                node[key] = {**copy.deepcopy(target), **siblings}
        elif key != "$defs" or node is root:
            _inline_refs_with_siblings(value, root)


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


def _choose_strict(
    base: dict[str, Any], strict: bool | None, name: str
) -> tuple[dict[str, Any], bool]:
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
    except StrictSchemaError as exc:
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
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    kind = other.get("type")
    if not isinstance(kind, str) or any(key in other for key in ("$ref", "anyOf", "allOf")):
        return node
    merged = {"type": [kind, "null"], **{k: v for k, v in other.items() if k != "type"}}
    if "enum" in merged and None not in merged["enum"]:
        merged["enum"] = [*merged["enum"], None]
    merged.update({key: value for key, value in node.items() if key != "anyOf"})
    return merged


# ---------------------------------------------------------------------------------------------
# Validating arguments


def _parse_arguments(arguments: str | Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not isinstance(arguments, str):
        raise ToolArgumentsError(
            f"arguments for {name} must be a JSON object, not {type(arguments).__name__}",
            tool_name=name,
        )
    # Some servers send "" for a function without parameters.
    if not arguments.strip():
        return {}
    try:
        data = json.loads(arguments)
        if isinstance(data, str) and data.lstrip().startswith("{"):
            # JSON encoded twice by some servers.
            data = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ToolArgumentsError(
            f"arguments for {name} are not valid JSON: {exc}", tool_name=name
        ) from None
    if not isinstance(data, dict):
        raise ToolArgumentsError(
            f"arguments for {name} must be a JSON object, not {_json_kind(data)}", tool_name=name
        )
    return data


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


def _describe_error(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
    kind = error.get("type")
    if kind == "missing":
        return f"{where}: missing required argument"
    if kind == "extra_forbidden":
        return f"{where}: unexpected argument"
    return f"{where}: {error.get('msg', 'invalid')}"


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    """Follow local $refs; a dangling one resolves to the empty (any) schema."""
    try:
        return resolve_ref(node, root)
    except KeyError:
        return {}


def _object_schema(node: Any, root: dict[str, Any]) -> dict[str, Any] | None:
    node = _resolve(node, root)
    if not isinstance(node, dict):
        return None
    if "properties" in node or isinstance(node.get("additionalProperties"), dict):
        return node
    objects = [sub for sub in node.get("anyOf", []) if _object_schema(sub, root) is not None]
    return _object_schema(objects[0], root) if len(objects) == 1 else None


def _drop_defaulted_nulls(value: Any, node: Any, root: dict[str, Any]) -> Any:
    """Remove ``null`` given for optional fields whose type rejects None: the default applies."""
    if isinstance(value, dict):
        schema = _object_schema(node, root)
        if schema is None:
            return value
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        extra = schema.get("additionalProperties")
        result = {}
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is None:
                result[key] = item
            elif item is None and key in properties and key not in required:
                if accepts_null(sub, root):
                    result[key] = None
            else:
                result[key] = _drop_defaulted_nulls(item, sub, root)
        return result
    if isinstance(value, list):
        schema = _resolve(node, root)
        branches = [schema, *schema.get("anyOf", [])] if isinstance(schema, dict) else []
        for branch in branches:
            items = _resolve(branch, root).get("items") if isinstance(branch, dict) else None
            if isinstance(items, dict):
                return [_drop_defaulted_nulls(item, items, root) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# Running


def _model_method(cls: type[BaseModel]) -> str | None:
    """Which of ``__call__`` / ``run`` a model class defines itself, if any."""
    own = [klass for klass in cls.__mro__ if klass not in (BaseModel, object)]
    for attr in ("__call__", "run"):
        if any(callable(klass.__dict__.get(attr)) for klass in own):
            return attr
    return None


def _is_async(fn: Any) -> bool:
    if isinstance(fn, type) and issubclass(fn, BaseModel):
        method = _model_method(fn)
        return method is not None and inspect.iscoroutinefunction(getattr(fn, method))
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        vars(type(fn)).get("__call__")
    )


def _run_model(instance: BaseModel) -> Any:
    method = _model_method(type(instance))
    return getattr(instance, method)() if method else instance


def _run_awaitable(awaitable: Awaitable[Any]) -> Any:
    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    return _run_on_own_loop(wait())


def _run_on_own_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` on a new loop in a helper thread: this thread's loop is busy (Jupyter).

    Ctrl-C here cancels the coroutine instead of waiting for it to finish.
    """
    loop = asyncio.new_event_loop()
    outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def target() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome.set_result(loop.run_until_complete(coroutine))
        except BaseException as exc:
            outcome.set_exception(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    threading.Thread(target=target, name="nbchat-tool", daemon=True).start()
    try:
        return outcome.result()
    except KeyboardInterrupt:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_cancel_all, loop)
        raise


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


# ---------------------------------------------------------------------------------------------
# Docstrings

_GOOGLE_PARAMS = {
    "args",
    "arguments",
    "parameters",
    "params",
    "keyword args",
    "keyword arguments",
    "other parameters",
    "attributes",
}
_GOOGLE_SECTIONS = _GOOGLE_PARAMS | {
    "returns",
    "return",
    "yields",
    "yield",
    "raises",
    "raise",
    "example",
    "examples",
    "note",
    "notes",
    "see also",
    "warning",
    "warnings",
    "references",
    "todo",
}
_SPHINX_FIELD = re.compile(r"^:(param|parameter|arg|argument|key|keyword)\s+([^:]+):\s*(.*)$")
_SPHINX_ANY = re.compile(r"^:\w+[^:]*:")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?$")
_DASHES = re.compile(r"^-{3,}\s*$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph, and per-parameter descriptions from Google, NumPy or Sphinx style."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    first_section = len(lines)
    for index in range(len(lines)):
        if _is_section_start(lines, index):
            first_section = index
            break
    paragraph: list[str] = []
    for line in lines[:first_section]:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    params: dict[str, str] = {}
    _google_params(lines, params)
    _numpy_params(lines, params)
    _sphinx_params(lines, params)
    return " ".join(paragraph), params


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_section_start(lines: list[str], index: int) -> bool:
    line = lines[index]
    stripped = line.strip()
    if stripped.endswith(":") and stripped[:-1].strip().lower() in _GOOGLE_SECTIONS:
        return True
    if _SPHINX_ANY.match(stripped):
        return True
    following = lines[index + 1].strip() if index + 1 < len(lines) else ""
    return bool(stripped) and bool(_DASHES.match(following))


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """Lines after ``start`` indented deeper than ``base`` (blank lines kept), and the end."""
    block = []
    index = start
    while index < len(lines):
        line = lines[index]
        if line.strip() and _indent(line) <= base:
            break
        block.append(line)
        index += 1
    while block and not block[-1].strip():
        block.pop()
    return block, index


def _join(parts: list[str]) -> str:
    return " ".join(part.strip() for part in parts if part.strip())


def _google_params(lines: list[str], params: dict[str, str]) -> None:
    index = 0
    while index < len(lines):
        line = lines[index]
        header = line.strip()
        if not (header.endswith(":") and header[:-1].strip().lower() in _GOOGLE_PARAMS):
            index += 1
            continue
        block, index = _block(lines, index + 1, _indent(line))
        entries = [item for item in block if item.strip()]
        if not entries:
            continue
        entry_indent = min(_indent(item) for item in entries)
        name = None
        text: list[str] = []
        for item in block:
            match = _GOOGLE_ENTRY.match(item.strip()) if _indent(item) == entry_indent else None
            if match:
                if name:
                    params.setdefault(name, _join(text))
                name, text = match.group(1), [match.group(2)]
            elif name:
                text.append(item)
        if name:
            params.setdefault(name, _join(text))


def _numpy_params(lines: list[str], params: dict[str, str]) -> None:
    for index in range(len(lines) - 1):
        title = lines[index].strip().lower()
        if title not in {"parameters", "other parameters", "attributes"}:
            continue
        if not _DASHES.match(lines[index + 1].strip()):
            continue
        base = _indent(lines[index])
        position = index + 2
        while position < len(lines):
            line = lines[position]
            if not line.strip():
                position += 1
                continue
            if _indent(line) < base or _is_section_start(lines, position):
                break
            match = _NUMPY_ENTRY.match(line.strip()) if _indent(line) == base else None
            block, position = _block(lines, position + 1, _indent(line))
            if match:
                for name in match.group(1).split(","):
                    params.setdefault(name.strip().lstrip("*"), _join(block))


def _sphinx_params(lines: list[str], params: dict[str, str]) -> None:
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _SPHINX_FIELD.match(line.strip())
        if not match:
            index += 1
            continue
        block, index = _block(lines, index + 1, _indent(line))
        # ":param type name:" names the parameter last.
        name = match.group(2).split()[-1].lstrip("*")
        params.setdefault(name, _join([match.group(3), *block]))
