from __future__ import annotations

import subprocess
import sys

import nbchat
from nbchat.convert import formats, frames, parsing, structured
from nbchat.protocol import schema


def test_the_structured_names_are_the_ones_the_modules_define() -> None:
    assert structured.parse_reply is parsing.parse_reply
    assert structured.StructuredOutputError is parsing.StructuredOutputError
    assert structured.response_format_for is formats.response_format_for
    assert structured.schema_of is formats.schema_of
    assert structured.to_frame is frames.to_frame
    assert structured.StrictSchemaError is schema.StrictSchemaError
    for name in ("parse_reply", "response_format_for", "to_frame", "StructuredOutputError"):
        assert getattr(nbchat, name) is getattr(structured, name)


def test_importing_the_module_does_not_import_pandas():
    code = "import sys, nbchat.convert.structured\nprint('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
