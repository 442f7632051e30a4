"""TIMAR model (pure PyTorch). Submodules are imported lazily so that ``layout`` and ``config``
can be used without torch (the onnxruntime backend)."""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TurnLayout": "layout",
    "DELIMITERS": "layout",
    "TIMARConfig": "config",
    "PRESETS": "config",
    "preset": "config",
    "TIMAR": "timar",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
