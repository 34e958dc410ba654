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

import copy
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, overload

import pydantic
from pydantic import BaseModel

from ..protocol.exceptions import RequestValidationError
from ..protocol.schema import SchemaError, drop_optional_nulls
from ..protocol.validation import Validator
from .awaitables import run_awaitable
from .docstrings import parse_docstring
from .signature import docstring_of, hinted, model_keys, signature_model
from .toolerrors import ToolArgumentsError, ToolDefinitionError
from .toolschema import choose_strict, model_schema

__all__ = [
    "GRAMMAR_SYNTAXES",
    "MAX_ROUNDS",
    "Grammar",
    "Tool",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "as_tool",
    "relaxed_tool_choice",
    "tool",
    "tool_choice_for",
    "tool_definitions",
    "tools_by_name",
]

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

#: Default cap on model ↔ tool rounds in one turn; the conversation loop enforces it.
MAX_ROUNDS = 8


# ---------------------------------------------------------------------------------------------
# The Tool object


class Tool:
    """A callable the model may call: name, description, JSON Schema and the code to run.

    A custom tool (``custom=True``, or a ``grammar``) takes the model's raw text instead of
    JSON arguments: its function receives that text as its one required argument.
    """

    def __init__(
        self,
        fn: Callable[..., Any] | type[BaseModel],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool | None = None,
        confirm: bool = False,
        custom: bool = False,
        grammar: Grammar | None = None,
    ) -> None:
        self.fn = fn
        self.confirm = bool(confirm)
        self._is_model = isinstance(fn, type) and issubclass(fn, BaseModel)
        self.name = _tool_name(fn, name)
        #: ``(syntax, definition)`` of a custom tool's input (``"lark"`` or ``"regex"``), or None.
        self.grammar = _grammar(grammar, self.name) if grammar is not None else None
        #: True for a custom tool: free text (or text in ``grammar``) in, not JSON arguments.
        self.custom = bool(custom) or self.grammar is not None
        doc_description, param_docs = parse_docstring(docstring_of(fn, self._is_model))
        self.description = (description if description is not None else doc_description).strip()
        self._positional_only: list[inspect.Parameter] = []
        self._strict_requested = strict
        self.is_async = _is_async(fn)
        #: The JSON schema of a function's arguments (None for a custom tool).
        self.parameters: dict[str, Any] | None = None
        #: Whether the schema is sent strict (None for a custom tool).
        self.strict: bool | None = None
        if self.custom:
            self._init_custom(strict)
        else:
            self._init_function(strict, param_docs)
        # Look like the function to help(), inspect and IPython's ``?``.
        self.__wrapped__ = fn
        self.__doc__ = getattr(hinted(fn), "__doc__", None)
        self.__name__ = self.name
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = getattr(fn, "__module__", __name__)

    def _init_function(self, strict: bool | None, param_docs: dict[str, str]) -> None:
        if self._is_model:
            self.model: type[BaseModel] = self.fn  # type: ignore[assignment]
            self._keys = model_keys(self.model)
            base = model_schema(self.model, self.name, param_docs)
        else:
            self.model, self._keys, self._positional_only = signature_model(
                self.fn, self.name, param_docs
            )
            base = model_schema(self.model, self.name, {})
        # The plain schema stays around: validate() reads which fields had defaults from it.
        try:
            self._base = Validator(base)
        except SchemaError as exc:
            raise ToolDefinitionError(f"cannot build a schema for {self.name}: {exc}") from None
        self.parameters, self.strict = choose_strict(base, strict, self.name)

    def _init_custom(self, strict: bool | None) -> None:
        if self._is_model:
            raise ToolDefinitionError(
                f"{self.name}: a custom tool is a function of one text argument, not a "
                "pydantic model"
            )
        if strict:
            raise ToolDefinitionError(
                f"{self.name}: strict applies to JSON arguments; a custom tool takes text "
                "(give it a grammar to constrain it)"
            )
        parameter = _text_parameter(self.fn, self.name)
        self._keys = {parameter.name: parameter.name}
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            self._positional_only = [parameter]

    def __repr__(self) -> str:
        if self.custom:
            kind = f"grammar={self.grammar[0]!r}" if self.grammar else "custom=True"
            return f"Tool(name={self.name!r}, {kind}" + (", confirm=True)" if self.confirm else ")")
        flags = f"strict={self.strict}" + (", confirm=True" if self.confirm else "")
        return f"Tool(name={self.name!r}, {flags})"

    def replace(self, **changes: Any) -> Tool:
        """A copy with some of ``name``, ``description``, ``strict``, ``confirm``, ``custom``,
        ``grammar`` changed."""
        unknown = set(changes) - set(_OPTIONS)
        if unknown:
            raise TypeError(f"Tool.replace() got unexpected options: {', '.join(sorted(unknown))}")
        options = self._options()
        options.update(changes)
        return Tool(self.fn, **options)

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "strict": self._strict_requested,
            "confirm": self.confirm,
            "custom": self.custom,
            "grammar": self.grammar,
        }

    def definition(self) -> dict[str, Any]:
        """The protocol's tool entry: ``{"type": "function", "function": {...}}``, or for a
        custom tool ``{"type": "custom", "custom": {...}}``."""
        if self.custom:
            custom: dict[str, Any] = {"name": self.name}
            if self.description:
                custom["description"] = self.description
            if self.grammar is not None:
                syntax, definition = self.grammar
                grammar = {"syntax": syntax, "definition": definition}
                custom["format"] = {"type": "grammar", "grammar": grammar}
            return {"type": "custom", "custom": custom}
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
        instances, enums as members. Raises ToolArgumentsError naming what is wrong. A custom
        tool's input is text, passed on as it is.
        """
        if self.custom:
            if arguments is not None and not isinstance(arguments, str):
                raise ToolArgumentsError(
                    f"the input of {self.name} must be text, not {type(arguments).__name__}",
                    tool_name=self.name,
                )
            return {next(iter(self._keys)): arguments or ""}
        data = _parse_arguments(arguments, self.name)
        data = drop_optional_nulls(data, self._base)
        try:
            instance = self.model.model_validate(data)
        except pydantic.ValidationError as exc:
            errors: list[dict[str, Any]] = [dict(e) for e in exc.errors(include_url=False)]
            detail = "; ".join(_describe_error(error) for error in errors)
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {detail}", tool_name=self.name, errors=errors
            ) from None
        return {key: getattr(instance, attr) for key, attr in self._keys.items()}

    def invoke(self, kwargs: Mapping[str, Any]) -> Any:
        """Run the tool with already validated kwargs; an awaitable result is awaited."""
        result = self._start(kwargs)
        if inspect.isawaitable(result):
            result = run_awaitable(result)
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
    custom: bool = False,
    grammar: Grammar | None = None,
) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    confirm: bool = False,
    custom: bool = False,
    grammar: Grammar | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
    confirm: bool = False,
    custom: bool = False,
    grammar: Grammar | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make ``fn`` a Tool: ``@tool``, ``@tool(name=..., confirm=True)`` or ``tool(fn, ...)``.

    ``@tool(custom=True)`` makes a custom tool, whose function receives the model's raw text;
    ``@tool(grammar=("lark", text))`` or ``("regex", text)`` one whose text follows a grammar.
    """

    def make(target: Callable[..., Any]) -> Tool:
        return as_tool(
            target,
            name=name,
            description=description,
            strict=strict,
            confirm=confirm,
            custom=custom or None,
            grammar=grammar,
        )

    return make if fn is None else make(fn)


