from __future__ import annotations

import threading

import httpx
import pytest

from nbchat import Client, RequestValidationError
from nbchat.protocol.exceptions import BadRequestError
from nbchat.transport.profiles import (
    FEATURES,
    KINDS,
    ServerProfile,
    azure_deployment,
    configured_profile,
    context_from_models,
    copy_body,
    detect_profile,
    kind_from_models,
    profile_for,
)

USER = [{"role": "user", "content": "hi"}]


def _body(**fields):
    return {"model": "m", "messages": USER, **fields}


def test_every_kind_has_a_profile_with_a_source():
    for kind in KINDS:
        profile = profile_for(kind)
        assert profile.kind == kind
        assert set(profile.features) <= set(FEATURES)
        if kind != "generic":
            assert profile.source, kind


def test_an_unknown_kind_or_feature_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown server kind 'tgi'"):
        profile_for("tgi")
    with pytest.raises(ValueError, match="Unknown server kind"):
        Client(api_key="k", base_url="http://h/v1", server="tgi")
    with pytest.raises(ValueError, match="Unknown feature 'telepathy'"):
        profile_for("openai").supports("telepathy")


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://openrouter.ai/api/v1", "openrouter"),
        ("https://res.openai.azure.com/openai/deployments/gpt4o", "azure"),
        ("http://localhost:11434/v1", "ollama"),
        ("http://127.0.0.1:1234/v1", "lmstudio"),
        ("http://localhost:8000/v1", "generic"),
    ],
)
def test_the_kind_is_detected_from_the_url(url, kind):
    assert detect_profile(url).kind == kind
    assert Client(api_key="k", base_url=url).profile.kind == kind


@pytest.mark.parametrize(
    ("owner", "kind"),
    [
        ("vllm", "vllm"),
        ("llamacpp", "llama-server"),
        ("organization_owner", "lmstudio"),
        ("library", "ollama"),
        ("me", "llama-cpp-python"),
        ("openai", None),
    ],
)
def test_the_kind_is_read_from_the_model_list(owner, kind):
    assert kind_from_models({"data": [{"id": "x", "owned_by": owner}]}) == kind


def test_listing_models_refines_a_guessed_profile_and_reads_the_context_window():
    listing = {
        "object": "list",
        "data": [{"id": "qwen", "owned_by": "vllm", "max_model_len": 32768}],
    }
    client = Client(
        api_key="k",
        base_url="http://gpu.test:8000/v1",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=listing)),
    )
    client.profile.remember_model("qwen")
    assert client.models() == ["qwen"]
    assert client.profile.kind == "vllm"
    assert client.profile.context_window == 32768
    assert client.profile.supports("json_schema") is True


def test_a_configured_kind_is_never_changed_by_detection():
    profile = configured_profile("ollama")
    profile.observe_models({"data": [{"id": "x", "owned_by": "vllm"}]})
    profile.observe({"timings": {}})
    assert profile.kind == "ollama"
    assert Client(api_key="k", base_url="http://h:8000/v1", server="vllm").profile.configured


def test_reply_fields_beyond_the_reference_reveal_the_server():
    for extra, kind in [
        ({"timings": {"predicted_n": 3}}, "llama-server"),
        ({"kv_transfer_params": None}, "vllm"),
        ({"system_fingerprint": "fp_ollama"}, "ollama"),
        ({"stats": {}}, "lmstudio"),
    ]:
        profile = profile_for("generic")
        profile.observe(extra)
        assert profile.kind == kind
    profile = profile_for("generic")
    profile.observe({"system_fingerprint": "fp_44709d6fcb"})
    assert profile.kind == "generic"


def test_llama_server_model_list_gives_its_training_context():
    listing = {"data": [{"id": "m", "owned_by": "llamacpp", "meta": {"n_ctx_train": 8192}}]}
    assert context_from_models(listing, "m") == 8192
    assert context_from_models(listing, "other") is None


def test_learning_is_shared_and_thread_safe():
    profile = profile_for("generic")

    def learn(i):
        profile.learn("logprobs", i % 2 == 0)
        profile.supports("logprobs")

    threads = [threading.Thread(target=learn, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert profile.supports("logprobs") in (True, False)
    assert set(profile.learned) == {"logprobs"}


# -- adaptation ---------------------------------------------------------------------------------


def test_adapt_never_changes_its_argument():
    body = _body(logit_bias={"1": 2}, user="u", response_format={"type": "json_object"})
    frozen = repr(body)
    profile_for("ollama").adapt(body)
    profile_for("lmstudio").adapt(body)
    assert repr(body) == frozen


def test_copy_body_copies_every_level_and_values_that_are_not_json_too():
    class Marker:
        def __init__(self) -> None:
            self.items = [1]

    marker = Marker()
    body = _body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}, x=marker)
    copied = copy_body(body)
    assert copied == {**body, "x": copied["x"]}
    copied["messages"][0]["role"] = "developer"
    copied["response_format"]["json_schema"]["schema"]["type"] = "object"
    copied["x"].items.append(2)
    assert body["messages"][0]["role"] == "user"
    assert body["response_format"]["json_schema"]["schema"] == {}
    assert marker.items == [1]


