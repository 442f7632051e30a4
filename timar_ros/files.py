"""Writing output files so that an interrupted or failed write never leaves a file that looks
complete: each is written under a temporary name in its folder and moved into place."""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path next to ``path``; on success it is renamed to ``path``, on any
    error (Ctrl-C included) removed. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # named before it exists and created inside the try: a Ctrl-C that lands as the file is
    # made (tempfile.mkstemp runs Python code after creating it, before it returns the name)
    # still finds it to remove
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.partial"
    try:
        # O_EXCL: the name is ours; 0o666 less the umask, what a plain open() gives
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; returns ``path``."""
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def save_figure(fig, path: str | os.PathLike, **kwargs) -> Path:
    """``fig.savefig`` atomically (the format from the path's suffix); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    return path


def save_array(path: str | os.PathLike, array) -> Path:
    """``numpy.save`` atomically to ``path`` (a .npy); returns ``path``."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)


def save_arrays(path: str | os.PathLike, **arrays) -> Path:
    """``numpy.savez`` atomically to ``path`` (a .npz, the name as given); returns ``path``."""
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)
