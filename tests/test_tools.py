from __future__ import annotations

import asyncio
import enum
import functools
import os
import signal
import threading
import time
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from nbchat.convert.tools import (
    MAX_ROUNDS,
    Tool,
    ToolArgumentsError,
    ToolDefinitionError,
    as_tool,
    tool,
    tool_definitions,
    tools_by_name,
)
from nbchat.protocol.types import ToolDefinition
from tests.reference import WEATHER_TOOL
from tests.signals import ctrl_c_raises


def get_weather(location: str, units: Optional[Literal["celsius", "fahrenheit"]] = None) -> dict:  # noqa: UP045
    """获取指定城市的当前天气信息。

    Args:
        location: 城市名称,如:Beijing, China
        units: 温度单位,默认 celsius
    """
    return {"temperature": 25, "units": units}


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Address(BaseModel):
    street: str
    city: str = "Beijing"


class Person(BaseModel):
    name: str
    address: Address


class Extract(BaseModel):
    """Record a person mentioned in the text."""

    name: str = Field(description="Full name")
    age: int


class Adder(BaseModel):
    """Add two numbers."""

    a: int
    b: int

    def run(self) -> int:
        return self.a + self.b


class Multiplier(BaseModel):
    """Multiply two numbers."""

    a: int
    b: int

    async def __call__(self) -> int:
        await asyncio.sleep(0)
        return self.a * self.b


def _params(fn: Any, **options: Any) -> dict[str, Any]:
    return as_tool(fn, **options).parameters


def _prop(fn: Any, name: str, **options: Any) -> dict[str, Any]:
    return _params(fn, strict=False, **options)["properties"][name]


# ---------------------------------------------------------------------------------------------
# Schema for each supported type


def test_basic_types_map_to_json_schema_types() -> None:
    def f(s: str, i: int, x: float, b: bool) -> None:
        pass

    props = _params(f)["properties"]
    assert props == {
        "s": {"type": "string"},
        "i": {"type": "integer"},
        "x": {"type": "number"},
        "b": {"type": "boolean"},
    }


def test_literal_becomes_enum() -> None:
    def f(mode: Literal["fast", "slow"]) -> None:
        pass

    assert _prop(f, "mode") == {"type": "string", "enum": ["fast", "slow"]}


def test_enum_class_becomes_enum_of_values() -> None:
    def f(color: Color) -> None:
        pass

    schema = _params(f, strict=False)
    assert schema["properties"]["color"] == {"$ref": "#/$defs/Color"}
    assert schema["$defs"]["Color"] == {"type": "string", "enum": ["red", "green"]}


def test_optional_is_a_nullable_type() -> None:
    def f(n: Optional[int] = None) -> None:  # noqa: UP045
        pass

    assert _prop(f, "n") == {"type": ["integer", "null"], "default": None}


def test_list_and_dict_parameters() -> None:
    def f(tags: list[str], counts: dict[str, int]) -> None:
        pass

    props = _params(f)["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_nested_pydantic_models_go_to_defs() -> None:
    def f(person: Person) -> None:
        pass

    schema = _params(f, strict=True)
    assert schema["properties"]["person"] == {"$ref": "#/$defs/Person"}
    address = schema["$defs"]["Address"]
    # Strict: every field required, the defaulted one nullable, no extra keys.
    assert address["required"] == ["street", "city"]
    assert address["properties"]["city"]["type"] == ["string", "null"]
    assert address["additionalProperties"] is False


def test_defaults_are_optional_in_plain_schema() -> None:
    def f(query: str, limit: int = 10, exact: bool = False) -> None:
        pass

    schema = _params(f, strict=False)
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"] == {"type": "integer", "default": 10}
    assert schema["properties"]["exact"]["default"] is False
    assert schema["additionalProperties"] is False


def test_no_titles_anywhere_in_the_schema() -> None:
    def f(person: Person, title: str) -> None:
        pass

    def titles(node: Any) -> int:
        if isinstance(node, list):
            return sum(titles(item) for item in node)
        if not isinstance(node, dict):
            return 0
        found = int("title" in node)
        subs = [v for k, v in node.items() if k not in ("properties", "$defs")]
        subs += list(node.get("properties", {}).values()) + list(node.get("$defs", {}).values())
        return found + titles(subs)

    schema = _params(f, strict=False)
    assert titles(schema) == 0
    # A parameter called "title" survives.
    assert schema["properties"]["title"] == {"type": "string"}


def test_function_without_parameters() -> None:
    def now() -> str:
        """The time."""
        return "12:00"

    definition = as_tool(now).definition()["function"]
    assert definition["parameters"] == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }
    assert definition["strict"] is True


