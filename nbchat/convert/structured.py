"""Structured output in one import: the request's ``response_format`` and the reply read back.

The work is done in ``formats`` (building the format), ``parsing`` (reading and validating the
reply) and ``frames`` (records as a DataFrame); this module only gathers their public names.
"""

from __future__ import annotations

from ..protocol.schema import SchemaError, StrictSchemaError
from .formats import response_format_for, schema_of
from .frames import to_frame
from .parsing import StructuredOutputError, parse_reply

__all__ = [
    "SchemaError",
    "StrictSchemaError",
    "StructuredOutputError",
    "parse_reply",
    "response_format_for",
    "schema_of",
    "to_frame",
]
