"""DualTalk conversations -> rosbag2 bags: one bag per (conversation, agent direction), all
topics on one clock, so that bag evaluation can replay a real test set through the pipeline.

One reader per fact: WAV files through timar_ros.data.audio, DualTalk motion and file names
through timar_ros.data.dualtalk_files (their errors name the file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timar_ros import motion as M
from timar_ros import topics
from timar_ros.bags.io import BagWriter
from timar_ros.bags.records import BagError, audio_chunk_msg, head_motion_msg, to_ns
from timar_ros.data.audio import load_wav
from timar_ros.data.dualtalk_files import clip_names, load_motion


def dualtalk_clips(src: str | os.PathLike) -> list[str]:
    """Clip names in a flat DualTalk folder: those with all of <clip>_speaker{1,2}.{wav,npz}."""
    try:
        return clip_names(src)
    except FileNotFoundError:
        raise BagError(f"DualTalk folder not found: {src}") from None


@dataclass
class DualTalkBagOptions:
    """How `from-dualtalk` lays a conversation out in a bag (see convert_dualtalk)."""

    namespace: str = topics.DEFAULT_NAMESPACE
    storage: str = "mcap"
    chunk_s: float = 0.1  # AudioChunk length
    turn_s: float = 1.0  # HeadMotion block length (one TIMAR turn)
    start_s: float = 1.0  # stamp of the first sample / frame on the bag's clock
    overwrite: bool = False


def write_conversation_bag(
    out: str | os.PathLike,
    user_audio: np.ndarray,
    agent_audio: np.ndarray,
    user_motion: np.ndarray,
    agent_motion: np.ndarray,
    opts: DualTalkBagOptions | None = None,
    custom_data: dict[str, str] | None = None,
) -> Path:
    """Write one conversation (16 kHz audio, 25 fps motion [T, 56]) as a bag on one clock.

    Topics (under ``/<namespace>``): ``user/audio`` and ``agent/audio`` (AudioChunk, frame_id
    "user"/"agent", ``chunk_s`` each, the last one shorter), ``user/motion`` and
    ``ground_truth/head_motion`` (HeadMotion, ``turn_s`` blocks, the last one shorter, turn_index
    = block index). Sample i is at ``start_s + i / 16000``, frame j at ``start_s + j / 25``.
    """
    import shutil

    o = opts or DualTalkBagOptions()
    start = to_ns(o.start_s)
    chunk = max(1, int(round(o.chunk_s * M.SAMPLE_RATE)))
    block = max(1, int(round(o.turn_s * M.FPS)))
    period = 1.0 / M.FPS
    out = Path(out)
    BagWriter.check_target(out, o.overwrite)  # before any work
    # Written under a temporary name and moved into place: an interrupted conversion leaves no
    # bag that looks complete.
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write_bag(
            partial,
            user_audio,
            agent_audio,
            user_motion,
            agent_motion,
            o,
            custom_data,
            start,
            chunk,
            block,
            period,
        )
        BagWriter.check_target(out, o.overwrite)
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _write_bag(
    out,
    user_audio,
    agent_audio,
    user_motion,
    agent_motion,
    o,
    custom_data,
    start,
    chunk,
    block,
    period,
) -> None:
    with BagWriter(out, storage=o.storage, overwrite=False, custom_data=custom_data) as w:
        for rel, role, audio in (
            (topics.USER_AUDIO, "user", user_audio),
            (topics.AGENT_AUDIO, "agent", agent_audio),
        ):
            topic = topics.resolve(rel, o.namespace)
            for seq, i in enumerate(range(0, len(audio), chunk)):
                t = start + (i * 1_000_000_000) // M.SAMPLE_RATE
                w.write(
                    topic,
                    audio_chunk_msg(t, audio[i : i + chunk], M.SAMPLE_RATE, seq=seq, frame_id=role),
                )
        for rel, role, mot in (
            (topics.USER_MOTION, "user", user_motion),
            (topics.GROUND_TRUTH_MOTION, "agent", agent_motion),
        ):
            topic = topics.resolve(rel, o.namespace)
            for k, j in enumerate(range(0, len(mot), block)):
                t = start + (j * 1_000_000_000) // M.FPS
                w.write(
                    topic,
                    head_motion_msg(
                        t,
                        period,
                        mot[j : j + block],
                        turn_index=k,
                        model_id="dualtalk-ground-truth",
                        frame_id=role,
                    ),
                )


def convert_dualtalk(
    src: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    agents: Sequence[str] = ("speaker1", "speaker2"),
    clips: Sequence[str] | None = None,
    opts: DualTalkBagOptions | None = None,
    log=None,
) -> list[Path]:
    """Convert DualTalk conversations to bags: one bag per (conversation, agent direction).

    For clip C and agent speaker k the bag ``out_dir/C_speaker<k>`` holds speaker k as the
    agent (agent audio + ground-truth agent motion) and the other speaker as the user (user
    audio + user motion), i.e. the same naming as DualTalk's per-speaker prediction files
    (``C_speaker<k>.npz`` is the motion of speaker k). Returns the bag paths.
    """
    src, out_dir = Path(src), Path(out_dir)
    o = opts or DualTalkBagOptions()
    for a in agents:
        if a not in ("speaker1", "speaker2"):
            raise BagError(f"agent must be speaker1 or speaker2, got {a!r}")
    found = dualtalk_clips(src)
    if clips:
        missing = [c for c in clips if c not in found]
        if missing:
            raise BagError(
                f"{src}: clip(s) {missing} not found (need <clip>_speaker1/2 .wav and .npz)"
            )
        found = list(clips)
    if not found:
        raise BagError(
            f"{src}: no DualTalk conversations found (expected pairs of files "
            "<clip>_speaker1.wav/.npz and <clip>_speaker2.wav/.npz)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for clip in found:
        audio = {k: load_wav(src / f"{clip}_speaker{k}.wav", M.SAMPLE_RATE) for k in (1, 2)}
        motion = {k: load_motion(src / f"{clip}_speaker{k}.npz") for k in (1, 2)}
        for a in agents:
            ag = int(a[-1])
            us = 3 - ag
            custom = {
                "timar.source": "dualtalk",
                "timar.clip": clip,
                "timar.agent": a,
                "timar.user": f"speaker{us}",
                "timar.fps": str(M.FPS),
                "timar.sample_rate": str(M.SAMPLE_RATE),
                "timar.start_s": repr(float(o.start_s)),
            }
            path = write_conversation_bag(
                out_dir / f"{clip}_{a}", audio[us], audio[ag], motion[us], motion[ag], o, custom
            )
            written.append(path)
            if log:
                log(
                    f"wrote {path} (agent {a}: {len(motion[ag])} frames, "
                    f"{len(audio[ag]) / M.SAMPLE_RATE:.2f} s audio)"
                )
    return written
