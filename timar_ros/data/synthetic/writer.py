"""One conversation from a config and a seed (voices, timeline, audio, motion), and the DualTalk
layout writer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from timar_ros.data.synthetic.config import SyntheticConfig, VoiceConfig
from timar_ros.data.synthetic.rules import render_motion
from timar_ros.data.synthetic.signals import uniform
from timar_ros.data.synthetic.timeline import plan_conversation
from timar_ros.data.synthetic.voices import FliteVoice, ProceduralVoice, flite_available
from timar_ros.files import write_json
from timar_ros.motion import SAMPLE_RATE


@dataclass
class Conversation:
    audio: list  # [2] float32 [N] at 16 kHz, N = T * 640
    motion: list  # [2] float32 [T, 56]
    events: list  # listener reactions
    segments: list  # Segment
    meta: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # what render_motion knew (not written to disk)


def record(x: np.ndarray, ac, rng: np.random.Generator) -> np.ndarray:
    """A track as a microphone or a phone line would give it: a level change, and with
    ``degrade_prob`` a 300-3400 Hz band and background noise at ``noise_snr_db``."""
    from scipy.signal import butter, sosfilt

    y = np.asarray(x, np.float64) * 10 ** (uniform(rng, ac.gain_db) / 20)
    if rng.random() < ac.degrade_prob:
        y = sosfilt(butter(4, [300, 3400], btype="band", fs=SAMPLE_RATE, output="sos"), y)
        power = float(np.mean(y[np.abs(y) > 1e-3] ** 2)) if np.any(np.abs(y) > 1e-3) else 1e-6
        y = y + rng.standard_normal(len(y)) * np.sqrt(
            power / 10 ** (uniform(rng, ac.noise_snr_db) / 10)
        )
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _pick_voices(cfg: SyntheticConfig, rng) -> list[VoiceConfig]:
    if len(cfg.voices) < 1:
        raise ValueError("config needs at least one voice")
    if len(cfg.voices) == 1:
        return [cfg.voices[0], cfg.voices[0]]
    i, j = rng.choice(len(cfg.voices), 2, replace=False)
    return [cfg.voices[int(i)], cfg.voices[int(j)]]


def generate_conversation(
    cfg: SyntheticConfig, rng: np.random.Generator | int, duration_s: float | None = None
) -> Conversation:
    """One conversation: timeline, audio (procedural or flite) and motion for both speakers."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    voices = _pick_voices(cfg, rng)
    mode = cfg.tts.mode
    if mode not in ("off", "auto", "on"):
        raise ValueError(f"tts.mode must be off, auto or on, got {mode!r}")
    if mode == "on" and not flite_available():
        raise RuntimeError("tts.mode is 'on' but flite is not on PATH (apt-get install flite)")
    use_tts = mode != "off" and flite_available() and rng.random() < cfg.tts.prob
    if use_tts:
        sources = [FliteVoice(v, cfg.tts, rng) for v in voices]
    else:
        sources = [ProceduralVoice(v, cfg.audio, rng) for v in voices]
    tracks, segs, dur = plan_conversation(cfg, sources, rng, duration_s)
    motions, info = render_motion(tracks, cfg, rng)
    tracks = [record(x, cfg.audio, rng) for x in tracks]  # after the motion: from clean speech
    meta = {
        "config": cfg.name,
        "duration_s": len(tracks[0]) / SAMPLE_RATE,
        "tts": bool(use_tts),
        "voices": [v.tts_voice if use_tts else v.name for v in voices],
        "f0_hz": [None if use_tts else round(s.f0, 1) for s in sources],
        "turns": sum(1 for s in segs if s.kind == "turn"),
        "backchannels": sum(1 for s in segs if s.kind == "backchannel"),
        "reactions": len(info["events"]),
        "mood": info["mood"],
    }
    return Conversation(tracks, motions, info["events"], segs, meta, info)


def write_conversation(
    conv: Conversation, out_dir: str | Path, clip: str, meta: bool = True
) -> list[Path]:
    """Write ``<clip>_speaker{1,2}.wav/.npz`` (DualTalk layout) and ``<clip>.meta.json``."""
    from timar_ros.data.audio import write_wav
    from timar_ros.data.dualtalk_files import save_motion

    out_dir = Path(out_dir)
    paths = []
    for k in range(2):
        stem = f"{clip}_speaker{k + 1}"
        paths.append(write_wav(out_dir / f"{stem}.wav", conv.audio[k]))
        paths.append(save_motion(out_dir / f"{stem}.npz", conv.motion[k]))
    if meta:
        m = dict(conv.meta)
        m["segments"] = [dataclasses.asdict(s) for s in conv.segments]
        m["events"] = conv.events
        p = out_dir / f"{clip}.meta.json"
        write_json(p, _jsonable(m))
        paths.append(p)
    return paths


def _jsonable(x: Any):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float):
        return round(x, 4)
    return x


def generate_dataset(
    out_dir: str | Path,
    cfg: SyntheticConfig,
    conversations: int,
    seed: int = 0,
    prefix: str | None = None,
    progress: bool = False,
) -> dict:
    """Write ``conversations`` conversations; conversation i uses ``default_rng([seed, i])``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = prefix or f"syn{seed}"
    it = range(conversations)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="synth", unit="conv")
    stats = {"conversations": 0, "seconds": 0.0, "tts": 0, "reactions": 0}
    for i in it:
        conv = generate_conversation(cfg, np.random.default_rng([seed, i]))
        write_conversation(conv, out_dir, f"{prefix}_{i:05d}")
        stats["conversations"] += 1
        stats["seconds"] += conv.meta["duration_s"]
        stats["tts"] += int(conv.meta["tts"])
        stats["reactions"] += conv.meta["reactions"]
    write_json(
        out_dir / "synthetic_config.json",
        {"seed": seed, "conversations": conversations, "config": cfg.to_dict()},
    )
    return stats