def test_ollama_drops_the_fields_it_does_not_take_with_a_note():
    out, notes = profile_for("ollama").adapt(_body(logit_bias={"1": 2}, user="u", seed=1))
    assert "logit_bias" not in out and "user" not in out and out["seed"] == 1
    assert len(notes) == 2 and all("ollama" in note for note in notes)
    with pytest.raises(RequestValidationError, match="n=2 is unsupported"):
        profile_for("ollama").adapt(_body(n=2))


def test_lmstudio_gets_json_schema_for_json_mode():
    out, notes = profile_for("lmstudio").adapt(_body(response_format={"type": "json_object"}))
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "json_object", "schema": {"type": "object"}},
    }
    assert notes


def test_llama_cpp_family_gets_json_object_with_the_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    out, notes = profile_for("llama-cpp-python").adapt(_body(response_format=fmt))
    assert out["response_format"] == {"type": "json_object", "schema": schema}
    assert notes
    # llama-server takes json_schema itself.
    assert profile_for("llama-server").adapt(_body(response_format=fmt)) == (
        _body(response_format=fmt),
        [],
    )


def test_developer_messages_become_system_where_the_role_is_unknown():
    body = _body(messages=[{"role": "developer", "content": "be brief"}, *USER])
    out, _ = profile_for("llama-cpp-python").adapt(body)
    assert out["messages"][0]["role"] == "system"
    assert profile_for("openai").adapt(body)[0]["messages"][0]["role"] == "developer"


def test_images_are_refused_before_sending_where_the_server_cannot_see():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = _body(messages=[{"role": "user", "content": [{"type": "text", "text": "?"}, image]}])
    with pytest.raises(RequestValidationError, match="image input is unsupported"):
        profile_for("llama-cpp-python").adapt(body)
    assert profile_for("openai").adapt(body)[0] == body


def test_an_adapter_replaces_the_rules_by_feature():
    def adapter(body):
        return {**body, "seen": True}, ["adapted"]

    profile = ServerProfile(kind="generic", adapter=adapter, features={"n": False})
    out, notes = profile.adapt(_body(n=3))
    assert out["seen"] is True and out["n"] == 3 and notes == ["adapted"]


# -- learning from refusals ---------------------------------------------------------------------


def _refusal(message, param=None):
    return BadRequestError(message, status_code=400, param=param)


def test_a_stream_options_refusal_is_learned_and_the_field_left_out():
    profile = profile_for("generic")
    body = _body(stream=True, stream_options={"include_usage": True})
    note = profile.fallback(_refusal("unknown field stream_options"), body)
    assert note and profile.supports("stream_usage") is False
    out, notes = profile.adapt(body)
    assert "stream_options" not in out and notes


def test_a_json_schema_refusal_falls_back_to_json_mode():
    profile = profile_for("generic")
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    note = profile.fallback(
        _refusal("response_format json_schema is not supported"), _body(response_format=fmt)
    )
    assert note and profile.supports("json_schema") is False
    assert profile.adapt(_body(response_format=fmt))[0]["response_format"] == {
        "type": "json_object"
    }


def test_an_unrelated_refusal_teaches_nothing():
    profile = profile_for("generic")
    assert profile.fallback(_refusal("temperature must be at most 2"), _body(temperature=3)) is None
    assert profile.learned == {}


# -- Azure --------------------------------------------------------------------------------------


def test_azure_requests_use_the_deployment_url_the_api_version_and_an_api_key_header():
    seen = []

    def handle(request):
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
            },
        )

    client = Client(
        api_key="azure-secret-key",
        base_url="https://res.openai.azure.com/openai/deployments/gpt4o",
        transport=httpx.MockTransport(handle),
        server="azure",
    )
    assert client.profile.default_model == "gpt4o"
    prepared = client.build_request(model="gpt4o", messages=USER)
    assert prepared.url == (
        "https://res.openai.azure.com/openai/deployments/gpt4o/chat/completions"
        "?api-version=2024-10-21"
    )
    assert prepared.headers["api-key"] == "••••••••"
    assert "Authorization" not in prepared.headers
    client.send_completion(prepared)
    request = seen[0]
    assert request.headers["api-key"] == "azure-secret-key"
    assert "authorization" not in request.headers
    assert request.url.params["api-version"] == "2024-10-21"
    assert azure_deployment("https://r.openai.azure.com/openai/deployments/d1?x=1") == "d1"
    assert azure_deployment("https://r.openai.azure.com/openai/v1") is None


