"""Base URLs with credentials in them (``http://user:pass@host/v1``): the credentials split off.

A URL is printed, logged and shown in dry runs; the credentials go in a masked header instead.
"""

from __future__ import annotations

import httpx

from ..protocol.exceptions import mask_url

__all__ = ["split_credentials", "without_credentials"]


def split_credentials(url: str) -> tuple[str, str, str]:
    """``(url without user:password, user, password)``, the two percent-decoded."""
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, "", ""
    return str(parsed.copy_with(username=None, password=None)), parsed.username, parsed.password


def without_credentials(url: str) -> str:
    """The URL as it may be shown: without any ``user:password@``, credential query values
    (``?api-key=…``) masked. A URL httpx cannot parse is shown as ``(an invalid URL)``, since
    where its credentials end is unknown."""
    try:
        return mask_url(url)
    except httpx.InvalidURL:
        return "(an invalid URL)"
