"""The spending limit: refuse a request before it is sent when it could pass the budget.

A request's cost is bounded from above: prompt tokens estimated from its body (the estimate the
dry run shows, ``convert/tokenbudget.py``), completion tokens by max_tokens (or an assumed 1024
when it sets none), priced for the model it asks for.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from ..protocol.exceptions import BudgetExceededError
from ..transport.prepared import PreparedRequest
from ..transport.profiles import ServerProfile
from . import config, prices

__all__ = [
    "ASSUMED_COMPLETION_TOKENS",
    "Estimate",
    "Reservation",
    "check_budget",
    "estimate",
    "estimate_prompt_tokens",
    "record_spending",
    "reserve",
    "reserved",
    "spent",
    "unpriced_note",
]

#: Completion tokens assumed for a request that sets neither max_tokens nor
#: max_completion_tokens (set one to bound the estimate exactly).
ASSUMED_COMPLETION_TOKENS = 1024

# What this process spent, for when the store is off or cannot be read.
_process_spent = 0.0
_spent_lock = threading.Lock()
# Dollars promised to requests on the wire (their estimates), until each is settled; checking
# and reserving are one step under the lock, so requests sent at once cannot pass it together.
_reserved = 0.0
_open_reservations = 0
_reserve_lock = threading.Lock()
_warned_unpriced: set[str] = set()
_noted_unpriced: set[str] = set()


class Estimate:
    """The most a request could cost: its token counts and their price (None when unknown)."""

    __slots__ = ("completion_tokens", "dollars", "model", "prompt_tokens")

    def __init__(
        self, model: str, prompt_tokens: int, completion_tokens: int, dollars: float | None
    ) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.dollars = dollars

    def __repr__(self) -> str:
        return (
            f"Estimate(model={self.model!r}, prompt_tokens={self.prompt_tokens}, "
            f"completion_tokens={self.completion_tokens}, dollars={self.dollars})"
        )


def check_budget(
    prepared: PreparedRequest, profile: ServerProfile, *, reserved: float = 0.0
) -> Estimate | None:
    """Raise BudgetExceededError if sending ``prepared`` could pass the budget; nothing is sent.

    ``reserved`` is dollars already promised to requests in flight (a batch sending several at
    once passes the sum of their estimates). Returns the estimate, or None when no budget is
    set or the server does not bill per token.
    """
    limit = config.budget()
    if limit is None or not prices.is_priced(profile, prepared.url):
        return None
    guess = estimate(prepared, profile)
    used = spent() + reserved
    if guess.dollars is None:
        if used >= limit:
            raise BudgetExceededError(
                f"Budget spent: {prices.dollars(used)} of the {prices.dollars(limit)} budget is "
                f"used and the price of {guess.model} is unknown; nothing was sent. Raise "
                "%config Chat.budget (or NBCHAT_BUDGET).",
                estimate=None,
                spent=used,
                budget=limit,
            )
        if guess.model not in _warned_unpriced:
            _warned_unpriced.add(guess.model)
            warnings.warn(
                f"The price of {guess.model} is unknown, so the budget cannot bound its requests.",
                UserWarning,
                stacklevel=2,
            )
        return guess
    if used + guess.dollars > limit:
        raise BudgetExceededError(
            f"Budget exceeded: this request could cost up to {prices.dollars(guess.dollars)} "
            f"(~{guess.prompt_tokens:,} prompt + up to {guess.completion_tokens:,} completion "
            f"tokens of {guess.model}) and {prices.dollars(used)} of the "
            f"{prices.dollars(limit)} budget is spent; nothing was sent. Raise %config "
            "Chat.budget (or NBCHAT_BUDGET), or set a smaller max_tokens.",
            estimate=guess.dollars,
            spent=used,
            budget=limit,
        )
    return guess


class Reservation:
    """The estimate of one request in flight, held against the budget until ``settle()``."""

    __slots__ = ("dollars", "estimate")

    def __init__(self, estimate: Estimate, dollars: float) -> None:
        self.estimate: Estimate | None = estimate
        self.dollars = dollars

    def settle(self, cost: float | None) -> None:
        """The request ended: let its estimate go, and count what it cost (None: nothing
        known), which the store counts from now on when it is on."""
        global _reserved, _open_reservations
        with _reserve_lock:
            if self.estimate is not None:
                self.estimate = None
                _open_reservations -= 1
            # The last one out leaves no rounding behind.
            _reserved = max(_reserved - self.dollars, 0.0) if _open_reservations else 0.0
            self.dollars = 0.0
        record_spending(cost)


def reserve(prepared: PreparedRequest, profile: ServerProfile) -> Reservation | None:
    """Check ``prepared`` against the budget as ``check_budget`` does, counting every request
    still in flight, and hold its estimate until the reservation is settled.

    Raises BudgetExceededError (nothing is sent); None when no budget applies.
    """
    global _reserved, _open_reservations
    if config.budget() is None:
        return None
    with _reserve_lock:
        guess = check_budget(prepared, profile, reserved=_reserved)
        if guess is None:
            return None
        dollars = guess.dollars or 0.0
        _reserved += dollars
        _open_reservations += 1
    return Reservation(guess, dollars)


def reserved() -> float:
    """US dollars held for requests in flight."""
    with _reserve_lock:
        return _reserved


def estimate(prepared: PreparedRequest, profile: ServerProfile) -> Estimate:
    """The most ``prepared`` could cost on this server, for the model it asks for."""
    body = prepared.body
    model = str(body.get("model") or getattr(profile, "default_model", None) or "")
    prompt = estimate_prompt_tokens(body)
    bound = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = (int(bound) if bound else ASSUMED_COMPLETION_TOKENS) * int(body.get("n") or 1)
    dollars = prices.price(
        model, profile, prepared.url, input_tokens=prompt, output_tokens=completion
    )
    return Estimate(model, prompt, completion, dollars)


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a request body: the one estimate nbchat makes (the dry run's budget
    table, trimming and the budget all read it), images by their size as the API counts them.
    """
    from ..convert.tokenbudget import estimate_budget

    return estimate_budget(body).total


