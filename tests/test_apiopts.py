"""The cell options of the newer parts of the API, and the request fields they become."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from IPython.core.error import UsageError

from nbchat.notebook.apiopts import api_attachments, api_fields, metadata_pair, predicted_text


def args(**given):
    names = [
        "service_tier",
        "verbosity",
        "prompt_cache_key",
        "safety_identifier",
        "metadata",
        "web_search",
        "speak",
        "predict",
        "allowed_tools",
        "audio",
        "file",
        "sample_rate",
    ]
    return SimpleNamespace(**{name: given.get(name) for name in names})


def edit_me(x):
    return x + 1


def test_no_option_no_field():
    assert api_fields(args(), {}, stream=True) == {}
    assert api_attachments(args(), {}) == {"recordings": [], "files": []}


def test_each_option_becomes_its_field():
    fields = api_fields(
        args(
            service_tier="flex",
            verbosity="low",
            prompt_cache_key="k1",
            safety_identifier="user-7",
            metadata=[("run", "7")],
            web_search="high",
            allowed_tools=["f", "g"],
            predict="code",
        ),
        {"code": "x = 1\n"},
        stream=False,
    )
    assert fields == {
        "service_tier": "flex",
        "verbosity": "low",
        "prompt_cache_key": "k1",
        "safety_identifier": "user-7",
        "metadata": {"run": "7"},
        "web_search_options": {"search_context_size": "high"},
        "allowed_tools": ["f", "g"],
        "prediction": {"type": "content", "content": "x = 1\n"},
    }
    assert api_fields(args(web_search=""), {}, stream=True) == {"web_search_options": {}}


@pytest.mark.parametrize(("stream", "fmt"), [(True, "pcm16"), (False, "wav")])
def test_speak_asks_for_audio_in_the_format_that_can_arrive(stream, fmt):
    assert api_fields(args(speak="coral"), {}, stream=stream) == {
        "modalities": ["text", "audio"],
        "audio": {"voice": "coral", "format": fmt},
    }


def test_predict_sends_text_or_a_functions_source():
    assert predicted_text("abc") == "abc"
    assert predicted_text(edit_me).startswith("def edit_me(x):")
    with pytest.raises(UsageError, match=r"--predict df: the prediction is text.*not a ndarray"):
        predicted_text(np.zeros(2), "df")
    with pytest.raises(UsageError, match="--predict nope: not a variable"):
        api_fields(args(predict="nope"), {}, stream=True)


def test_recordings_and_files_are_named_by_their_option_when_refused(tmp_path):
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    namespace = {"tone": np.zeros(8), "text": "not audio"}
    got = api_attachments(args(audio=["tone"], sample_rate=8000, file=[str(pdf)]), namespace)
    assert got["recordings"][0].format == "wav" and got["files"][0].filename == "a.pdf"
    with pytest.raises(UsageError, match=r"^--audio tone: a numpy array of samples needs"):
        api_attachments(args(audio=["tone"]), namespace)
    with pytest.raises(UsageError, match=r"^--audio text: no such audio file"):
        api_attachments(args(audio=["text"]), namespace)
    with pytest.raises(UsageError, match=r"^--file missing\.pdf: not a variable"):
        api_attachments(args(file=["missing.pdf"]), namespace)
    with pytest.raises(UsageError, match="--sample-rate goes with --audio"):
        api_attachments(args(sample_rate=8000), namespace)


def test_metadata_pairs():
    assert metadata_pair("run=7") == ("run", "7")
    assert metadata_pair("k=a=b") == ("k", "a=b")
    for bad in ("nokey", "=x"):
        with pytest.raises(ValueError):
            metadata_pair(bad)
