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
        # One word without separators: the credential word it ends with.
        "PGPASSWORD",
        "DBPASSWORD",
        "GITHUBTOKEN",
        "SECRETKEY",
        "APITOKEN",
        "AUTHTOKEN",
        "CLIENTSECRET",
        "dbpassword",
        "mytoken",
        "OAUTH",
        "DBPWD",
        "DBPASSWORD_FILE",
        "passkey",
        # Plurals of the strong words, as the last word.
        "passwords",
        "user_passwords",
        "secrets",
        "DBPASSWORDS",
        "Authorization",
        "proxy_authorization",
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
        "tokenizer",
        "TOKENIZER",
        "n_tokens",
        "keyboard",
        "secretary",
        "passwords_checked",
        "GITHUBTOKENS",
        "donkey",
        "hotkey",
        "torchbearer",
        "keytoken_count",
        "authorization_url",
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
        "Basic dXNlcjpwYXNzd29yZA==",
        "Token abc123xyz",
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
        "A basic approach: bearer bonds, Basic Examples, token budgets.",
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


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("postgresql://admin:PASSWORD@host/db", "postgresql://admin:[hidden]@host/db"),
        ("mysql+pymysql://me:p@ss:w0rd@db:3306/x", "mysql+pymysql://me:[hidden]@db:3306/x"),
        ("redis://:hunter2@localhost:6379/0", "redis://:[hidden]@localhost:6379/0"),
        ("amqp://guest:guest@rabbit//", "amqp://guest:[hidden]@rabbit//"),
        ("https://abc123TOKEN:@api.example.com/v1", "https://[hidden]:@api.example.com/v1"),
        ("https://TOKEN@github.com/org/repo.git", "https://[hidden]@github.com/org/repo.git"),
        (
            "https://sk_test_4eC39HqLyjWDarjtT1zdp7dc:@api.stripe.com",
            "https://[hidden]:@api.stripe.com",
        ),
        (
            "engine('sqlite:///x.db'), 'ftp://u:pw1@h'",
            "engine('sqlite:///x.db'), 'ftp://u:[hidden]@h'",
        ),
    ],
)
def test_passwords_and_tokens_in_urls_are_hidden_and_the_url_stays_readable(text, hidden):
    assert hide_secrets(text) == hidden
    assert hide_secrets(hidden) == hidden  # hiding twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "ssh://git@github.com/org/repo.git",
        "postgres://admin@host/db",
        "ftp://anonymous:@ftp.example.org/pub",
        "https://ec2-user@host/x",
        'f"postgresql://{user}:{password}@{host}/db"',
        "'postgresql://%s:%s@%s/db' % (user, pw, host)",
        "postgresql://$PGUSER:$PGPASSWORD@host/db",
        "postgresql://user:<password>@host/db",
        "postgresql://admin:***@host/db",
        "git@github.com:org/repo.git",
        "write to ana@example.com or see https://example.com/a@b",
    ],
)
def test_urls_without_a_credential_are_left_alone(text):
    assert hide_secrets(text) == text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("https://x.test/v1?api_key=abc123&q=1", "https://x.test/v1?api_key=[hidden]&q=1"),
        (
            "https://a.blob.test/c?sv=2020&sig=abc%3D&se=1",
            "https://a.blob.test/c?sv=2020&sig=[hidden]&se=1",
        ),
        (
            "s3.test/o?X-Amz-Signature=ab12&X-Amz-Credential=AK/x",
            "s3.test/o?X-Amz-Signature=[hidden]&X-Amz-Credential=[hidden]",
        ),
        ("%env PGPASSWORD=hunter2", "%env PGPASSWORD=[hidden]"),
        ("!PGPASSWORD=hunter2 psql -h db", "!PGPASSWORD=[hidden] psql -h db"),
        ("export DB_PASSWORD=hunter2\n", "export DB_PASSWORD=[hidden]\n"),
        (
            'connect("host=db user=ana password=hunter2 dbname=x")',
            'connect("host=db user=ana password=[hidden] dbname=x")',
        ),
        ("Server=db;UID=sa;PWD=hunter2;", "Server=db;UID=sa;PWD=[hidden];"),
    ],
)
def test_unquoted_settings_of_credentials_are_hidden(text, hidden):
    assert hide_secrets(text) == hidden


@pytest.mark.parametrize(
    "text",
    [
        "sorted(xs, key=lambda v: v[1])",
        "connect(host=h, password=pw)",
        "connect(\n    password=pw,\n)",
        "dict(token=tok)",
        'f"password={password} host={host}"',
        "PGPASSWORD=$PGPASSWORD psql",
        "n = x if password==other else y",
        "https://x.test/search?q=tokens&page=2",
    ],
)
def test_code_that_passes_credentials_by_name_is_left_alone(text):
    assert hide_secrets(text) == text


@pytest.mark.parametrize("run", ["a-", "a.", "a_", "x=", "a:", "a://"])
def test_long_runs_take_time_in_proportion_to_their_length(run):
    # Every position inside a run used to start a match: 20,000 characters of "a-" took 16 s,
    # 200,000 would take half an hour. Now 200,000 take about 0.2 s here; the bound only
    # catches that growth coming back, not a figure.
    import time

    text = run * (200_000 // len(run))
    started = time.perf_counter()
    hide_secrets(text)
    assert time.perf_counter() - started < 20
