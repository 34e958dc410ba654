from __future__ import annotations

import pytest

from nbchat.convert.redact import HIDDEN, hide_secrets, looks_like_secret, secret_name


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "OPENAI_API_KEY",
        "apiKey",
        "openaiApiKey",
        "token",
        "hf_token",
        "GITHUB_TOKEN",
        "db_password",
        "PASSWD",
        "client_secret",
        "secret_sauce",
        "basic_auth",
        "credentials",
        "session_cookie",
        "pwd",
    ],
)
def test_names_of_credentials_are_recognised(name):
    assert secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "df",
        "tokens",
        "token_count",
        "keys",
        "KeyError",
        "monkey",
        "author",
        "authority",
        "max_tokens",
        "key_column_index",
        "passage",
        "secretary_count",
    ],
)
def test_everyday_names_are_not_credentials(name):
    assert not secret_name(name)


@pytest.mark.parametrize(
    "value",
    [
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "ghp_0123456789abcdefghijABCDEFGHIJ",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "xoxb-1234567890-abcdefghij",
        "AKIAIOSFODNN7EXAMPLE",
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "hf_abcdefghijklmnopqrstuvwxyz123456",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "Bearer abc.def.ghi-1234",
        "Zx9Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz",  # 32 random characters, mixed case
        "3f786850e387550fdab836ed7e6dc881de23001b",  # 40 hex characters
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_values_shaped_like_keys_are_hidden_inside_any_text(value):
    text = f"before {value} after"
    hidden = hide_secrets(text)
    assert value not in hidden
    assert hidden.startswith("before ") and hidden.endswith(" after")
    assert HIDDEN in hidden
    assert looks_like_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "KeyError: 'price'",
        "a_very_long_snake_case_identifier_name_2024_version3",
        "/usr/lib/python3.11/site-packages/pandas/core/frame.py",
        "The quick brown fox jumps over the lazy dog 1234567890 times.",
        "550e8400-e29b-41d4-a716-446655440000",
        "tokens = text.split()",
        "if password == other:",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert hide_secrets(text) == text
    assert not looks_like_secret(text)


def test_string_literals_given_to_credential_names_are_hidden_whatever_their_shape():
    source = (
        'api_key = "hunter2"\n'
        "config = {'password': 'letmein', 'user': 'ana'}\n"
        'os.environ["HF_TOKEN"] = "abc"\n'
        "client = Client(api_key='short', base_url='http://x')\n"
        "name = 'ana'\n"
    )
    hidden = hide_secrets(source)
    for secret in ("hunter2", "letmein", "abc", "short"):
        assert secret not in hidden
    assert "'user': 'ana'" in hidden and "name = 'ana'" in hidden
    assert "base_url='http://x'" in hidden
    assert 'api_key = "[hidden]"' in hidden
