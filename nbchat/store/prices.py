"""What a reply costs in US dollars, from genai-prices (Pydantic's maintained price table).

Only servers that bill per token are priced (OpenAI, Azure, OpenRouter, and generic endpoints
off this machine), by the model the server reported; anything else is "price unknown", never $0.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import threading
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..protocol.types import ChatCompletion

__all__ = ["PROVIDERS", "cost", "dollars", "is_priced", "price"]

#: Profile kinds genai-prices knows by name; "generic" is looked up by its URL, then its model.
PROVIDERS = {"openai": "openai", "azure": "azure", "openrouter": "openrouter"}

_unknown: set[tuple[str, str | None, str | None]] = set()
_unknown_lock = threading.Lock()


def is_priced(profile: Any, url: str | None) -> bool:
    """True for a server that bills per token: not a local kind, not on this machine."""
    if getattr(profile, "local", False):
        return False
    kind = getattr(profile, "kind", "generic")
    if kind in PROVIDERS:
        return True
    return kind == "generic" and not _on_this_network(url)


def cost(
    completion: ChatCompletion, profile: Any, url: str | None, when: datetime | None = None
) -> float | None:
    """The dollars ``completion`` cost, by the model and usage the server reported, or None."""
    usage = completion.usage
    model = completion.model
    if usage is None or not model:
        return None
    cached = 0
    if usage.prompt_tokens_details is not None:
        cached = usage.prompt_tokens_details.cached_tokens or 0
    return price(
        model,
        profile,
        url,
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=cached,
        when=when,
    )


def price(
    model: str,
    profile: Any,
    url: str | None,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int = 0,
    when: datetime | None = None,
) -> float | None:
    """Dollars for these token counts of ``model`` on this server, or None when unknown.

    ``input_tokens`` includes ``cached_tokens`` (as OpenAI's prompt_tokens does).
    """
    if not is_priced(profile, url):
        return None
    kind = getattr(profile, "kind", "generic")
    provider_id = PROVIDERS.get(kind)
    api_url = None if provider_id else _base(url)
    miss = (model, provider_id, api_url)
    with _unknown_lock:
        if miss in _unknown:
            return None
    try:
        from genai_prices import Usage, calc_price
        from genai_prices.data_snapshot import get_snapshot

        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=min(cached_tokens, input_tokens) or None,
        )
        if provider_id is None and api_url is not None:
            try:
                get_snapshot().find_provider(None, None, api_url)
            except LookupError:
                # A URL genai-prices does not know (a proxy, a gateway): go by the model name.
                api_url = None
        if provider_id is not None:
            result = calc_price(usage, model, provider_id=provider_id, genai_request_timestamp=when)
        else:
            result = calc_price(
                usage, model, provider_api_url=api_url, genai_request_timestamp=when
            )
    except LookupError:
        with _unknown_lock:
            _unknown.add(miss)
        return None
    except Exception:
        # A price table that cannot answer is an unknown price, never a failed reply.
        return None
    return float(result.total_price)


def dollars(amount: float | None) -> str:
    """``$0.0012``, ``$1.50``: two significant digits below a dollar; "price unknown" for None."""
    if amount is None:
        return "price unknown"
    if amount == 0:
        return "$0"
    if amount >= 1:
        return f"${amount:,.2f}"
    if amount < 1e-8:
        return "<$0.00000001"
    decimals = min(max(2, 1 - math.floor(math.log10(amount))), 8)
    text = f"{amount:.{decimals}f}"
    if decimals > 2:
        # Past the cents, a trailing zero is not a significant digit: $0.001, not $0.0010.
        text = text.rstrip("0")
    return f"${text}"


def _base(url: str | None) -> str | None:
    if not url:
        return None
    return url.split("/chat/completions", 1)[0]


@functools.lru_cache(maxsize=256)
def _on_this_network(url: str | None) -> bool:
    """A loopback or private address: a server someone runs themselves, not a billed API."""
    host = (urlsplit(url).hostname or "") if url else ""
    if host in ("localhost", "") or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local
