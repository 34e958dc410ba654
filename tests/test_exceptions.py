from __future__ import annotations

import importlib
import json
import pkgutil
import re
from typing import Any

import httpx
import pydantic
import pytest

import nbchat
from nbchat.protocol import exceptions as exceptions_module
from nbchat.protocol.exceptions import (
    MASK,
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteStreamError,
    InternalServerError,
    NbchatError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestValidationError,
    ResponseDecodingError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    UnprocessableEntityError,
    class_for_status,
    error_fields,
    first_line,
    mask_credential,
    mask_headers,
    redact,
    redact_cut,
    safe_cause,
    safe_request,
    safe_response,
    status_error_from_event,
    status_error_from_response,
)
from tests.reference import ERROR_BODY

URL = "https://api.example.com/v1/chat/completions"
SECRET = "sk-proj-VERYSECRET0123456789"

# The reference's table of common errors: status, type, code, and the class it must become.
ERROR_TABLE = [
    (400, "invalid_request_error", "context_length_exceeded", BadRequestError),
    (400, "invalid_request_error", "invalid_api_key", BadRequestError),
    (401, "authentication_error", None, AuthenticationError),
    (403, "permission_error", None, PermissionDeniedError),
    (404, "invalid_request_error", "model_not_found", NotFoundError),
    (409, "invalid_request_error", None, ConflictError),
    (422, "invalid_request_error", None, UnprocessableEntityError),
    (429, "rate_limit_error", "rate_limit_exceeded", RateLimitError),
    (500, "api_error", None, InternalServerError),
    (503, "api_error", "engine_overloaded", ServiceUnavailableError),
    (502, "api_error", None, InternalServerError),
    (504, "api_error", None, InternalServerError),
    (599, "api_error", None, InternalServerError),
]


def response(
    status: int,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    result = httpx.Response(
        status, content=content, headers=headers or {}, request=httpx.Request("POST", URL)
    )
    result.read()
    return result


def test_the_tree_lets_callers_catch_broadly_or_narrowly() -> None:
    assert issubclass(RequestValidationError, NbchatError)
    assert issubclass(RequestValidationError, ValueError)
    assert issubclass(APITimeoutError, APIConnectionError)
    for cls in (APIConnectionError, APIResponseValidationError, IncompleteStreamError):
        assert issubclass(cls, APIError)
    for _, _, _, cls in ERROR_TABLE:
        assert issubclass(cls, APIStatusError)
        assert issubclass(cls, NbchatError)
    assert issubclass(ServiceUnavailableError, InternalServerError)
    assert not issubclass(APIError, ValueError)


@pytest.mark.parametrize(("status", "type_", "code", "cls"), ERROR_TABLE)
def test_each_status_of_the_table_gives_its_class_and_fields(
    status: int, type_: str, code: str | None, cls: type[APIStatusError]
) -> None:
    body = {"error": {"message": f"failed with {status}", "type": type_, "param": "model"}}
    if code is not None:
        body["error"]["code"] = code
    error = status_error_from_response(response(status, body, headers={"x-request-id": "req_123"}))
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == f"failed with {status}"
    assert error.type == type_
    assert error.code == code
    assert error.param == "model"
    assert error.request_id == "req_123"
    assert error.body == body
    assert error.request is not None and str(error.request.url) == URL
    assert error.response is not None and error.response.status_code == status


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (402, APIStatusError), (408, APIStatusError), (418, APIStatusError)],
)
def test_other_4xx_statuses_get_the_base_status_error(
    status: int, cls: type[APIStatusError]
) -> None:
    assert class_for_status(status) is cls


def test_the_reference_error_body_is_read_field_by_field() -> None:
    error = status_error_from_response(response(400, ERROR_BODY))
    assert isinstance(error, BadRequestError)
    assert error.message.startswith("This model's maximum context length is 128000 tokens.")
    assert (error.type, error.code, error.param) == (
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
    )
    assert error.request_id is None
    assert str(error) == (
        "Error code: 400 - type: invalid_request_error - code: context_length_exceeded - "
        + ERROR_BODY["error"]["message"]
    )


