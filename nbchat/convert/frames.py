"""Parsed structured output as a pandas DataFrame: a list of records, one row each.

pandas is imported only when a frame is made, so importing nbchat never loads it.
"""

from __future__ import annotations

from typing import Any

from .parsing import StructuredOutputError

__all__ = ["to_frame"]


def to_frame(parsed: Any) -> Any:
    """A pandas DataFrame of a parsed list of records.

    Accepts a list of dicts or models (nested objects become ``a.b`` columns), a model or dict
    whose only list field holds the records, or a single record (one row).
    """
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("to_frame needs pandas: pip install pandas") from None
    records = _records(parsed)
    if records is None:
        raise StructuredOutputError(
            f"cannot make a table of a {type(parsed).__name__}; expected a list of records",
            reason="not_records",
        )
    if records and not all(isinstance(r, dict) for r in records):
        return pd.DataFrame({"value": records})
    return pd.json_normalize(records) if records else pd.DataFrame()


def _records(parsed: Any) -> list[Any] | None:
    plain = _plain(parsed)
    if isinstance(plain, list):
        return plain
    if isinstance(plain, dict):
        lists = [v for v in plain.values() if isinstance(v, list)]
        if len(lists) == 1 and len(plain) == 1:
            return lists[0]
        if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]) and lists[0]:
            return lists[0]
        return [plain]
    return None


def _plain(value: Any) -> Any:
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