# ---------------------------------------------------------------------------------------------
# Descriptions


def test_description_is_the_first_docstring_paragraph() -> None:
    def f(x: int) -> None:
        """Do the thing
        across two lines.

        More detail that the model does not need.

        Args:
            x: the input
        """

    made = as_tool(f)
    assert made.description == "Do the thing across two lines."
    assert made.parameters["properties"]["x"]["description"] == "the input"


def test_google_docstring_with_types_and_continuation_lines() -> None:
    def f(path: str, depth: int = 1) -> None:
        """Walk a tree.

        Args:
            path (str): Where to start,
                relative to the cwd.
            depth: How deep.

        Returns:
            Nothing.
        """

    props = _params(f)["properties"]
    assert props["path"]["description"] == "Where to start, relative to the cwd."
    assert props["depth"]["description"] == "How deep."


def test_numpy_docstring() -> None:
    def f(a: int, b: int) -> None:
        """Sum two numbers.

        Parameters
        ----------
        a : int
            The first.
        b : int
            The second,
            a longer one.

        Returns
        -------
        int
        """

    made = as_tool(f)
    assert made.description == "Sum two numbers."
    assert made.parameters["properties"]["a"]["description"] == "The first."
    assert made.parameters["properties"]["b"]["description"] == "The second, a longer one."


def test_sphinx_docstring() -> None:
    def f(a: int, b: str) -> None:
        """Sphinx style.

        :param a: first one
        :param str b: second one
            continued
        :returns: nothing
        """

    made = as_tool(f)
    assert made.description == "Sphinx style."
    assert made.parameters["properties"]["a"]["description"] == "first one"
    assert made.parameters["properties"]["b"]["description"] == "second one continued"


def test_annotated_string_and_field_descriptions_win_over_the_docstring() -> None:
    def f(
        a: Annotated[str, "from Annotated"],
        b: Annotated[int, Field(description="from Field in Annotated")],
        c: int = Field(3, description="from Field default"),
        d: int = 0,
    ) -> None:
        """Describe.

        Args:
            a: from docstring
            b: from docstring
            c: from docstring
            d: from docstring
        """

    props = _params(f, strict=False)["properties"]
    assert props["a"]["description"] == "from Annotated"
    assert props["b"]["description"] == "from Field in Annotated"
    assert props["c"] == {"type": "integer", "default": 3, "description": "from Field default"}
    assert props["d"]["description"] == "from docstring"


def test_field_default_is_used_when_called_through_the_tool() -> None:
    def f(c: int = Field(3, description="c")) -> int:
        return c * 2

    made = as_tool(f)
    kwargs = made.validate("{}")
    assert kwargs == {"c": 3}
    assert made.invoke(kwargs) == 6


def test_explicit_name_and_description_override() -> None:
    made = tool(get_weather, name="weather", description="Weather now.")
    function = made.definition()["function"]
    assert function["name"] == "weather"
    assert function["description"] == "Weather now."


def test_no_docstring_leaves_description_out() -> None:
    def bare(x: int) -> int:
        return x

    assert "description" not in as_tool(bare).definition()["function"]


# ---------------------------------------------------------------------------------------------
# The reference's tool, strict and non-strict


