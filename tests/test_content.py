"""convert/content.py: the user message built from a prompt and the objects attached to it."""

from __future__ import annotations

import pytest
from PIL import Image

from nbchat.convert.content import Attachments, build_content
from nbchat.convert.images import ImageError


def test_text_alone_is_a_string_and_nothing_is_attached():
    content, attachments = build_content("What is 2+2?")
    assert content == "What is 2+2?"
    assert not attachments
    assert attachments.tokens == attachments.text_tokens > 0


def test_data_blocks_follow_the_text_as_json_under_their_names():
    content, attachments = build_content(
        "Compare these.  ", data=[{"a": 1}, [1, 2]], names=["config"]
    )
    assert isinstance(content, str)
    assert content.startswith("Compare these.\n\nData `config`")
    assert '{"a":1}' in content and "[1,2]" in content
    assert len(attachments.data) == 2 and attachments  # a data block counts as attached


def test_data_without_text_is_the_blocks_alone():
    content, _ = build_content("  ", data=[{"b": 2}], names=["x"])
    assert content.startswith("Data `x`")


def test_images_make_a_list_of_parts_the_text_first():
    image = Image.new("RGB", (64, 32), "red")
    content, attachments = build_content("Describe", images=[image], detail="low")
    assert [part["type"] for part in content] == ["text", "image_url"]
    assert content[0] == {"type": "text", "text": "Describe"}
    assert content[1]["image_url"]["url"].startswith("data:image/")
    assert content[1]["image_url"]["detail"] == "low"
    assert attachments.tokens == attachments.text_tokens + attachments.images[0].tokens


def test_an_image_without_text_sends_no_empty_text_part():
    content, _ = build_content("", images=[Image.new("RGB", (8, 8), "blue")])
    assert [part["type"] for part in content] == ["image_url"]


def test_an_object_that_cannot_be_sent_raises_the_conversions_error():
    with pytest.raises(ImageError):
        build_content("x", images=[b"not an image"])


def test_attachments_show_what_was_attached_and_the_estimate():
    image = Image.new("RGB", (64, 32), "red")
    _, attachments = build_content("Describe", images=[image], data=[{"a": 1}], names=["cfg"])
    bundle = attachments._repr_mimebundle_()
    lines = bundle["text/plain"].splitlines()
    assert lines[0].startswith("PNG 64×32") and lines[1].startswith("cfg: dict")
    assert lines[-1] == f"Prompt: ~{attachments.tokens:,} tokens (estimated)"
    assert "<img" in bundle["text/html"] and "Prompt: ~" in bundle["text/html"]
    assert not Attachments()
