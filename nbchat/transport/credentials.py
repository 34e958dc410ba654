"""Every credential a client holds, in every form a server could echo it back: what the store,
cassettes and error messages mask (``Client.secrets``).

A server that echoes its request (a proxy's error page, a debugging endpoint, a model told
"repeat the headers") can return the key, a base URL's password, the Basic token made of it or a
header given in ``Client(headers=…)``, as written, percent-encoded or inside JSON text.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from ..protocol.exceptions import credential_field

__all__ = ["MIN_LENGTH", "echo_forms", "header_credentials", "query_credentials"]

#: Shorter values are not masked: "x" or "abc" as a key would mask ordinary text everywhere.
MIN_LENGTH = 4


def header_credentials(headers: Mapping[str, str]) -> Iterator[str]:
    """The credentials in ``headers``: each credential header's value, the part after its
    scheme (``Bearer …``), and the password (or token-as-user) inside a Basic one."""
    for name, value in headers.items():
        if not credential_field(name) or not isinstance(value, str):
            continue
        yield value
        scheme, space, credential = value.strip().partition(" ")
        if not (space and scheme.isalpha()):
            continue
        credential = credential.strip()
        yield credential
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(credential, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                continue
            user, _, password = pair.partition(":")
            yield password or user


def query_credentials(url: str) -> Iterator[str]:
    """The values of a URL's credential query parameters (``?api-key=…``, ``&sig=…``)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return
    for name, value in parse_qsl(query, keep_blank_values=True):
        if credential_field(name):
            yield value


def echo_forms(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` and the forms they take when echoed: percent-encoded (a URL, a form body) and
    escaped inside JSON text (also with ``\\/``). Longest first, so that a secret inside another
    is masked whole; values shorter than :data:`MIN_LENGTH` left out."""
    forms: set[str] = set()
    for value in values:
        if not value or len(value) < MIN_LENGTH:
            continue
        escaped = json.dumps(value)[1:-1]
        forms.update(
            (
                value,
                quote(value, safe=""),
                quote_plus(value, safe=""),
                escaped,
                escaped.replace("/", "\\/"),
                json.dumps(value, ensure_ascii=False)[1:-1],
            )
        )
    return tuple(sorted(forms, key=lambda form: (-len(form), form)))