def test_get_weather_matches_the_reference_definition() -> None:
    definition = as_tool(get_weather).definition()
    expected = WEATHER_TOOL
    assert definition["type"] == "function"
    function = definition["function"]
    assert function["name"] == "get_weather"
    assert function["description"] == expected["function"]["description"]
    assert function["strict"] is True
    params = function["parameters"]
    ref = expected["function"]["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ref["required"]
    assert params["additionalProperties"] is False
    assert params["properties"]["location"] == ref["properties"]["location"]
    units = params["properties"]["units"]
    assert units["type"] == ["string", "null"]
    assert units["description"] == "温度单位,默认 celsius"
    # The one difference: null is listed in enum, so that validators which read enum strictly
    # (JSON Schema says enum limits every value) accept the null that type allows.
    assert units["enum"] == [*ref["properties"]["units"]["enum"], None]
    assert set(units) == {"type", "enum", "description"}


def test_definition_is_accepted_by_the_protocol_model() -> None:
    definition = as_tool(get_weather).definition()
    parsed = ToolDefinition.model_validate(definition)
    assert parsed.to_dict() == definition


def test_non_strict_get_weather_keeps_units_optional() -> None:
    function = as_tool(get_weather, strict=False).definition()["function"]
    assert function["strict"] is False
    assert function["parameters"]["required"] == ["location"]
    assert function["parameters"]["properties"]["units"]["default"] is None


def test_free_form_dict_falls_back_to_non_strict() -> None:
    def f(counts: dict[str, int]) -> None:
        pass

    made = as_tool(f)
    assert made.strict is False
    assert made.definition()["function"]["strict"] is False


def test_any_typed_parameter_falls_back_to_non_strict() -> None:
    def f(value: Any) -> None:
        pass

    assert as_tool(f).strict is False


def test_strict_true_with_free_form_dict_is_an_error() -> None:
    def f(counts: dict[str, int]) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match=r"f cannot be strict: .*free-form"):
        as_tool(f, strict=True)


def test_strict_schema_leaves_no_defaults() -> None:
    def f(a: int = 1, b: str = "x") -> None:
        pass

    schema = _params(f)
    assert "default" not in repr(schema)
    assert schema["required"] == ["a", "b"]


# ---------------------------------------------------------------------------------------------
# Clear errors


def test_missing_type_hint_is_a_one_line_error() -> None:
    def f(x, y: int) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(ToolDefinitionError) as info:
        as_tool(f)
    assert str(info.value) == "parameter 'x' of f has no type hint; the model needs one"


def test_lambda_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="a lambda has no name"):
        as_tool(lambda: 1)


def test_named_lambda_without_parameters_works() -> None:
    made = tool(lambda: 42, name="answer")
    assert made.name == "answer"
    assert made.invoke(made.validate("")) == 42


def test_star_args_and_kwargs_are_rejected() -> None:
    def f(*items: int) -> None:
        pass

    def g(a: int, **extra: int) -> None:
        pass

    with pytest.raises(ToolDefinitionError, match=r"f takes \*items; a tool needs named"):
        as_tool(f)
    with pytest.raises(ToolDefinitionError, match=r"g takes \*\*extra"):
        as_tool(g)


def test_bad_tool_name_is_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="tool name 'two words' is not allowed"):
        tool(get_weather, name="two words")


def test_type_without_schema_is_rejected() -> None:
    class Opaque:
        pass

    def f(thing: Opaque) -> None:
        pass

    f.__annotations__["thing"] = Opaque  # a real class, not a string to resolve
    with pytest.raises(ToolDefinitionError, match="cannot build a schema for f"):
        as_tool(f)


def test_unresolvable_hint_is_rejected() -> None:
    def f(x: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolDefinitionError, match="cannot resolve the type hints of f"):
        as_tool(f)


def test_non_callable_and_plain_class_are_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="int object is not callable"):
        as_tool(3)
    with pytest.raises(ToolDefinitionError, match="class Color is not a pydantic model"):
        as_tool(Color)


def test_partial_needs_a_name() -> None:
    def power(base: int, exp: int) -> int:
        return base**exp

    square = functools.partial(power, exp=2)
    with pytest.raises(ToolDefinitionError, match="partial object has no __name__"):
        as_tool(square)
    made = as_tool(square, name="square")
    assert made.invoke(made.validate('{"base": 5}')) == 25


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(ToolDefinitionError, match="two tools are named 'get_weather'"):
        tools_by_name([get_weather, tool(get_weather)])


# ---------------------------------------------------------------------------------------------
# Validation


def test_validate_good_arguments() -> None:
    made = as_tool(get_weather)
    assert made.validate('{"location": "Beijing, China", "units": "celsius"}') == {
        "location": "Beijing, China",
        "units": "celsius",
    }


def test_validate_fills_defaults_and_accepts_a_dict() -> None:
    def f(query: str, limit: int = 10) -> None:
        pass

    assert as_tool(f).validate({"query": "x"}) == {"query": "x", "limit": 10}


