"""Writing output files so that an interrupted or failed write never leaves a file that looks
complete: each is written under a temporary name in its folder and moved into place."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yields a temporary path next to ``path``; on success it is renamed to ``path``, on any
    error (Ctrl-C included) removed. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600); the output gets what a plain open() would give
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    # Linux reports it without changing it; os.umask can only read by setting, which for an
    # instant gives every thread of the process (the nodes' executors) a umask of 0.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
