"""Secrets kept out of what nbchat writes for a model: names that look like credentials, and
values that look like API keys, bearer tokens, private keys or long random tokens, passwords
and tokens in URLs, and credentials in query strings and ``NAME=value`` settings.

It is a heuristic (a hidden hash now and then is the price of never sending a key), applied to
every description, traceback and cell that goes into a prompt.
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["HIDDEN", "hide_secrets", "looks_like_secret", "secret_name"]

#: What stands in for a hidden value.
HIDDEN = "[hidden]"

# Words that make a name a credential's: ``db_password``, ``CLIENT_SECRET``, ``apiKey``. The
# weak ones count as a name's last word only: ``api_key``, ``GITHUB_TOKEN``, ``basic_auth``,
# ``Authorization``, but not ``KeyError``, ``token_count``, ``author``, ``authorization_url``;
# their plurals never (``tokens``, ``keys``), the strong ones' as the last word
# (``passwords``, ``secrets``; not ``passwords_checked``).
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "credential",
        "credentials",
        "bearer",
        "cookie",
    }
)
_WEAK_WORDS = frozenset({"key", "token", "auth", "authorization"})
_PLURALS = frozenset({"secrets", "passwords", "passwds", "passphrases", "pwds", "cookies"})
# A word written without separators (``PGPASSWORD``, ``GITHUBTOKEN``, ``SECRETKEY``) counts when
# it ends with one of these; ``…bearer`` is left out (``torchbearer``), and so are the English
# words that end in "key" (a credential's name ending in "key" is never one of them).
_ENDINGS = tuple(sorted((_SECRET_WORDS - {"bearer"}) | _WEAK_WORDS, key=len, reverse=True))
_KEY_WORDS = frozenset(
    {
        "monkey",
        "donkey",
        "turkey",
        "hockey",
        "jockey",
        "whiskey",
        "lackey",
        "malarkey",
        "flunkey",
        "hokey",
        "pokey",
        "jokey",
        "smokey",
        "hotkey",
        "turnkey",
        "latchkey",
    }
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Shapes of real credentials (vendors document their prefixes so that scanners can find them).
_KNOWN = re.compile(
    r"""
    \bsk-[A-Za-z0-9_\-]{16,}                        # OpenAI, Anthropic, OpenRouter, DeepSeek…
  | \b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}      # GitHub tokens
  | \bgithub_pat_[A-Za-z0-9_]{20,}
  | \bxox[abposr]-[A-Za-z0-9\-]{10,}                # Slack
  | \bAKIA[0-9A-Z]{16}\b                            # AWS access key id
  | \bAIza[0-9A-Za-z_\-]{30,}                       # Google API key
  | \bhf_[A-Za-z0-9]{20,}                           # Hugging Face
  | \b(?:r8|pk|rk)_[A-Za-z0-9]{20,}                 # Replicate, Stripe-style keys
  | \beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}   # JSON web tokens
  | -----BEGIN[A-Z ]*PRIVATE\ KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE\ KEY-----|\Z)
    """,
    re.VERBOSE,
)
# An Authorization header's value: hidden when its credential is not a word ("a basic approach").
_SCHEMED = re.compile(r"(?i:\b(?P<scheme>bearer|basic|token))\s+(?P<value>[A-Za-z0-9._~+/=\-]{8,})")
# A long run of token characters: hidden when it looks random (see _random).
_RUN = re.compile(r"(?<![A-Za-z0-9_\-+/=])[A-Za-z0-9_\-+/=]{32,}(?![A-Za-z0-9_\-+/=])")
# A string literal given to a credential's name: ``api_key = "…"``, ``{"password": "…"}``,
# ``os.environ["HF_TOKEN"] = "…"``, ``Client(api_key='…')``. Names and schemes start where a
# run of their characters starts: trying every position inside a long run ("a-a-a-…") costs
# time growing with the square of its length (20,000 characters took 16 s).
_ASSIGNED = re.compile(
    r"""(?<![A-Za-z0-9_\-])(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?P<mid>['"]?\s*\]?\s*(?::|=(?!=))\s*)"""
    r"""(?P<prefix>[rRbBuU]{0,2})(?P<quote>['"])(?P<value>[^'"\n]+)(?P=quote)"""
)
# The user info of a URL of any scheme: ``postgresql://admin:PASSWORD@host/db``,
# ``redis://:PASSWORD@host``, ``https://TOKEN:@host``, ``https://TOKEN@github.com``. A password
# may hold an unescaped "@": the last one before the host ends it.
_USERINFO = re.compile(
    r"""(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)"""
    r"""(?P<userinfo>[^\s/?#'"`<>\\]+)@(?=[^\s@/])"""
)
# A user name alone that reads as a name (git, admin, ec2-user), not as a token.
_NAME = re.compile(r"(?=[a-z0-9._\-]{1,16}$)[a-z][a-z._\-]*(?:\d[a-z._\-]*){0,2}")
# ``NAME=value`` unquoted: a query string's parameter (``?api_key=…&``), a shell or %env
# setting (``PGPASSWORD=… psql``, ``%env OPENAI_API_KEY=…``), a connection string's field
# (``password=… dbname=x``, ``PWD=…;``). Not a keyword argument (``f(password=pw)``): a value
# followed by "," or ")" is code.
_SETTING = re.compile(
    r"""(?P<lead>^|[\s?&;(,'"!])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)=(?!=)"""
    r"""(?P<value>[^\s'"&;,()\[\]{}<>#]+)(?=[\s'"&;#]|$)""",
    re.MULTILINE,
)
# Query parameters that carry a signature (Azure SAS ``sig``, AWS ``X-Amz-Signature``).
_SIGNATURE = re.compile(r"(?i)(?:[a-z\-]*-)?sig(?:nature)?")
_PLACEHOLDER = re.compile(
    r"\{[^{}]*\}|%[sd]|%\([A-Za-z_]\w*\)s|\$\{?\w+\}?|<[^<>]*>|[*•x]{3,}|\.{3}|…"
)
_KEYWORDS = frozenset({"None", "True", "False", "lambda", "null", "true", "false"})


def secret_name(name: str) -> bool:
    """True when ``name`` looks like a credential's: api_key, token, PGPASSWORD, AUTH_HEADER…"""
    words = [word.lower() for word in _WORD.findall(name)]
    if not words:
        return False
    if "apikey" in name.lower():
        return True
    last = len(words) - 1
    return any(_credential_word(word, last=i == last) for i, word in enumerate(words))


def _credential_word(word: str, *, last: bool) -> bool:
    if word in _SECRET_WORDS or (last and (word in _WEAK_WORDS or word in _PLURALS)):
        return True
    for ending in _ENDINGS:
        if len(word) <= len(ending) or not word.endswith(ending):
            continue
        if (ending in _WEAK_WORDS and not last) or word in _KEY_WORDS:
            continue
        return True
    return last and any(len(word) > len(p) and word.endswith(p) for p in _PLURALS)


def looks_like_secret(text: str) -> bool:
    """True when ``text`` holds something that looks like a key or a token."""
    return hide_secrets(text) != text


def hide_secrets(text: str) -> str:
    """``text`` with credential-like values replaced by :data:`HIDDEN`: key-shaped values,
    passwords in URLs (``postgresql://admin:[hidden]@host/db``), credentials in query strings
    and in ``NAME=value`` settings, and string literals given to a credential's name."""
    text = _KNOWN.sub(HIDDEN, text)
    text = _SCHEMED.sub(_hide_scheme_value, text)
    # Before the long runs, which would take a URL's "//" with a token after it.
    text = _USERINFO.sub(_hide_userinfo, text)
    text = _RUN.sub(lambda m: HIDDEN if _random(m.group(0)) else m.group(0), text)
    text = _SETTING.sub(_hide_setting, text)
    return _ASSIGNED.sub(_hide_assigned, text)


def _hide_assigned(match: re.Match[str]) -> str:
    if not secret_name(match.group("name")) or match.group("value") == HIDDEN:
        return match.group(0)
    quote = match.group("quote")
    return f"{match.group('name')}{match.group('mid')}{match.group('prefix')}{quote}{HIDDEN}{quote}"


def _hide_scheme_value(match: re.Match[str]) -> str:
    value = match.group("value")
    # Prose: letters, perhaps hyphenated or ending a sentence, in one case or capitalised.
    letters = value.replace("-", "").replace(".", "")
    wordlike = letters.isalpha() and (letters.islower() or letters.isupper() or letters.istitle())
    if wordlike or value == HIDDEN:
        return match.group(0)
    return f"{match.group('scheme')} {HIDDEN}"


def _hide_userinfo(match: re.Match[str]) -> str:
    user, colon, password = match.group("userinfo").partition(":")
    if colon and password:
        shown = f"{user}:{password if _placeholder(password) else HIDDEN}"
    else:
        # ``https://TOKEN@github.com``, ``https://TOKEN:@host``: a user part that does not read
        # as a name is the credential; ``ssh://git@…`` and ``postgres://admin@…`` stay.
        named = not user or _placeholder(user) or _NAME.fullmatch(user)
        shown = (user if named else HIDDEN) + colon
    return f"{match.group('scheme')}{shown}@"


def _hide_setting(match: re.Match[str]) -> str:
    name, value = match.group("name"), match.group("value")
    query = match.group("lead") in ("?", "&", ";")
    wanted = secret_name(name) or (query and _SIGNATURE.fullmatch(name))
    if not wanted or _placeholder(value) or value in _KEYWORDS:
        return match.group(0)
    return f"{match.group('lead')}{name}={HIDDEN}"


def _placeholder(value: str) -> bool:
    """Text that stands for a value rather than being one: ``{password}``, ``%s``, ``$PASS``,
    ``<token>``, ``***``, or a value hidden already."""
    return value == HIDDEN or bool(_PLACEHOLDER.fullmatch(value))


def _random(run: str) -> bool:
    """Whether a long run of token characters looks like a random token rather than a word."""
    if not (re.search(r"\d", run) and re.search(r"[A-Za-z]", run)):
        return False
    if run.count("_") + run.count("-") > len(run) / 10:
        # snake_case and kebab-case identifiers: words, not randomness.
        return False
    mixed_case = bool(re.search(r"[a-z]", run) and re.search(r"[A-Z]", run))
    if len(run) < 40 and not mixed_case:
        return False
    counts = Counter(run)
    entropy = -sum(n / len(run) * math.log2(n / len(run)) for n in counts.values())
    return entropy >= 3.5