def test_validate_bad_json() -> None:
    with pytest.raises(ToolArgumentsError, match="arguments for get_weather are not valid JSON"):
        as_tool(get_weather).validate('{"location": "Bei')


def test_validate_non_object_json() -> None:
    with pytest.raises(ToolArgumentsError, match="must be a JSON object, not an array"):
        as_tool(get_weather).validate("[1, 2]")


def test_validate_wrong_type_names_the_parameter() -> None:
    def f(count: int) -> None:
        pass

    with pytest.raises(ToolArgumentsError) as info:
        as_tool(f).validate('{"count": "many"}')
    assert str(info.value).startswith("invalid arguments for f: count: Input should be")
    assert info.value.tool_name == "f"
    assert info.value.errors[0]["loc"] == ("count",)


def test_validate_missing_required_and_unexpected_argument() -> None:
    with pytest.raises(ToolArgumentsError) as info:
        as_tool(get_weather).validate('{"units": "celsius", "city": "x"}')
    message = str(info.value)
    assert "location: missing required argument" in message
    assert "city: unexpected argument" in message
    assert "\n" not in message


def test_validate_rejects_a_value_outside_the_literal() -> None:
    with pytest.raises(ToolArgumentsError, match="units: Input should be 'celsius' or"):
        as_tool(get_weather).validate('{"location": "x", "units": "kelvin"}')


def test_validate_builds_nested_models_and_enums() -> None:
    def f(person: Person, color: Color = Color.RED) -> None:
        pass

    kwargs = as_tool(f).validate(
        '{"person": {"name": "Li", "address": {"street": "Main"}}, "color": "green"}'
    )
    assert kwargs["person"] == Person(name="Li", address=Address(street="Main"))
    assert kwargs["color"] is Color.GREEN


def test_null_for_a_defaulted_parameter_means_the_default() -> None:
    def f(limit: int = 10, label: Optional[str] = "x") -> None:  # noqa: UP045
        pass

    made = as_tool(f)
    # Strict mode makes the model send null for "not given"; int does not accept None.
    assert made.validate('{"limit": null, "label": null}') == {"limit": 10, "label": None}


def test_null_in_a_nested_model_field_means_its_default() -> None:
    def f(person: Person) -> None:
        pass

    kwargs = as_tool(f).validate(
        '{"person": {"name": "Li", "address": {"street": "Main", "city": null}}}'
    )
    assert kwargs["person"].address.city == "Beijing"


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = 9


class Dog(BaseModel):
    kind: Literal["dog"]
    bark: str = "woof"


def test_null_in_a_union_member_field_means_that_members_default() -> None:
    def adopt(pet: Cat | Dog) -> None:
        pass

    made = as_tool(adopt)
    assert made.strict is True
    assert made.validate('{"pet": {"kind": "dog", "bark": null}}') == {"pet": Dog(kind="dog")}
    assert made.validate('{"pet": {"kind": "cat", "lives": null}}') == {"pet": Cat(kind="cat")}


def test_an_optional_literal_can_still_be_left_out_in_strict_mode() -> None:
    def f(mode: Optional[Literal["fast"]] = None) -> None:  # noqa: UP045
        pass

    made = as_tool(f)
    # A const beside a type list would reject the null that means "not given".
    assert made.parameters["properties"]["mode"] == {
        "anyOf": [{"const": "fast", "type": "string"}, {"type": "null"}]
    }
    assert made.validate('{"mode": null}') == {"mode": None}


def test_null_for_a_required_parameter_is_still_an_error() -> None:
    def f(limit: int) -> None:
        pass

    with pytest.raises(ToolArgumentsError, match="limit: Input should be a valid integer"):
        as_tool(f).validate('{"limit": null}')


def test_empty_arguments_for_a_function_without_parameters() -> None:
    def ping() -> str:
        return "pong"

    assert as_tool(ping).validate("") == {}
    assert as_tool(ping).validate("{}") == {}


def test_json_encoded_twice_is_accepted() -> None:
    made = as_tool(get_weather)
    assert made.validate('"{\\"location\\": \\"Paris\\"}"')["location"] == "Paris"


