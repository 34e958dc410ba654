from __future__ import annotations

import base64
import json

from nbchat.transport.credentials import echo_forms, header_credentials, query_credentials


def test_header_credentials_are_the_value_the_credential_and_a_basic_password():
    basic = base64.b64encode(b"carol:pa55word").decode()
    headers = {
        "Authorization": "Bearer tok-0123",
        "X-Api-Key": "k-0123",
        "Proxy-Authorization": f"Basic {basic}",
        "Accept": "application/json",
        "x-ratelimit-remaining-tokens": "99",
    }
    found = list(header_credentials(headers))
    assert found == ["Bearer tok-0123", "tok-0123", "k-0123", f"Basic {basic}", basic, "pa55word"]


def test_a_basic_header_with_a_token_as_its_user_gives_the_token():
    token = base64.b64encode(b"ghtoken-0123:").decode()
    assert list(header_credentials({"Authorization": f"Basic {token}"}))[-1] == "ghtoken-0123"
    # Not base64: the value and its credential part, nothing decoded.
    assert list(header_credentials({"Authorization": "Basic not*base64"})) == [
        "Basic not*base64",
        "not*base64",
    ]


def test_query_credentials_are_the_values_of_credential_parameters():
    url = "https://x.test/v1?api-version=1&api-key=k1&sig=s%2B1&access_token=t1&q=key"
    assert list(query_credentials(url)) == ["k1", "s+1", "t1"]
    assert list(query_credentials("https://x.test/v1")) == []


def test_echo_forms_are_percent_encoded_and_json_escaped_longest_first():
    forms = echo_forms(['a/b"c ö', "abc", ""])
    assert forms[0] == max(forms, key=len)
    for form in ('a/b"c ö', "a%2Fb%22c%20%C3%B6", "a%2Fb%22c+%C3%B6", 'a/b\\"c \\u00f6'):
        assert form in forms, form
    assert 'a\\/b\\"c \\u00f6' in forms and 'a/b\\"c ö' in forms
    assert json.dumps('a/b"c ö')[1:-1] in forms
    assert "abc" not in forms  # under four characters: it would mask ordinary text
    assert len(set(forms)) == len(forms)