def test_an_html_502_page_gives_a_readable_message() -> None:
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body></html>"
    error = status_error_from_response(
        response(502, raw=page, headers={"content-type": "text/html"})
    )
    assert isinstance(error, InternalServerError)
    assert error.status_code == 502
    assert error.message == "502 Bad Gateway (the server sent an HTML page, not JSON)"
    assert "\n" not in str(error)
    assert error.body == page.decode()
    assert error.type is None and error.code is None


@pytest.mark.parametrize(
    ("status", "cls"), [(503, ServiceUnavailableError), (401, AuthenticationError)]
)
def test_an_empty_body_still_gives_the_class_and_a_message(
    status: int, cls: type[APIStatusError]
) -> None:
    error = status_error_from_response(response(status, raw=b""))
    assert type(error) is cls
    assert (
        error.message == f"{status} {httpx.codes.get_reason_phrase(status)} (empty response body)"
    )
    assert error.body is None


def test_a_plain_text_body_becomes_the_message() -> None:
    error = status_error_from_response(response(500, raw=b"upstream   timed\nout"))
    assert error.message == "upstream timed out"


def test_a_very_long_text_body_is_shortened_in_the_message_but_kept_in_body() -> None:
    text = "x" * 5000
    error = status_error_from_response(response(500, raw=text.encode()))
    assert len(error.message) <= 301
    assert error.body == text


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        ({"error": "model 'llama' not found"}, "model 'llama' not found", None),
        ({"detail": "Not Found"}, "Not Found", None),
        ({"message": "bad key", "code": 401}, "bad key", 401),
        ([{"error": {"message": "quota", "code": 429, "status": "X"}}], "quota", 429),
        ({"error": {"message": "m", "code": True}}, "m", None),
    ],
    ids=["error-string", "detail", "top-level-message", "list-wrapped", "bool-code"],
)
def test_error_bodies_of_other_servers_are_understood(
    body: Any, message: str, code: int | None
) -> None:
    error = status_error_from_response(response(400, body))
    assert error.message == message
    assert error.code == code


def test_a_json_body_with_no_error_object_is_shown_as_it_came() -> None:
    error = status_error_from_response(response(500, [1, 2]))
    assert error.message == "[1, 2]"


def test_a_detail_list_is_serialized_into_the_message() -> None:
    body = {"detail": [{"loc": ["body", "model"], "msg": "field required"}]}
    error = status_error_from_response(response(422, body))
    assert isinstance(error, UnprocessableEntityError)
    assert json.loads(error.message) == body["detail"]


def test_error_fields_of_unusable_bodies_are_all_none() -> None:
    assert error_fields(None) == (None, None, None, None)
    assert error_fields("text") == (None, None, None, None)
    assert error_fields({"error": None}) == (None, None, None, None)


@pytest.mark.parametrize(
    ("type_", "status", "cls"),
    [
        ("invalid_request_error", 400, BadRequestError),
        ("authentication_error", 401, AuthenticationError),
        ("permission_error", 403, PermissionDeniedError),
        ("rate_limit_error", 429, RateLimitError),
        ("api_error", 500, InternalServerError),
        ("server_error", 500, InternalServerError),
        (None, 500, InternalServerError),
    ],
)
def test_an_error_event_in_a_stream_gets_its_status_from_its_type(
    type_: str | None, status: int, cls: type[APIStatusError]
) -> None:
    body = {"error": {"message": "boom", "type": type_}}
    error = status_error_from_event(body)
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == "boom"
    assert error.body == body


def test_an_error_event_with_its_own_status_code_uses_it() -> None:
    error = status_error_from_event({"error": {"message": "busy", "status_code": 503}})
    assert isinstance(error, ServiceUnavailableError)


