"""The DualTalk file layout (numpy only; no torch).

A dataset directory is flat. Each conversation clip ``<clip>`` has two speakers, each with a
16 kHz mono WAV and a motion ``.npz``::

    <clip>_speaker1.wav  <clip>_speaker1.npz
    <clip>_speaker2.wav  <clip>_speaker2.npz

The ``.npz`` holds ``exp`` [T, 50] (FLAME expression) and ``pose`` [T, 6] = head rotation | jaw
(axis-angle, radians) at 25 fps. The model's 56-d order (exp | jaw | rotation) comes from
:func:`timar_ros.motion.from_dualtalk`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from timar_ros.errors import InputError
from timar_ros.files import save_arrays
from timar_ros.motion import from_dualtalk, to_dualtalk

__all__ = [
    "partner_stem",
    "speaker_stems",
    "clip_names",
    "load_motion",
    "save_motion",
    "DualTalkFileError",
]


def partner_stem(stem: str) -> str:
    """``<clip>_speaker1`` <-> ``<clip>_speaker2``."""
    if stem.endswith("_speaker1"):
        return stem[: -len("speaker1")] + "speaker2"
    if stem.endswith("_speaker2"):
        return stem[: -len("speaker2")] + "speaker1"
    raise ValueError(f"not a DualTalk speaker file stem (expected *_speaker1/2): {stem!r}")


class DualTalkFileError(InputError, ValueError):
    """A DualTalk file that cannot be used; the message names it and what is wrong."""


def speaker_stems(root: str | Path, require_partner: bool = True) -> list[str]:
    """Sorted stems ``<clip>_speaker{1,2}`` that have both a ``.wav`` and a ``.npz`` in ``root``.

    With ``require_partner`` only stems whose partner also has both files are listed.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset directory not found: {root}")
    wavs = {p.stem for p in root.glob("*_speaker[12].wav")}
    npzs = {p.stem for p in root.glob("*_speaker[12].npz")}
    complete = wavs & npzs
    if require_partner:
        complete = {s for s in complete if partner_stem(s) in complete}
    return sorted(complete)


def clip_names(root: str | Path) -> list[str]:
    """Sorted clip names that have both speakers complete."""
    return sorted({s[: -len("_speaker1")] for s in speaker_stems(root, True)})


def load_motion(path: str | Path) -> np.ndarray:
    """A DualTalk ``.npz`` -> model motion [T, 56] float32 (exp | jaw | rotation).

    Raises FileNotFoundError, or :class:`DualTalkFileError` naming the file and what is wrong
    (not an npz, missing or misshapen arrays, NaN/Inf)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"motion file not found: {path}")
    need = "a DualTalk .npz holds exp [T, 50] and pose [T, 6] (rotation | jaw) of finite values"
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = {"exp", "pose"} - set(d.files)
            if missing:
                raise DualTalkFileError(
                    f"{path}: missing arrays {sorted(missing)} (has {d.files}); {need}"
                )
            motion = from_dualtalk(d["exp"], d["pose"])
    except DualTalkFileError:
        raise
    except ValueError as exc:  # shapes (from_dualtalk), or a pickled array
        raise DualTalkFileError(f"{path}: {exc}; {need}") from None
    except Exception as exc:  # noqa: BLE001 - zip/format errors of damaged files
        raise DualTalkFileError(
            f"{path}: cannot read the .npz ({type(exc).__name__}: {exc}); {need}"
        ) from None
    if not np.all(np.isfinite(motion)):
        raise DualTalkFileError(f"{path}: non-finite motion values; {need}")
    return motion


def load_dualtalk_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The raw ``(exp [T,50], pose [T,6])`` arrays of a DualTalk ``.npz`` (float32)."""
    with np.load(Path(path), allow_pickle=False) as d:
        return np.asarray(d["exp"], np.float32), np.asarray(d["pose"], np.float32)


def save_motion(path: str | Path, motion: np.ndarray) -> Path:
    """Model motion [T, 56] -> DualTalk ``.npz`` (``exp``, ``pose`` = rotation | jaw)."""
    exp, pose = to_dualtalk(motion)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_arrays(path, exp=exp, pose=pose)
    return path
