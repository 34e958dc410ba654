from __future__ import annotations

import dataclasses
import json

import httpx
import pytest
from pydantic import BaseModel

from nbchat import Client, RequestValidationError
from nbchat.conversation.mapjob import MapJob, one_line_error
from nbchat.protocol.exceptions import RateLimitError
from nbchat.protocol.types import ChatCompletion
from tests.loopserver import completion


def client() -> Client:
    return Client(api_key="", base_url="http://fake.test/v1", transport=httpx.MockTransport(None))


class City(BaseModel):
    name: str
    population: int


def test_each_row_is_prepared_by_chat_prepare_with_the_fields():
    job = MapJob("Where is {c}?", [{"c": "Oslo"}], model="m", system="S", fields={"seed": 1})
    job.bind(client(), "m")
    prepared = job.prepare(0)
    assert prepared.url == "http://fake.test/v1/chat/completions"
    assert prepared.body == {
        "model": "m",
        "seed": 1,
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": "Where is Oslo?"},
        ],
    }


def test_rows_built_from_row_0s_request_are_what_chat_prepare_builds(monkeypatch):
    rows = [{"c": "Oslo"}, {"c": "Bergen"}, {"c": "Tromsø \u2603"}]
    job = MapJob("Where is {c}?", rows, model="m", system="S", fields={"seed": 1}, schema=City)
    job.bind(client(), "m")
    fast = [job.prepare(position) for position in range(3)]
    from nbchat.conversation.chat import Chat

    calls = []
    original = Chat.prepare

    def counted(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Chat, "prepare", counted)
    job.bind(client(), "m")
    slow = [job.prepare(0)]
    job._text_request = None  # every row the long way
    for position in (1, 2):
        slow.append(job.prepare(position))
        job._text_request = None
    assert [(p.body, p.key, p.headers, p.url, p.notes) for p in fast] == [
        (p.body, p.key, p.headers, p.url, p.notes) for p in slow
    ]
    assert len(calls) == 3
    job.prepare(0)
    calls.clear()
    job.prepare(1)
    job.prepare(2)
    assert calls == []  # row 0's request served them


def test_rows_are_fitted_again_once_the_server_turns_out_to_be_another():
    job = MapJob("Where is {c}?", [{"c": "Oslo"}, {"c": "Bergen"}], model="m")
    served = client()
    job.bind(served, "m")
    job.prepare(0)
    kept = job._text_request
    served.profile.learn("stream_usage", False)
    job.prepare(1)
    assert job._text_request is not kept


def test_a_schema_becomes_a_strict_response_format_and_columns():
    job = MapJob("{c}", [{"c": 1}], model="m", schema=City)
    assert job.fields["response_format"]["type"] == "json_schema"
    assert job.fields["response_format"]["json_schema"]["strict"] is True
    assert job.result_columns == [
        "reply",
        "error",
        "name",
        "population",
        "finish_reason",
        "tokens",
        "latency",
    ]


def test_schema_columns_for_dicts_dataclasses_and_lists():
    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    assert MapJob("", [], schema=Point).columns == ["x", "y"]
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "required": ["a"],
        "additionalProperties": False,
    }
    assert MapJob("", [], schema=schema).columns == ["a"]
    assert MapJob("", [], schema=list[int]).columns == ["parsed"]


def test_a_schema_field_named_like_a_result_column_is_refused():
    class Bad(BaseModel):
        error: str

    with pytest.raises(RequestValidationError, match="'error' would overwrite"):
        MapJob("", [], schema=Bad)


def test_schema_and_response_format_together_are_refused():
    with pytest.raises(RequestValidationError, match="not both"):
        MapJob("", [], schema=City, fields={"response_format": {"type": "json_object"}})


def test_outcomes_read_text_tokens_finish_reason_and_parsed_values():
    job = MapJob("", [], schema=City)
    good = ChatCompletion.model_validate(
        completion("m", json.dumps({"name": "Oslo", "population": 7}))
    )
    outcome = job.outcome(good, 0.5)
    assert outcome.values == {"name": "Oslo", "population": 7}
    assert (outcome.tokens, outcome.finish_reason, outcome.latency) == (7, "stop", 0.5)
    cut = completion("m", '{"name": "Os')
    cut["choices"][0]["finish_reason"] = "length"
    outcome = job.outcome(ChatCompletion.model_validate(cut), None)
    assert outcome.error.startswith("StructuredOutputError: the reply was cut off at max_tokens")
    assert outcome.reply == '{"name": "Os'


def test_a_refusal_without_text_is_an_error_and_no_choices_too():
    job = MapJob("", [])
    refused = completion("m", None)
    refused["choices"][0]["message"]["refusal"] = "I can't help with that."
    assert job.outcome(ChatCompletion.model_validate(refused), None).error == (
        "The model refused: I can't help with that."
    )
    empty = completion("m", "x")
    empty["choices"] = []
    assert (
        job.outcome(ChatCompletion.model_validate(empty), None).error
        == "The server sent no choices"
    )


def test_a_prompt_function_that_fails_on_the_first_row_is_bad_input():
    job = MapJob(lambda row: row["nope"], [{"a": 1}], model="m")
    job.bind(client(), "m")
    with pytest.raises(RequestValidationError, match="row 0: KeyError: 'nope'"):
        job.first_request()


def test_a_prompt_function_must_return_text_or_messages():
    job = MapJob(lambda row: 42, [{"a": 1}, {"a": 2}], model="m")
    job.bind(client(), "m")
    with pytest.raises(TypeError, match="returned int for row 1"):
        job.prepare(1)


def test_one_line_errors_name_class_status_code_and_retries():
    error = RateLimitError("Too many\nrequests", status_code=429, code="rate_limit_exceeded")
    error.retries = 2
    assert one_line_error(error) == (
        "RateLimitError (429, rate_limit_exceeded): Too many (after 2 retries)"
    )
    assert one_line_error(ValueError("x" * 500)).endswith("…")
    assert len(one_line_error(ValueError("x" * 500))) == 300
    assert one_line_error(KeyError()) == "KeyError"


def test_assemble_marks_rows_without_an_outcome():
    job = MapJob("", [{"a": 1}, {"a": 2}])
    result = job.assemble([None, None], lambda position: f"not run {position}")
    assert [r["error"] for r in result] == ["not run 0", "not run 1"]
