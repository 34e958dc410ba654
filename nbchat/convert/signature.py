"""A function's signature, type hints and docstring as a pydantic model of its arguments.

``signature_model()`` builds the model a tool validates arguments with; ``model_keys()`` maps
each argument name to the model field holding it.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from ..protocol.exceptions import first_line
from .toolerrors import ToolDefinitionError

__all__ = ["docstring_of", "hinted", "model_keys", "signature_model"]


def docstring_of(fn: Any, is_model: bool) -> str:
    """The docstring that describes ``fn`` (a model class's own, never BaseModel's)."""
    if is_model:
        return inspect.cleandoc(fn.__dict__.get("__doc__") or "")
    return inspect.getdoc(hinted(fn)) or ""


def hinted(fn: Any) -> Any:
    """The function whose annotations and docstring describe ``fn``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.isroutine(fn) or isinstance(fn, type):
        return fn
    # An object with __call__: its method holds the hints.
    return inspect.getattr_static(type(fn), "__call__", fn)


def signature_model(
    fn: Callable[..., Any], name: str, param_docs: dict[str, str]
) -> tuple[type[BaseModel], dict[str, str], list[inspect.Parameter]]:
    """The argument model, parameter name → field name, and the positional-only parameters."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"cannot read the signature of {name}: {exc}") from None
    try:
        hints = typing.get_type_hints(hinted(fn), include_extras=True)
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
        # Fields are p0, p1…: a parameter may be called like a BaseModel attribute (schema, copy).
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


def model_keys(model: type[BaseModel]) -> dict[str, str]:
    """Argument name (the alias the model sees in JSON) → attribute, for a model class."""
    keys = {}
    for attr, info in model.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        keys[alias or attr] = attr
    return keys
