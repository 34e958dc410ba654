from __future__ import annotations

import functools
import inspect
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from nbchat.convert.signature import docstring_of, hinted, model_keys, signature_model
from nbchat.convert.toolerrors import ToolDefinitionError


def test_each_parameter_becomes_a_field_named_by_its_position_with_its_name_as_alias() -> None:
    def f(schema: str, copy: int = 2, /, *, json: bool = False) -> None:
        pass

    model, keys, positional = signature_model(f, "f", {})
    assert keys == {"schema": "p0", "copy": "p1", "json": "p2"}
    assert [p.name for p in positional] == ["schema", "copy"]
    instance = model.model_validate({"schema": "s"})
    assert (instance.p0, instance.p1, instance.p2) == ("s", 2, False)
    assert model.model_fields["p0"].alias == "schema"


def test_descriptions_come_from_field_then_annotated_then_the_docstring() -> None:
    def f(
        a: Annotated[int, Field(description="field")],
        b: Annotated[int, "annotated"],
        c: int,
    ) -> None:
        pass

    model, _, _ = signature_model(f, "f", {"a": "doc", "b": "doc", "c": "doc"})
    described = {info.alias: info.description for info in model.model_fields.values()}
    assert described == {"a": "field", "b": "annotated", "c": "doc"}


def test_unknown_arguments_are_refused_and_numbers_become_strings() -> None:
    def f(text: str) -> None:
        pass

    model, _, _ = signature_model(f, "f", {})
    assert model.model_validate({"text": 5}).p0 == "5"
    with pytest.raises(Exception, match="Extra inputs are not permitted"):
        model.model_validate({"text": "a", "other": 1})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def f(*args: int): pass", "f takes \\*args; a tool needs named parameters only"),
        ("def f(**kw: int): pass", "f takes \\*\\*kw; a tool needs named parameters only"),
        ("def f(x): pass", "parameter 'x' of f has no type hint"),
        ("def f(x: 'Nowhere'): pass", "cannot resolve the type hints of f"),
    ],
    ids=["star-args", "star-kwargs", "no-hint", "unresolvable"],
)
def test_what_cannot_be_a_tool_is_a_definition_error(source: str, message: str) -> None:
    namespace: dict[str, object] = {}
    exec(source, namespace)
    with pytest.raises(ToolDefinitionError, match=message):
        signature_model(namespace["f"], "f", {})  # type: ignore[arg-type]


def test_hinted_finds_the_function_behind_partials_and_callable_objects() -> None:
    def power(base: int, exp: int) -> int:
        """Raise."""
        return base**exp

    class Counter:
        def __call__(self, step: int) -> int:
            """Count."""
            return step

    assert hinted(functools.partial(functools.partial(power, exp=2))) is power
    assert hinted(Counter()) is inspect.getattr_static(Counter, "__call__")
    assert docstring_of(functools.partial(power), False) == "Raise."
    assert docstring_of(Counter(), False) == "Count."


def test_a_model_class_gives_its_own_docstring_never_base_models() -> None:
    class Plain(BaseModel):
        x: int

    class Documented(BaseModel):
        """Mine.

        More.
        """

    assert docstring_of(Plain, True) == ""
    assert docstring_of(Documented, True) == "Mine.\n\nMore."


def test_model_keys_map_aliases_to_attributes() -> None:
    class M(BaseModel):
        plain: int
        aliased: int = Field(alias="from")
        validated: int = Field(validation_alias="v")

    assert model_keys(M) == {"plain": "plain", "from": "aliased", "v": "validated"}