def test_numbers_are_accepted_for_string_parameters() -> None:
    def f(zip_code: str) -> None:
        pass

    assert as_tool(f).validate('{"zip_code": 10115}') == {"zip_code": "10115"}


def test_parameter_names_that_clash_with_pydantic_work() -> None:
    def f(model_config: str, json: int, _private: bool = False) -> tuple:
        return model_config, json, _private

    made = as_tool(f)
    assert set(made.parameters["properties"]) == {"model_config", "json", "_private"}
    kwargs = made.validate('{"model_config": "a", "json": 2, "_private": true}')
    assert made.invoke(kwargs) == ("a", 2, True)


def test_positional_only_parameters_are_passed_by_position() -> None:
    def f(a: int, /, b: int) -> int:
        return a - b

    made = as_tool(f)
    assert made.invoke(made.validate('{"a": 5, "b": 2}')) == 3


# ---------------------------------------------------------------------------------------------
# The Tool object and the decorator


def test_decorator_forms() -> None:
    @tool
    def plain(x: int) -> int:
        """Plain."""
        return x + 1

    @tool(name="renamed", confirm=True, strict=False)
    def configured(x: int) -> int:
        return x

    assert isinstance(plain, Tool) and plain.name == "plain" and plain.confirm is False
    assert configured.name == "renamed"
    assert configured.confirm is True
    assert configured.strict is False
    # Still callable as the function it was.
    assert plain(1) == 2
    assert plain.__doc__ == "Plain."
    assert plain.__wrapped__(2) == 3


def test_as_tool_returns_a_tool_unchanged_or_replaced() -> None:
    made = as_tool(get_weather)
    assert as_tool(made) is made
    assert as_tool(made, name="get_weather", confirm=False) is made
    renamed = as_tool(made, name="weather", confirm=True)
    assert renamed is not made
    assert (renamed.name, renamed.confirm, made.name) == ("weather", True, "get_weather")


def test_repr_names_the_tool() -> None:
    assert repr(tool(get_weather, confirm=True)) == (
        "Tool(name='get_weather', strict=True, confirm=True)"
    )


def test_definition_is_a_fresh_copy() -> None:
    made = as_tool(get_weather)
    made.definition()["function"]["parameters"]["properties"].clear()
    assert "location" in made.definition()["function"]["parameters"]["properties"]


def test_tools_by_name_accepts_a_mapping_and_renames() -> None:
    table = tools_by_name({"weather": get_weather})
    assert list(table) == ["weather"]
    assert table["weather"].name == "weather"
    assert tool_definitions([get_weather])[0]["function"]["name"] == "get_weather"


def test_max_rounds_default() -> None:
    assert MAX_ROUNDS == 8


# ---------------------------------------------------------------------------------------------
# Pydantic model classes as tools


def test_model_class_defines_a_tool() -> None:
    made = as_tool(Extract)
    function = made.definition()["function"]
    assert function["name"] == "Extract"
    assert function["description"] == "Record a person mentioned in the text."
    assert function["parameters"]["properties"]["name"] == {
        "type": "string",
        "description": "Full name",
    }
    assert function["parameters"]["required"] == ["name", "age"]
    assert function["strict"] is True


def test_model_class_without_run_returns_the_instance() -> None:
    made = as_tool(Extract)
    value = made.invoke(made.validate('{"name": "Li Lei", "age": "30"}'))
    assert value == Extract(name="Li Lei", age=30)


def test_model_class_with_run_returns_its_result() -> None:
    made = as_tool(Adder)
    assert made.invoke(made.validate('{"a": 2, "b": 3}')) == 5
    assert made(a=1, b=1) == 2


def test_model_class_with_async_call_is_awaited() -> None:
    made = as_tool(Multiplier)
    assert made.is_async is True
    assert made.invoke(made.validate('{"a": 2, "b": 3}')) == 6


# ---------------------------------------------------------------------------------------------
# Async functions


