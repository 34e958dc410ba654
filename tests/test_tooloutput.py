"""convert/tooloutput.py: a tool's answer as text for the model and images beside it."""

from __future__ import annotations

from nbchat.convert.tooloutput import ToolOutput


def test_the_text_is_the_tool_message_as_it_is():
    output = ToolOutput("42 rows\nlast: 7")
    assert str(output) == "42 rows\nlast: 7"
    assert output.images == []


def test_the_repr_is_short_whatever_the_text_and_counts_the_images():
    output = ToolOutput("x" * 500, images=["one", "two"])
    shown = repr(output)
    assert shown.startswith("ToolOutput('xxx") and shown.endswith("…', images=2)")
    assert len(shown) < 120
    assert repr(ToolOutput("short")) == "ToolOutput('short', images=0)"


def test_each_output_has_its_own_image_list():
    first, second = ToolOutput("a"), ToolOutput("b")
    first.images.append("image")
    assert second.images == []
