"""Pydantic models the structured-output tests share (formats, parsing, frames)."""

from __future__ import annotations

import enum
from typing import Literal

from pydantic import BaseModel, Field


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    city: str
    zip: str | None = None


class Person(BaseModel):
    """A person."""

    name: str = Field(description="full name")
    age: int = 30
    colour: Colour = Colour.RED
    work: Address | None = None
    home: Address = Field(description="where they live")
    tags: list[str] = []
    kind: Literal["staff", "guest"] = "guest"


class Node(BaseModel):
    value: int
    children: list[Node] = []


class Team(BaseModel):
    people: list[Person]
