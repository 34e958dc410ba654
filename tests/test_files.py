from __future__ import annotations

import base64
import io

import pytest

from nbchat.convert import files as files_module
from nbchat.convert.files import (
    TOKENS_PER_PAGE,
    UNKNOWN_FILE_TOKENS,
    FileInputError,
    check_total,
    estimate_file_tokens,
    file_part,
)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >>\n2 0 obj << /Type /Page >>\n%%EOF"


def test_a_pdf_file_is_sent_as_a_data_url_with_its_name(tmp_path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(PDF)
    part = file_part(path)
    sent = part.to_dict()
    assert sent["type"] == "file"
    assert sent["file"]["filename"] == "report.pdf"
    head, data = sent["file"]["file_data"].split(",", 1)
    assert head == "data:application/pdf;base64" and base64.b64decode(data) == PDF
    assert part.pages == 2 and part.tokens == 2 * TOKENS_PER_PAGE
    assert part.summary() == f"report.pdf ({len(PDF)} B, 2 pages)"


def test_bytes_are_named_by_their_kind_and_file_objects_by_their_name() -> None:
    assert file_part(PDF).filename == "document.pdf"
    assert file_part(b"a,b\n1,2\n", filename="t.csv").media_type == "text/csv"
    handle = io.BytesIO(b"plain text")
    handle.name = "/tmp/notes.txt"
    part = file_part(handle)
    assert (part.filename, part.media_type) == ("notes.txt", "text/plain")


def test_an_uploaded_file_is_sent_by_its_id() -> None:
    part = file_part("file-abc123")
    assert part.to_dict() == {"type": "file", "file": {"file_id": "file-abc123"}}
    assert part.tokens == UNKNOWN_FILE_TOKENS


def test_a_file_over_the_apis_limit_is_refused(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(files_module, "MAX_FILE_BYTES", 50)
    path = tmp_path / "big.pdf"
    path.write_bytes(PDF)
    with pytest.raises(FileInputError, match="over the 50 B limit") as info:
        file_part(path)
    assert "\n" not in str(info.value)
    with pytest.raises(FileInputError, match="over the API's 50 B limit"):
        file_part(PDF)
    small = [file_part(b"x" * 30, filename="a.txt"), file_part(b"y" * 30, filename="b.txt")]
    with pytest.raises(FileInputError, match="60 B together"):
        check_total(small)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (b"", "is empty"),
        (3.5, "cannot send a float as a file"),
        ("no/such/file.pdf", "no such input file"),
        (io.StringIO("text"), "binary mode"),
    ],
    ids=["empty", "number", "missing", "text-mode"],
)
def test_what_cannot_be_a_file_is_one_line(obj, message) -> None:
    with pytest.raises(FileInputError, match=message):
        file_part(obj)


def test_tokens_of_a_file_part_as_sent() -> None:
    part = file_part(PDF).to_dict()
    assert estimate_file_tokens(part["file"]) == 2 * TOKENS_PER_PAGE
    text = file_part(b"x" * 400, filename="a.txt").to_dict()
    assert estimate_file_tokens(text["file"]) == 100
    assert estimate_file_tokens({"file_id": "file-1"}) == UNKNOWN_FILE_TOKENS