async def _async_double(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


def test_async_function_runs_without_a_loop() -> None:
    made = as_tool(_async_double)
    assert made.is_async is True
    assert made.invoke({"x": 4}) == 8


def test_async_function_runs_inside_a_running_loop() -> None:
    made = as_tool(_async_double)

    async def inside() -> int:
        # As in Jupyter: a loop runs in this thread, so asyncio.run() is not an option.
        return made.invoke({"x": 5})

    assert asyncio.run(inside()) == 10


def test_ainvoke_awaits_on_the_current_loop() -> None:
    made = as_tool(_async_double)

    async def inside() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        seen = []

        async def where(x: int) -> int:
            seen.append(asyncio.get_running_loop() is loop)
            return x

        other = as_tool(where)
        return await made.ainvoke({"x": 3}), await other.ainvoke({"x": 1}) + len(seen)

    assert asyncio.run(inside()) == (6, 2)


def test_calling_an_async_tool_directly_returns_the_coroutine() -> None:
    made = as_tool(_async_double)
    coroutine = made(2)
    assert asyncio.iscoroutine(coroutine)
    assert asyncio.run(coroutine) == 4


# ---------------------------------------------------------------------------------------------
# Shapes strict servers reject


def _refs_with_siblings(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [found for item in node for found in _refs_with_siblings(item)]
    if not isinstance(node, dict):
        return []
    here = [node] if "$ref" in node and len(node) > 1 else []
    return here + [found for value in node.values() for found in _refs_with_siblings(value)]


def test_described_model_parameter_has_no_ref_with_siblings() -> None:
    def f(person: Person, color: Color = Color.RED) -> None:
        """Describe.

        Args:
            person: who it is about
        """

    schema = _params(f, strict=True)
    assert _refs_with_siblings(schema) == []
    person = schema["properties"]["person"]
    assert person["description"] == "who it is about"
    assert person["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert schema["properties"]["color"] == {
        "type": ["string", "null"],
        "enum": ["red", "green", None],
    }
    # Definitions nobody refers to any more are gone.
    assert set(schema["$defs"]) == {"Address"}


def test_callable_object_needs_a_name_and_uses_its_call_hints() -> None:
    class Counter:
        """Count things."""

        def __call__(self, step: int = 1) -> int:
            return step * 10

    with pytest.raises(ToolDefinitionError, match="Counter object has no __name__"):
        as_tool(Counter())
    made = as_tool(Counter(), name="count")
    assert made.parameters["properties"]["step"] == {"type": ["integer", "null"]}
    assert made.invoke(made.validate('{"step": 2}')) == 20


def test_partial_takes_the_docstring_of_its_function() -> None:
    def power(base: int, exp: int) -> int:
        """Raise base to exp."""
        return base**exp

    made = as_tool(functools.partial(power, exp=3), name="cube")
    assert made.description == "Raise base to exp."
    assert set(made.parameters["properties"]) == {"base", "exp"}


def test_ctrl_c_cancels_an_async_tool_run_beside_a_busy_loop() -> None:
    cancelled = threading.Event()

    async def sleeper() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    made = as_tool(sleeper)

    async def inside() -> None:
        # A real SIGINT, as Jupyter's interrupt button sends, while the tool runs.
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            made.invoke({})
        assert time.monotonic() - started < 2

    # Not asyncio.run(): its own SIGINT handler would cancel this task instead of raising.
    loop = asyncio.new_event_loop()
    try:
        with ctrl_c_raises():
            loop.run_until_complete(inside())
    finally:
        loop.close()
    assert cancelled.wait(2)


# ---------------------------------------------------------------------------------------------
# Custom tools: free text in, not JSON


def run_sql(query: str) -> str:
    """Run a SQL query on the sales database."""
    return f"ran {query}"


def test_a_custom_tool_is_defined_by_its_name_and_description() -> None:
    custom = tool(run_sql, custom=True)
    assert custom.custom and custom.parameters is None and custom.strict is None
    assert custom.definition() == {
        "type": "custom",
        "custom": {"name": "run_sql", "description": "Run a SQL query on the sales database."},
    }
    assert repr(custom) == "Tool(name='run_sql', custom=True)"


@pytest.mark.parametrize("syntax", ["lark", "regex"])
def test_a_grammar_makes_a_custom_tool_whose_input_follows_it(syntax: str) -> None:
    @tool(grammar=(syntax, r"start: /SELECT .+/"))
    def query(text: str) -> str:
        return text

    assert query.custom
    assert query.definition()["custom"]["format"] == {
        "type": "grammar",
        "grammar": {"syntax": syntax, "definition": r"start: /SELECT .+/"},
    }
    assert as_tool(query) is query
    assert query.replace(grammar=None, custom=False).custom is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"grammar": ("ebnf", "x")}, "grammar must be"),
        ({"grammar": ("lark", 42)}, "the lark grammar must be text"),
        ({"grammar": ("regex", "  ")}, "the regex grammar must be text"),
        ({"grammar": "lark"}, "grammar must be"),
        ({"custom": True, "strict": True}, "strict applies to JSON arguments"),
    ],
    ids=["unknown-syntax", "not-text", "blank", "not-a-pair", "strict"],
)
def test_a_bad_grammar_is_a_one_line_definition_error(options: dict, message: str) -> None:
    with pytest.raises(ToolDefinitionError, match=message) as info:
        tool(run_sql, **options)
    assert "\n" not in str(info.value)