def test_an_error_event_takes_the_request_id_of_the_stream_response() -> None:
    stream = response(200, raw=b"", headers={"x-request-id": "req_9"})
    error = status_error_from_event({"error": {"message": "x"}}, response=stream)
    assert error.request_id == "req_9"


def test_a_secret_echoed_by_the_server_is_redacted_from_message_and_body() -> None:
    body = {
        "error": {
            "message": f"Incorrect API key provided: {SECRET}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
            "details": [{"key": SECRET}, {SECRET: "as a key"}],
        }
    }
    error = status_error_from_response(response(401, body), secret=SECRET)
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert SECRET not in json.dumps(error.body)
    assert error.message == "Incorrect API key provided: sk-….", error.message


@pytest.mark.parametrize(
    "echo",
    [
        SECRET,
        SECRET.replace("s", "\\u0073", 1),  # JSON escapes, as a JSON string holds them
        "".join(f"\\u{ord(c):04x}" for c in SECRET),
        SECRET.replace("-", "%2D"),
    ],
    ids=["plain", "one-escape", "all-escaped", "percent-encoded"],
)
def test_redact_masks_a_secret_however_the_text_encodes_it(echo: str) -> None:
    text = redact(f'{{"echo": "{echo}", "path": "C:\\\\tmp"}}', SECRET)
    assert SECRET not in text and echo not in text
    assert "sk-…" in text


def test_text_without_a_hidden_secret_is_shown_as_it_was() -> None:
    text = '{"path": "C:\\\\tmp\\n", "rate": "50%25"}'
    assert redact(text, SECRET) == text


def test_redact_cut_masks_the_start_of_a_secret_at_the_cut() -> None:
    cut = "head " + SECRET[:12]
    assert SECRET[:12] not in redact_cut(cut, SECRET)
    assert redact_cut("head sk", SECRET) == "head sk"  # too short to be the key's start


def test_a_secret_in_an_html_or_text_body_is_redacted() -> None:
    page = f"<html><body>bad key {SECRET}</body></html>".encode()
    error = status_error_from_response(response(403, raw=page), secret=SECRET)
    assert SECRET not in str(error.body)
    text_error = status_error_from_response(response(403, raw=SECRET.encode()), secret=SECRET)
    assert SECRET not in text_error.message
    assert SECRET not in str(text_error.body)


def test_a_secret_in_a_stream_error_event_is_redacted() -> None:
    error = status_error_from_event({"error": {"message": f"key {SECRET}"}}, secret=SECRET)
    assert SECRET not in str(error)
    assert SECRET not in json.dumps(error.body)


def test_redact_masks_every_occurrence_and_leaves_other_values() -> None:
    value = {"a": [SECRET, 1, None, f"x{SECRET}y{SECRET}"], SECRET: True}
    masked = redact(value, SECRET)
    assert SECRET not in json.dumps(masked)
    assert masked["a"][1:3] == [1, None]
    assert masked["a"][3] == "xsk-…ysk-…"
    assert redact(value, None) is value
    assert redact("short", "short") == "…"  # a short secret is hidden entirely


def test_request_validation_error_names_its_field() -> None:
    error = RequestValidationError("Invalid request: n: too small", field="n")
    assert error.field == "n"
    assert error.message == str(error) == "Invalid request: n: too small"


def test_incomplete_stream_error_carries_the_partial_completion() -> None:
    marker = object()
    error = IncompleteStreamError("cut short", completion=marker)
    assert error.completion is marker
    assert error.message == "cut short"


def test_connection_errors_have_readable_defaults() -> None:
    assert str(APIConnectionError()) == "Could not connect to the server."
    assert str(APITimeoutError()) == "The request timed out."


# ---------------------------------------------------------------------------------------------
# One tree: every exception class nbchat defines is drawn, where it belongs


def _nbchat_exception_classes(private: bool = False) -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(nbchat.__path__, "nbchat."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and (private or not value.__name__.startswith("_"))
            ):
                assert value.__name__ not in found, f"two exception classes named {value.__name__}"
                found[value.__name__] = value
    return found