def test_openai_reasoning_models_get_the_system_prompt_as_a_developer_message():
    body = _body(model="o3-mini", messages=[{"role": "system", "content": "be brief"}, *USER])
    assert profile_for("openai").adapt(body)[0]["messages"][0]["role"] == "developer"
    assert profile_for("azure").adapt(body)[0]["messages"][0]["role"] == "developer"
    assert profile_for("openai").adapt({**body, "model": "gpt-4.1"})[0]["messages"][0]["role"] == (
        "system"
    )
    assert profile_for("vllm").adapt(body)[0]["messages"][0]["role"] == "system"


# -- the newer parts of the API -------------------------------------------------------------------

AUDIO_PART = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
FILE_PART = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:,x"}}
NEWER = {
    "audio_input": _body(messages=[{"role": "user", "content": [AUDIO_PART]}]),
    "files": _body(messages=[{"role": "user", "content": [FILE_PART]}]),
    "audio_output": _body(modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"}),
    "custom_tools": _body(tools=[{"type": "custom", "custom": {"name": "sql"}}]),
    "web_search": _body(web_search_options={}),
}


def test_every_kind_says_what_it_knows_of_each_newer_part():
    from nbchat.transport.profiles import uses

    for feature, body in NEWER.items():
        assert uses(body) == {feature}
        assert profile_for("openai").supports(feature) is True
        assert profile_for("generic").supports(feature) is None
        for kind in ("ollama", "lmstudio", "llama-cpp-python"):
            assert profile_for(kind).supports(feature) is False
    assert profile_for("openrouter").supports("stored_completions") is False
    assert profile_for("vllm").supports("audio_input") is None


@pytest.mark.parametrize("feature", list(NEWER))
def test_a_part_a_server_lacks_is_refused_before_sending_with_the_reason(feature):
    from nbchat.transport.profiles import UnsupportedFeatureError

    body = NEWER[feature]
    with pytest.raises(UnsupportedFeatureError) as info:
        profile_for("ollama").adapt(body)
    error = info.value
    assert error.feature == feature
    assert "unsupported by this ollama server" in str(error) and "\n" not in str(error)
    assert error.body == body  # what a dry run shows
    assert profile_for("openai").adapt(body)[0] == body


@pytest.mark.parametrize("feature", list(NEWER))
def test_a_first_refusal_on_a_generic_server_is_learned_and_said_next_time(feature):
    profile = profile_for("generic")
    body = NEWER[feature]
    words = {
        "audio_input": "Unknown content type input_audio",
        "files": "file_data is not supported",
        "audio_output": "modalities: audio output is not available",
        "custom_tools": "tools.0.type: custom is not supported",
        "web_search": "web_search_options is not supported by this model",
    }[feature]
    assert profile.fallback(_refusal(words), body) is None  # nothing stands in: the error stands
    assert profile.supports(feature) is False
    with pytest.raises(RequestValidationError, match="learned from an earlier refusal"):
        profile.adapt(body)


def test_a_prediction_is_left_out_where_the_server_takes_none():
    body = _body(prediction={"type": "content", "content": "x = 1"})
    out, notes = profile_for("ollama").adapt(body)
    assert "prediction" not in out and "prediction was left out" in notes[0]
    generic = profile_for("generic")
    assert "sent again without it" in generic.fallback(_refusal("unknown: prediction"), body)
    out, notes = generic.adapt(body)
    assert "prediction" not in out and "learned from an earlier refusal" in notes[0]
    assert profile_for("openai").adapt(body) == (body, [])


def test_the_readmes_table_of_newer_parts_is_what_the_profiles_know():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- newer-parts-table -->")[1].split("<!-- /newer-parts-table -->")[0]
    rows = [line.strip("|").split("|") for line in table.strip().splitlines()[2:]]
    features = [
        "audio_input",
        "audio_output",
        "files",
        "custom_tools",
        "predictions",
        "web_search",
        "stored_completions",
    ]
    marks = {True: "✓", False: "✗", None: "?"}
    seen = set()
    for kind, *cells in rows:
        kind = kind.strip().strip("`")
        seen.add(kind)
        known = profile_for(kind)
        assert [c.strip() for c in cells] == [marks[known.supports(f)] for f in features], kind
    assert seen == set(KINDS)