def test_a_custom_tool_takes_one_text_argument() -> None:
    def two(a: str, b: str) -> str:
        return a + b

    def nothing() -> None:
        return None

    def with_options(text, *, limit: int = 5, verbose=False):  # no hints needed
        return text

    with pytest.raises(ToolDefinitionError, match="one required argument; it requires a, b"):
        tool(two, custom=True)
    with pytest.raises(ToolDefinitionError, match="none it can take"):
        tool(nothing, custom=True)
    with pytest.raises(ToolDefinitionError, match="not a pydantic model"):
        tool(Person, custom=True)
    assert tool(with_options, custom=True).validate("SELECT 1") == {"text": "SELECT 1"}


def test_a_custom_tool_is_given_the_raw_input_as_it_came() -> None:
    custom = tool(run_sql, custom=True)
    raw = '{"not": "parsed"} \n SELECT *'
    kwargs = custom.validate(raw)
    assert kwargs == {"query": raw}
    assert custom.invoke(kwargs) == f"ran {raw}"
    with pytest.raises(ToolArgumentsError, match="must be text"):
        custom.validate({"query": "x"})


def test_a_positional_only_text_parameter_is_passed_by_position() -> None:
    def echo(text: str, /) -> str:
        return text

    custom = tool(echo, custom=True)
    assert custom.invoke(custom.validate("hi")) == "hi"


def test_tool_choice_names_a_custom_tool_or_allows_a_subset() -> None:
    from nbchat.convert.tools import tool_choice_for

    box = tools_by_name([get_weather, tool(run_sql, custom=True)])
    assert tool_choice_for("run_sql", box) == {"type": "custom", "custom": {"name": "run_sql"}}
    assert tool_choice_for("get_weather", box) == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    assert tool_choice_for("auto", box) == "auto"
    assert tool_choice_for(None, box, ["run_sql", "get_weather"]) == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "auto",
            "tools": [
                {"type": "custom", "custom": {"name": "run_sql"}},
                {"type": "function", "function": {"name": "get_weather"}},
            ],
        },
    }
    required = tool_choice_for("required", box, ["run_sql"])
    assert required["allowed_tools"]["mode"] == "required"


@pytest.mark.parametrize(
    ("choice", "allowed", "message"),
    [
        ("nope", None, "'nope' is not one of the tools"),
        (None, ["nope"], "allowed_tools: 'nope' is not one of the tools"),
        (None, [], "name at least one tool"),
        ("none", ["run_sql"], "auto or required"),
    ],
)
def test_a_choice_of_tools_that_are_not_there_is_refused(choice, allowed, message) -> None:
    from nbchat.convert.tools import tool_choice_for
    from nbchat.protocol.exceptions import RequestValidationError

    box = tools_by_name([tool(run_sql, custom=True)])
    with pytest.raises(RequestValidationError, match=message) as info:
        tool_choice_for(choice, box, allowed)
    assert info.value.field == "tool_choice"


def test_after_a_round_a_forced_choice_relaxes_and_allowed_tools_stay_allowed() -> None:
    from nbchat.convert.tools import relaxed_tool_choice

    allowed = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": []}}
    assert relaxed_tool_choice(allowed)["allowed_tools"]["mode"] == "auto"
    assert relaxed_tool_choice({"type": "custom", "custom": {"name": "x"}}) == "auto"
    assert relaxed_tool_choice("required") == "auto"
    assert relaxed_tool_choice("none") == "none"
