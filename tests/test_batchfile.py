from __future__ import annotations

import json

import pytest

from nbchat.convert import batchfile


def test_a_request_line_has_the_custom_id_method_url_and_body():
    line = json.loads(batchfile.request_line(3, {"model": "m", "messages": []}))
    assert line == {
        "custom_id": "row-3",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": []},
    }


def test_custom_ids_map_back_to_positions_and_others_do_not():
    assert batchfile.position_of(batchfile.custom_id(41)) == 41
    assert batchfile.position_of("request-1") is None
    assert batchfile.position_of("row-x") is None
    assert batchfile.position_of(7) is None


def test_an_openai_output_line_gives_its_completion():
    body = {"id": "c", "choices": [], "model": "m"}
    text = json.dumps(
        {
            "id": "b",
            "custom_id": "row-0",
            "response": {"status_code": 200, "body": body},
            "error": None,
        }
    )
    line = batchfile.parse_output_line(text)
    assert line is not None
    assert line.completion == body and line.error is None and line.status_code == 200


VLLM_STREAM = "Request must not be sent in stream mode"
OLD_VLLM = {"object": "error", "message": "no model", "type": "NotFoundError", "code": 404}
NEW_VLLM = {"error": {"message": "too long", "type": "BadRequestError"}}
OPENAI_BODY = {"error": {"message": "bad", "code": "x"}}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # OpenAI's error file: the status and the API error in the body.
        (
            {"response": {"status_code": 400, "body": OPENAI_BODY}, "error": None},
            "Batch request failed (400, x): bad",
        ),
        # OpenAI's error for a request that never reached the model.
        (
            {"response": None, "error": {"code": "batch_expired", "message": "expired"}},
            "Batch request failed (batch_expired): expired",
        ),
        # vLLM's batch runner: a plain string, or its ErrorResponse (old and new shapes).
        (
            {"response": {"status_code": 400, "request_id": "r"}, "error": VLLM_STREAM},
            f"Batch request failed (400): {VLLM_STREAM}",
        ),
        (
            {"response": {"status_code": 404}, "error": OLD_VLLM},
            "Batch request failed (404, 404): no model",
        ),
        (
            {"response": {"status_code": 400}, "error": NEW_VLLM},
            "Batch request failed (400, BadRequestError): too long",
        ),
    ],
)
def test_error_lines_become_one_line_errors(record, expected):
    line = batchfile.parse_output_line(json.dumps({"custom_id": "row-1", **record}))
    assert line is not None
    assert line.completion is None
    assert line.error == expected


def test_blank_lines_are_skipped_and_foreign_ones_refused():
    assert batchfile.parse_output_line("  \n") is None
    with pytest.raises(ValueError, match="JSON"):
        batchfile.parse_output_line("{not json")
    with pytest.raises(ValueError, match="custom_id"):
        batchfile.parse_output_line('{"id": 1}')


def test_read_lines_reads_a_file_lazily(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n', encoding="utf-8")
    lines = batchfile.read_lines(path)
    assert next(lines) == '{"a": 1}\n'
    assert list(lines) == ['{"b": 2}\n']


@pytest.mark.parametrize(
    ("custom_id", "position"),
    [
        ("row-0", 0),
        ("row-17", 17),
        ("row-01", None),
        ("row-²", None),
        ("row-١", None),
        ("row-+1", None),
        ("row- 1", None),
        ("row-1 ", None),
        ("row-", None),
        ("Row-1", None),
        (1, None),
    ],
)
def test_only_a_custom_id_exactly_as_nbchat_writes_it_names_a_row(custom_id, position):
    assert batchfile.position_of(custom_id) == position
