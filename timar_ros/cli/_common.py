"""What several `timar` subcommands parse or write the same way."""

from __future__ import annotations

import json
from typing import Any


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_values(items: list[str] | None, sep: str = "=", flag: str = "--set") -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; values through :func:`parse_value`.

    Raises ValueError naming ``flag`` for an item without ``sep``."""
    out = {}
    for item in items or []:
        key, found, value = item.partition(sep)
        if not found or not key.strip():
            raise ValueError(f"{flag} expects KEY{sep}VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out
