"""Secrets kept out of what nbchat writes for a model: names that look like credentials, and
values that look like API keys, bearer tokens, private keys or long random tokens.

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
# but not ``KeyError``, ``token_count``, ``author``; plurals never (``tokens``, ``keys``).
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
_WEAK_WORDS = frozenset({"key", "token", "auth"})
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
  | (?i:bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}     # an Authorization header's value
  | -----BEGIN[A-Z ]*PRIVATE\ KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE\ KEY-----|\Z)
    """,
    re.VERBOSE,
)
# A long run of token characters: hidden when it looks random (see _random).
_RUN = re.compile(r"(?<![A-Za-z0-9_\-+/=])[A-Za-z0-9_\-+/=]{32,}(?![A-Za-z0-9_\-+/=])")
# A string literal given to a credential's name: ``api_key = "…"``, ``{"password": "…"}``,
# ``os.environ["HF_TOKEN"] = "…"``, ``Client(api_key='…')``.
_ASSIGNED = re.compile(
    r"""(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)(?P<mid>['"]?\s*\]?\s*(?::|=(?!=))\s*)"""
    r"""(?P<prefix>[rRbBuU]{0,2})(?P<quote>['"])(?P<value>[^'"\n]+)(?P=quote)"""
)


def secret_name(name: str) -> bool:
    """True when ``name`` looks like a credential's: api_key, token, password, AUTH_HEADER…"""
    words = [word.lower() for word in _WORD.findall(name)]
    if not words:
        return False
    return bool(set(words) & _SECRET_WORDS) or words[-1] in _WEAK_WORDS or "apikey" in name.lower()


def looks_like_secret(text: str) -> bool:
    """True when ``text`` holds something that looks like a key or a token."""
    return hide_secrets(text) != text


def hide_secrets(text: str) -> str:
    """``text`` with credential-like values replaced by :data:`HIDDEN`."""
    text = _KNOWN.sub(HIDDEN, text)
    text = _RUN.sub(lambda m: HIDDEN if _random(m.group(0)) else m.group(0), text)
    return _ASSIGNED.sub(_hide_assigned, text)


def _hide_assigned(match: re.Match[str]) -> str:
    if not secret_name(match.group("name")) or match.group("value") == HIDDEN:
        return match.group(0)
    quote = match.group("quote")
    return f"{match.group('name')}{match.group('mid')}{match.group('prefix')}{quote}{HIDDEN}{quote}"


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