def _drawn_tree() -> dict[str, tuple[str | None, str | None]]:
    """Each name in the drawing -> (its parent in the drawing, the class in "(also X)")."""
    drawn: dict[str, tuple[str | None, str | None]] = {}
    by_column: dict[int, str] = {}
    for line in (exceptions_module.__doc__ or "").splitlines():
        match = re.match(r"^    [│├└─ ]*?([A-Z]\w+)(?: \(also (\w+)\))?", line)
        if match is None:
            continue
        column = match.start(1)
        name = match.group(1)
        by_column[column] = name
        drawn[name] = (by_column.get(column - 4), match.group(2))
    return drawn


def test_every_nbchat_exception_is_in_the_drawing_under_its_base() -> None:
    classes = _nbchat_exception_classes()
    drawn = _drawn_tree()
    assert len(classes) >= 30  # the walk found the modules (protocol, convert, local, …)
    assert sorted(set(classes) - set(drawn)) == [], "drawn nowhere"
    roots = {"KeyboardInterrupt", "UserWarning"}
    assert sorted(set(drawn) - set(classes) - roots) == [], "drawn, not defined"
    for name, cls in classes.items():
        parent, also = drawn[name]
        bases = [base.__name__ for base in cls.__bases__]
        if parent is None:
            assert cls is NbchatError
        else:
            assert parent in bases, f"{name} is drawn under {parent}, derives from {bases}"
        if also is not None:
            assert also in bases, f"{name} is drawn as also {also}, derives from {bases}"


def test_every_error_derives_from_nbchat_error_and_interrupts_stay_interrupts() -> None:
    # Private signals too: whatever escapes by mistake is still an NbchatError.
    for name, cls in _nbchat_exception_classes(private=True).items():
        if issubclass(cls, KeyboardInterrupt):
            # Ctrl-C must pass every ``except Exception`` and ``except NbchatError``.
            assert not issubclass(cls, Exception), name
        elif issubclass(cls, Warning):
            # Warnings are shown, never raised: they must not be caught as errors.
            assert not issubclass(cls, NbchatError), name
        else:
            assert issubclass(cls, NbchatError), f"{name} does not derive from NbchatError"


def test_bad_input_errors_of_every_layer_are_nbchat_errors_and_value_errors() -> None:
    from nbchat.convert.interpolate import InterpolationError, interpolate
    from nbchat.notebook.run import ChatCellError
    from nbchat.protocol.schema import StrictSchemaError, strict_schema

    with pytest.raises(NbchatError):
        interpolate("{x / 0}", {"x": 1})
    with pytest.raises(StrictSchemaError) as caught:
        strict_schema([])  # type: ignore[arg-type]
    assert isinstance(caught.value, NbchatError) and isinstance(caught.value, ValueError)
    assert issubclass(InterpolationError, ValueError)
    assert issubclass(ChatCellError, NbchatError)


# ---------------------------------------------------------------------------------------------
# first_line: one line for an error


def test_first_line_is_the_first_non_blank_line_with_its_spaces_collapsed() -> None:
    assert first_line(ValueError("\n  \n  bad   value\nthe rest")) == "bad value"
    assert first_line("a refusal\nwith reasons") == "a refusal"


def test_first_line_of_an_error_without_a_message_is_its_class_name() -> None:
    assert first_line(ValueError()) == "ValueError"
    assert first_line(RuntimeError("   \n ")) == "RuntimeError"
    assert first_line("") == ""


def test_first_line_is_cut_at_the_limit() -> None:
    line = first_line("x" * 500, limit=40)
    assert len(line) == 40 and line.endswith("…")
    assert first_line("short", limit=40) == "short"


