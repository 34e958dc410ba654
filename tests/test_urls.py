from __future__ import annotations

import pytest

from nbchat.transport.urls import split_credentials, without_credentials


def test_credentials_are_split_off_and_percent_decoded() -> None:
    assert split_credentials("http://us%40er:p%3Ass@host.test:8080/v1?x=1") == (
        "http://host.test:8080/v1?x=1",
        "us@er",
        "p:ss",
    )


def test_a_user_without_a_password_is_split_off_too() -> None:
    assert split_credentials("https://tok-123@host.test/v1") == (
        "https://host.test/v1",
        "tok-123",
        "",
    )


@pytest.mark.parametrize(
    "url", ["https://api.openai.com/v1", "http://127.0.0.1:8000/v1", "http://[::1]:9/v1"]
)
def test_a_url_without_credentials_is_left_exactly_as_it_was(url: str) -> None:
    assert split_credentials(url) == (url, "", "")
    assert without_credentials(url) == url


def test_without_credentials_is_what_may_be_shown() -> None:
    assert without_credentials("http://a:b@host.test/v1") == "http://host.test/v1"
    assert without_credentials("http://a:b@host.test:port/v1") == "(an invalid URL)"
