from __future__ import annotations

import httpx

import nbchat
from nbchat.conversation import compare as engine
from tests.fakeserver import SECRET
from tests.loopserver import completion


def _client():
    def handle(request):
        model = __import__("json").loads(request.content)["model"]
        return httpx.Response(200, json=completion(model, f"{model} here"))

    return nbchat.Client(
        api_key=SECRET, base_url="http://fake.test/v1", transport=httpx.MockTransport(handle)
    )


def test_the_engine_shows_nothing_and_the_public_compare_streams_into_side_by_side_columns(capsys):
    quiet = engine.compare("Hi", ["a", "b"], client=_client(), stream=False)
    assert [r.content for r in quiet] == ["a here", "b here"]
    assert capsys.readouterr().out == ""
    shown = nbchat.compare("Hi", ["a", "b"], client=_client(), stream=False, display="text")
    assert [r.content for r in shown] == ["a here", "b here"]
    out = capsys.readouterr()
    assert "a here" in out.out + out.err and "b here" in out.out + out.err
