"""The spending limit: refuse a request before it is sent when it could pass the budget.

A request's cost is bounded from above: prompt tokens estimated from its body, completion tokens
by max_tokens (or an assumed 1024 when it sets none), priced for the model it asks for.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import warnings
from typing import Any

from ..protocol.exceptions import BudgetExceededError
from ..transport.prepared import PreparedRequest
from . import config, prices

__all__ = [
    "ASSUMED_COMPLETION_TOKENS",
    "Estimate",
    "check_budget",
    "estimate",
    "estimate_prompt_tokens",
    "record_spending",
    "spent",
]

#: Completion tokens assumed for a request that sets neither max_tokens nor
#: max_completion_tokens (set one to bound the estimate exactly).
ASSUMED_COMPLETION_TOKENS = 1024
#: Tokens a message costs beyond its text (role, separators), and the reply's priming.
_PER_MESSAGE = 4
_PER_REPLY = 3
#: An image whose size cannot be read (an http URL) is counted as a 1024×1024 one at high detail.
_UNKNOWN_IMAGE_TOKENS = 765

# What this process spent, for when the store is off or cannot be read.
_process_spent = 0.0
_spent_lock = threading.Lock()
_warned_unpriced: set[str] = set()


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
    prepared: PreparedRequest, profile: Any, *, reserved: float = 0.0
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


def estimate(prepared: PreparedRequest, profile: Any) -> Estimate:
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
    """Prompt tokens of a request body, erring high.

    About four characters a token for ASCII text and one a token for other scripts (CJK text
    is close to that), plus each message's overhead; images by their size, like the API.
    """
    tokens = _PER_REPLY
    for message in body.get("messages") or ():
        tokens += _PER_MESSAGE
        for key, value in message.items():
            if key == "content" and isinstance(value, list):
                for part in value:
                    tokens += _part_tokens(part)
            elif key != "role":
                tokens += _text_tokens(value if isinstance(value, str) else json.dumps(value))
    for key in ("tools", "response_format"):
        if body.get(key):
            tokens += _text_tokens(json.dumps(body[key], ensure_ascii=False))
    return tokens


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


def _text_tokens(text: str) -> int:
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return -(-ascii_chars // 4) + (len(text) - ascii_chars)


def _part_tokens(part: Any) -> int:
    if not isinstance(part, dict):
        return _text_tokens(str(part))
    if part.get("type") == "image_url":
        image = part.get("image_url") or {}
        return _image_tokens(str(image.get("url", "")), str(image.get("detail") or "auto"))
    if part.get("type") == "text":
        return _text_tokens(str(part.get("text", "")))
    if part.get("type") in ("input_audio", "file"):
        from ..convert.tokenbudget import attachment_tokens

        return attachment_tokens(part)
    return _text_tokens(json.dumps(part))


def _image_tokens(url: str, detail: str) -> int:
    from ..convert.images import estimate_image_tokens

    if detail not in ("low", "high", "auto"):
        detail = "auto"
    if detail == "low":
        return estimate_image_tokens(1, 1, "low")
    if url.startswith("data:") and ";base64," in url:
        try:
            from PIL import Image

            data = base64.b64decode(url.split(";base64,", 1)[1])
            with Image.open(io.BytesIO(data)) as image:
                return estimate_image_tokens(image.width, image.height, detail)
        except Exception:
            pass
    return _UNKNOWN_IMAGE_TOKENS
