"""Field checks shared by the YAML config loaders (the retarget config, the sim config): each
raises the loader's own error class with ``<file>: <field>: <problem>``."""

from __future__ import annotations

import math


def field_error(error: type[Exception], source: str, where: str, msg: str) -> Exception:
    return error(f"{source}: {where}: {msg}")


def check_keys(error: type[Exception], source: str, where: str, d, required, optional=()) -> None:
    """``d`` must be a mapping with every ``required`` key and no key outside ``optional``."""
    if not isinstance(d, dict):
        raise field_error(error, source, where, f"must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(required) - set(optional))
    if unknown:
        raise field_error(
            error,
            source,
            where,
            f"unknown field(s) {unknown}; allowed: {sorted(set(required) | set(optional))}",
        )
    missing = [k for k in required if k not in d]
    if missing:
        raise field_error(error, source, where, f"missing field(s) {missing}")


def number(
    error: type[Exception], source: str, where: str, value, positive=False, nonneg=False
) -> float:
    """A finite int or float (not a bool), > 0 with ``positive``, >= 0 with ``nonneg``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise field_error(error, source, where, f"must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise field_error(error, source, where, f"must be finite, got {value!r}")
    if positive and v <= 0:
        raise field_error(error, source, where, f"must be > 0, got {v}")
    if nonneg and v < 0:
        raise field_error(error, source, where, f"must be >= 0, got {v}")
    return v