def test_first_line_of_a_pydantic_error_names_the_model_the_field_and_the_problem() -> None:
    class Point(pydantic.BaseModel):
        x: int
        y: int

    with pytest.raises(pydantic.ValidationError) as caught:
        Point.model_validate({"x": "left"})
    assert first_line(caught.value) == (
        "Point: x: Input should be a valid integer, unable to parse string as an integer "
        "(and 1 more)"
    )
    with pytest.raises(pydantic.ValidationError) as caught:
        pydantic.TypeAdapter(int).validate_python("many")
    assert first_line(caught.value).startswith("int: Input should be a valid integer")


def test_first_line_never_fails_on_an_error_whose_str_fails() -> None:
    class Odd(Exception):
        def __str__(self) -> str:
            return ""

    assert first_line(Odd("hidden")) == "Odd"


# The errors of refused responses, and what an error exposes


def test_refused_responses_have_their_place_in_the_tree() -> None:
    assert issubclass(ResponseDecodingError, APIResponseValidationError)
    assert issubclass(ResponseTooLargeError, APIError)
    assert not issubclass(ResponseTooLargeError, APIStatusError)
    error = ResponseTooLargeError("too big", limit=10)
    assert (error.message, error.limit, error.request) == ("too big", 10, None)


def test_every_error_class_is_drawn_in_the_tree_of_the_docstring() -> None:
    import nbchat.protocol.exceptions as module

    drawn = set(re.findall(r"\b(\w+Error)\b", module.__doc__ or ""))
    for name in module.__all__:
        if name.endswith("Error"):
            assert name in drawn, name


def raw_request() -> httpx.Request:
    return httpx.Request(
        "POST",
        "http://user:pw-0123456789@api.example.com/v1/chat/completions?api-version=1",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "api-key": SECRET,
            "X-Api-Key": SECRET,
            "Cookie": f"session={SECRET}",
            "Proxy-Authorization": "Basic dXNlcjpwdw==",
            "X-Trace": "t1",
        },
        json={"model": "m"},
    )


def test_safe_request_masks_every_credential_header_and_url_userinfo() -> None:
    safe = safe_request(raw_request())
    assert safe.headers["authorization"] == "Bearer ********"
    assert safe.headers["proxy-authorization"] == "Basic ********"
    for name in ("api-key", "x-api-key", "cookie"):
        assert safe.headers[name] == "********"
    assert safe.headers["x-trace"] == "t1"
    assert str(safe.url) == "http://api.example.com/v1/chat/completions?api-version=1"
    assert json.loads(safe.content) == {"model": "m"}
    assert SECRET not in repr(safe.headers.multi_items())


def test_an_error_keeps_a_masked_copy_of_the_request_it_is_given() -> None:
    for error in (
        APIConnectionError("refused", request=raw_request()),
        APIResponseValidationError("bad", request=raw_request()),
        IncompleteStreamError("cut", request=raw_request()),
        ResponseTooLargeError("big", limit=1, request=raw_request()),
    ):
        assert error.request is not None
        assert error.request.headers["authorization"] == "Bearer ********"
        assert "pw-0123456789" not in str(error.request.url)


def test_a_status_errors_response_is_a_decoded_masked_copy() -> None:
    wire = httpx.Response(
        401,
        headers={
            "content-encoding": "gzip",
            "content-type": "application/json",
            "set-cookie": f"s={SECRET}",
        },
        content=b"",
        request=raw_request(),
    )
    body = json.dumps({"error": {"message": f"bad key {SECRET}"}}).encode()
    error = status_error_from_response(wire, secret=SECRET, content=body)
    assert error.response is not None and error.response is not wire
    assert "content-encoding" not in error.response.headers
    assert error.response.headers["set-cookie"] == "********"
    assert SECRET not in error.response.text
    assert error.response.json()["error"]["message"] == "bad key sk-…"
    assert error.response.request.headers["authorization"] == "Bearer ********"
    assert error.request is not None and error.request.headers["api-key"] == "********"