def spent() -> float:
    """US dollars billed so far across the store (or by this process, with the store off)."""
    from .db import open_store

    path = config.store_path()
    if path is not None:
        store = open_store(path)
        if not store.broken:
            return store.spent()
    with _spent_lock:
        return _process_spent


def record_spending(dollars: float | None) -> None:
    """Count ``dollars`` billed by this process (the fallback when there is no store)."""
    global _process_spent
    if dollars:
        with _spent_lock:
            _process_spent += dollars


def unpriced_note(completion: Any, profile: Any, url: str | None) -> str | None:
    """Once per server and process, with a budget set: why a reply it cannot price is not
    counted, and how to name a server that bills (a gateway on this machine in front of a paid
    API looks like a free server). None for nbchat's own local model, which is free."""
    limit = config.budget()
    if limit is None or getattr(profile, "local", False):
        return None
    if prices.is_priced(profile, url):
        if completion.usage is not None:
            # A model genai-prices does not list: check_budget warned before it was sent.
            return None
        why = "the server sent no token counts (usage) for it"
    else:
        kind = getattr(profile, "kind", "generic")
        where = "on this machine or network" if kind == "generic" else f"of the kind {kind}"
        why = f"nbchat takes a server {where} for a free one"
    key = str(url or "").split("/chat/completions", 1)[0]
    with _spent_lock:
        if key in _noted_unpriced:
            return None
        _noted_unpriced.add(key)
    return (
        f"This reply has no price, so the {prices.dollars(limit)} budget does not count it: "
        f"{why}. If this server bills per token (a gateway to a paid API), name its kind: "
        '%config Chat.server = "openai" (Client(server="openai") in Python).'
    )