def as_tool(obj: Any, **options: Any) -> Tool:
    """A Tool from a Tool, a function (sync or async) or a pydantic model class.

    ``options`` are Tool's keywords (``name``, ``description``, ``strict``, ``confirm``,
    ``custom``, ``grammar``); those left at None keep the Tool's own value when ``obj`` is a
    Tool already.
    """
    options = {key: value for key, value in options.items() if value is not None}
    if isinstance(obj, Tool):
        current = obj._options()
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
# Custom tools

#: A custom tool's grammar: ``("lark", definition)`` or ``("regex", definition)``.
Grammar = tuple[str, str]
GRAMMAR_SYNTAXES = ("lark", "regex")
_OPTIONS = ("name", "description", "strict", "confirm", "custom", "grammar")


def _grammar(grammar: Any, name: str) -> Grammar:
    if isinstance(grammar, Mapping):
        grammar = (grammar.get("syntax"), grammar.get("definition"))
    if (
        not isinstance(grammar, tuple | list)
        or len(grammar) != 2
        or grammar[0] not in GRAMMAR_SYNTAXES
    ):
        raise ToolDefinitionError(
            f"{name}: grammar must be ('lark', text) or ('regex', text), not {_short(grammar)}"
        )
    syntax, definition = grammar
    if not isinstance(definition, str) or not definition.strip():
        raise ToolDefinitionError(
            f"{name}: the {syntax} grammar must be text, not {_short(definition)}"
        )
    return syntax, definition


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _text_parameter(fn: Any, name: str) -> inspect.Parameter:
    """The parameter a custom tool's text goes to: its one required parameter (or its first)."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"cannot read the signature of {name}: {exc}") from None
    named = [
        p for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY)
    ]
    required = [p for p in parameters if p.default is p.empty and p.kind not in _VARIADIC]
    if len(required) > 1 or not named or (required and required[0] is not named[0]):
        raise ToolDefinitionError(
            f"{name}: a custom tool's function takes the model's text as its one required "
            f"argument; it requires {', '.join(p.name for p in required) or 'none it can take'}"
        )
    return named[0]


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def tool_choice_for(
    choice: Any, tools: Mapping[str, Tool] | None, allowed: Sequence[str] | None = None
) -> Any:
    """The request's ``tool_choice`` for what a user wrote: ``auto``/``required``/``none``
    stay; a tool's name forces that tool (a function or a custom tool); ``allowed`` (names)
    limits the model to those tools, in mode ``required`` when ``choice`` is ``required``.
    Anything else (a dict) is passed on as it is."""
    table = tools or {}

    def custom(name: str, what: str) -> bool:
        if tools is not None and name not in table:
            raise RequestValidationError(
                f"Invalid request: {what}: {name!r} is not one of the tools "
                f"({', '.join(table) or 'none'})",
                field="tool_choice",
            )
        # Tools given as definitions (no Tool to ask) are functions.
        return name in table and table[name].custom

    if allowed is not None:
        if not allowed:
            raise RequestValidationError(
                "Invalid request: allowed_tools: name at least one tool", field="tool_choice"
            )
        if choice not in (None, "auto", "required"):
            raise RequestValidationError(
                "Invalid request: tool_choice: with allowed tools it is auto or required, "
                f"not {choice!r}",
                field="tool_choice",
            )
        entries = []
        for name in allowed:
            kind = "custom" if custom(name, "allowed_tools") else "function"
            entries.append({"type": kind, kind: {"name": name}})
        mode = "required" if choice == "required" else "auto"
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": entries}}
    if isinstance(choice, str) and choice not in ("auto", "required", "none"):
        kind = "custom" if custom(choice, "tool_choice") else "function"
        return {"type": kind, kind: {"name": choice}}
    return choice


def relaxed_tool_choice(choice: Any) -> Any:
    """The ``tool_choice`` after a round of tool calls: a forced choice (a named tool,
    ``required``) would never let the model answer, so it becomes ``auto``; allowed tools stay
    allowed, no longer required."""
    if isinstance(choice, Mapping) and choice.get("type") == "allowed_tools":
        allowed = dict(choice.get("allowed_tools") or {})
        return {**choice, "allowed_tools": {**allowed, "mode": "auto"}}
    if choice in (None, "auto", "none"):
        return choice
    return "auto"


# ---------------------------------------------------------------------------------------------
# Names


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