def test_a_status_error_whose_body_could_not_be_read_says_so() -> None:
    wire = httpx.Response(502, content=b"", request=httpx.Request("POST", URL))
    error = status_error_from_response(wire, content=b"", unreadable="gzip data ended early")
    assert error.message == "502 Bad Gateway (its body could not be read: gzip data ended early)"
    assert isinstance(error, InternalServerError)


def test_safe_response_of_a_stream_not_read_has_an_empty_body() -> None:
    def pieces() -> Any:
        yield b"data: {}\n\n"

    live = httpx.Response(200, content=pieces(), request=raw_request())
    safe = safe_response(live)
    assert safe.content == b""
    assert safe.request.headers["authorization"] == "Bearer ********"


def test_safe_cause_is_an_httpx_error_of_the_same_kind_without_the_credentials() -> None:
    original = httpx.ConnectError(f"proxy said {SECRET}", request=raw_request())
    cause = safe_cause(original, SECRET)
    assert type(cause) is httpx.ConnectError
    assert SECRET not in str(cause)
    assert isinstance(cause, httpx.ConnectError)
    assert cause.request.headers["authorization"] == "Bearer ********"
    assert safe_cause(ValueError("x")) is None


def test_redact_takes_several_secrets_and_masks_the_longest_first() -> None:
    long, short = "abcdefghijklmnop", "abcdefgh"
    assert redact(f"{long} and {short}", [short, long]) == "abc… and …"
    assert redact({"k": ["pw-secret", "x"]}, ("pw-secret",)) == {"k": ["pw-…", "x"]}
    assert redact("text", []) == "text"


def test_mask_helpers_keep_the_scheme_only() -> None:
    assert mask_credential("Bearer sk-123") == f"Bearer {MASK}"
    assert mask_credential("sk-123") == MASK
    assert mask_credential("Bearer") == MASK
    assert mask_headers({"Authorization": "Basic x", "Accept": "*/*"}) == [
        ("Authorization", f"Basic {MASK}"),
        ("Accept", "*/*"),
    ]


def test_one_line_is_the_same_for_every_kind_of_error() -> None:
    from nbchat.protocol.exceptions import one_line

    rate = status_error_from_response(
        httpx.Response(
            429,
            json={"error": {"message": "Slow down\nplease", "type": "x", "code": "rate_limit"}},
            request=httpx.Request("POST", "https://api.openai.com/v1/chat/completions"),
        )
    )
    rate.retries = 2
    assert one_line(rate) == "RateLimitError (429, rate_limit): Slow down (after 2 retries)"
    assert one_line(ValueError("bad\nvalue")) == "ValueError: bad"
    assert one_line(KeyError()) == "KeyError"
    assert len(one_line(ValueError("x" * 1000), limit=50)) == 50


def test_credential_fields_are_named_by_their_words():
    for name in (
        "Authorization",
        "api-key",
        "X-Goog-Api-Key",
        "Ocp-Apim-Subscription-Key",
        "Private-Token",
        "X-Amz-Security-Token",
        "accessToken",
        "sig",
        "X-Amz-Signature",
        "client_secret",
    ):
        assert exceptions_module.credential_field(name), name
    for name in (
        "Accept",
        "Content-Type",
        "x-ratelimit-remaining-tokens",
        "OpenAI-Organization",
        "X-Request-ID",
        "api-version",
        "WWW-Authenticate",
    ):
        assert not exceptions_module.credential_field(name), name


def test_mask_url_drops_user_info_and_masks_credential_query_values():
    mask_url = exceptions_module.mask_url
    url = "https://u:pw@x.test/v1/chat?api-version=2024&api-key=K1&sig=a%3D&q=1#top"
    assert (
        mask_url(url)
        == f"https://x.test/v1/chat?api-version=2024&api-key={MASK}&sig={MASK}&q=1#top"
    )
    assert mask_url("http://x.test/v1") == "http://x.test/v1"
    request = httpx.Request("POST", "https://x.test/v1?key=AIza-0123&alt=sse")
    assert str(safe_request(request).url) == "https://x.test/v1?key=********&alt=sse"
