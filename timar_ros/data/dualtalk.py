"""DualTalk-layout datasets: training windows, per-file test iteration, noised test copies.

Layout and keys: see :mod:`timar_ros.data.dualtalk_files`. Audio is read with soundfile and
resampled to 16 kHz (:mod:`timar_ros.data.audio`); motion is the model's 56-d vector at 25 fps.

Training windows (:class:`DualTalkWindows`): every speaker file ``A`` with partner ``B`` gives
one direction (user = B, agent = A), so each conversation is used in both directions. A
direction of T usable frames (the minimum over both motions and both audios) gives windows of S
turns of F frames starting every ``stride_turns`` turns (default S: ``floor(T / (S*F))``
non-overlapping windows, the reference's; a shorter stride lets windows longer than the
attention window still cover short files), the tail dropped; each
window holds its own slice of the data (the reference appended one shared dict per file, so all
windows of a file were copies of the last one; that bug is not reproduced here). Directions
shorter than one window are skipped and counted in ``skipped``.

Test iteration (:func:`iter_test`): each file once as the agent, its partner as the user,
truncated to whole turns: ``floor(min(user audio, agent audio, user motion) / F)`` turns. A
noised copy (:func:`make_noised_testset`) replaces the user's audio/motion and the agent's audio
while ground truth and the partner anchor stay clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from timar_ros.data import corruption as _noise
from timar_ros.data.audio import load_wav, write_wav
from timar_ros.data.audio_norm import AudioNormalizer
from timar_ros.data.dualtalk_files import load_motion, partner_stem, save_motion, speaker_stems
from timar_ros.files import write_json
from timar_ros.motion import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

__all__ = [
    "DualTalkWindows",
    "motion_stats",
    "TestItem",
    "iter_test",
    "NoiseSpec",
    "make_noised_testset",
    "motion_noise_scale",
]


class _Store:
    """Decoded arrays per speaker stem, cached in memory (the datasets here are small)."""

    def __init__(
        self, root: Path, cache: bool = True, audio_norm: str = "none", samples_per_turn: int = 0
    ):
        self.root = root
        self.cache = cache
        self.norm = AudioNormalizer(audio_norm)
        self.samples_per_turn = samples_per_turn
        self._audio: dict[str, np.ndarray] = {}
        self._motion: dict[str, np.ndarray] = {}

    def audio(self, stem: str) -> np.ndarray:
        if stem in self._audio:
            return self._audio[stem]
        x = load_wav(self.root / f"{stem}.wav", SAMPLE_RATE)
        if self.norm.mode != "none":  # turn by turn from the file's start, as a stream sees it
            x = self.norm.conversation(x, self.samples_per_turn)
        if self.cache:
            self._audio[stem] = x
        return x

    def motion(self, stem: str) -> np.ndarray:
        if stem in self._motion:
            return self._motion[stem]
        m = load_motion(self.root / f"{stem}.npz")
        if self.cache:
            self._motion[stem] = m
        return m


def _usable_frames(user_audio, agent_audio, user_motion, agent_motion=None) -> int:
    n = min(
        len(user_audio) // SAMPLES_PER_FRAME,
        len(agent_audio) // SAMPLES_PER_FRAME,
        len(user_motion),
    )
    if agent_motion is not None:
        n = min(n, len(agent_motion))
    return int(n)


try:  # the training Dataset is a torch Dataset; the rest of this module works without torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - torch is a declared dependency of training
    _TorchDataset = object


class DualTalkWindows(_TorchDataset):
    """Training windows of ``turns`` turns of ``frames_per_turn`` frames from a DualTalk dir.

    Each item is a dict of float32 torch tensors:
    ``user_audio`` [S*F*640], ``agent_audio`` [S*F*640], ``user_motion`` [S*F, 56],
    ``agent_motion`` [S*F, 56].

    Attributes:
        windows: list of ``(agent_stem, user_stem, start_frame)``, one per item, all distinct.
        skipped: directions shorter than one window (not used).
        frames: usable frames per direction (agent_stem -> T).
    """

    def __init__(
        self,
        root: str | Path,
        turns: int = 8,
        frames_per_turn: int = FPS,
        cache: bool = True,
        preload: bool = False,
        stride_turns: int | None = None,
        audio_norm: str = "none",
    ):
        if turns < 1 or frames_per_turn < 1:
            raise ValueError("turns and frames_per_turn must be >= 1")
        stride = int(turns if stride_turns is None else stride_turns)
        if not 1 <= stride <= turns:
            raise ValueError(f"stride_turns must be in 1..turns ({turns}), got {stride_turns}")
        self.stride_frames = stride * int(frames_per_turn)
        self.root = Path(root)
        self.turns = int(turns)
        self.frames_per_turn = int(frames_per_turn)
        self.window_frames = self.turns * self.frames_per_turn
        # windows start on turn boundaries, so a window's audio is normalised as the stream
        # that starts at the file's beginning would normalise it (TIMARConfig.audio_norm)
        self._store = _Store(
            self.root, cache or preload, audio_norm, self.frames_per_turn * SAMPLES_PER_FRAME
        )
        stems = speaker_stems(self.root, require_partner=True)
        if not stems:
            raise FileNotFoundError(f"no complete DualTalk speaker pairs in {self.root}")
        self.windows: list[tuple[str, str, int]] = []
        self.frames: dict[str, int] = {}
        self.skipped = 0
        for agent in stems:
            user = partner_stem(agent)
            n = self._direction_frames(agent, user)
            self.frames[agent] = n
            if n < self.window_frames:
                self.skipped += 1
                continue
            starts = range(0, n - self.window_frames + 1, self.stride_frames)
            self.windows.extend((agent, user, f0) for f0 in starts)
        if not preload and not cache:
            self._store._audio.clear()
            self._store._motion.clear()

    def _direction_frames(self, agent: str, user: str) -> int:
        s = self._store
        return _usable_frames(s.audio(user), s.audio(agent), s.motion(user), s.motion(agent))

    def __len__(self) -> int:
        return len(self.windows)

    def window_arrays(self, i: int) -> dict[str, np.ndarray]:
        """Item ``i`` as numpy arrays (float32)."""
        agent, user, f0 = self.windows[i]
        f1 = f0 + self.window_frames
        a0, a1 = f0 * SAMPLES_PER_FRAME, f1 * SAMPLES_PER_FRAME
        s = self._store
        return {
            "user_audio": np.asarray(s.audio(user)[a0:a1], np.float32),
            "agent_audio": np.asarray(s.audio(agent)[a0:a1], np.float32),
            "user_motion": np.asarray(s.motion(user)[f0:f1], np.float32),
            "agent_motion": np.asarray(s.motion(agent)[f0:f1], np.float32),
        }

    def __getitem__(self, i: int):
        import torch

        return {k: torch.from_numpy(v.copy()) for k, v in self.window_arrays(i).items()}

    def motion_moments(self) -> tuple[np.ndarray, np.ndarray, int]:
        """Per-dimension sum [56] and sum of squares [56] (float64) of the agent motion of
        every direction's usable frames (each frame once, however many windows hold it), and
        the frame count: what :func:`motion_stats` pools over folders."""
        s1 = np.zeros(56)
        s2 = np.zeros(56)
        n = 0
        for agent, T in self.frames.items():
            if T < self.window_frames:
                continue
            m = np.asarray(self._store.motion(agent)[:T], np.float64)
            s1 += m.sum(0)
            s2 += (m * m).sum(0)
            n += len(m)
        return s1, s2, n

    def summary(self) -> dict:
        return {
            "root": str(self.root),
            "turns": self.turns,
            "stride_turns": self.stride_frames // self.frames_per_turn,
            "frames_per_turn": self.frames_per_turn,
            "directions": len(self.frames),
            "windows": len(self.windows),
            "skipped_short": self.skipped,
        }


def motion_stats(datasets) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std [56] (float32) of the motion of ``datasets`` (:class:`DualTalkWindows`),
    pooled over all their frames: the scale of a ``normalize_motion`` model."""
    s1, s2, n = np.zeros(56), np.zeros(56), 0
    for ds in datasets:
        a, b, k = ds.motion_moments()
        s1, s2, n = s1 + a, s2 + b, n + k
    if n == 0:
        raise ValueError("no motion frames to compute statistics from")
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class TestItem:
    """One test file: ``name`` is the agent's stem (the prediction is saved as ``name.npy``)."""

    name: str
    user_audio: np.ndarray  # [turns*F*640] float32, 16 kHz (possibly noised)
    agent_audio: np.ndarray  # [turns*F*640] float32 (possibly noised)
    user_motion: np.ndarray  # [turns*F, 56] (possibly noised)
    agent_motion: np.ndarray  # [<=turns*F, 56] ground truth of the agent (clean)
    partner_motion: np.ndarray  # [<=turns*F, 56] the partner's clean GT: the metrics' anchor
    turns: int


def iter_test(
    root: str | Path,
    frames_per_turn: int = FPS,
    noised_dir: str | Path | None = None,
    names: list[str] | None = None,
) -> Iterator[TestItem]:
    """Each speaker file once as the agent, its partner as the user, in sorted order.

    With ``noised_dir`` (written by :func:`make_noised_testset`) the user audio/motion and the
    agent audio come from ``noised_dir/user/<user>.{wav,npz}`` and ``noised_dir/agent/<user>.wav``;
    ground truth and anchor stay those of ``root``. Files shorter than one turn are skipped.
    """
    root = Path(root)
    nd = Path(noised_dir) if noised_dir is not None else None
    stems = speaker_stems(root, require_partner=True)
    if names is not None:
        wanted = set(names)
        stems = [s for s in stems if s in wanted]
    for agent in stems:
        user = partner_stem(agent)
        if nd is None:
            ua, aa = load_wav(root / f"{user}.wav"), load_wav(root / f"{agent}.wav")
            um = load_motion(root / f"{user}.npz")
        else:
            ua = load_wav(nd / "user" / f"{user}.wav")
            aa = load_wav(nd / "agent" / f"{user}.wav")
            um = load_motion(nd / "user" / f"{user}.npz")
        gt = load_motion(root / f"{agent}.npz")
        anchor = load_motion(root / f"{user}.npz")
        turns = _usable_frames(ua, aa, um) // frames_per_turn
        if turns < 1:
            continue
        T = turns * frames_per_turn
        yield TestItem(
            name=agent,
            user_audio=ua[: T * SAMPLES_PER_FRAME],
            agent_audio=aa[: T * SAMPLES_PER_FRAME],
            user_motion=um[:T],
            agent_motion=gt[:T],
            partner_motion=anchor[:T],
            turns=turns,
        )


@dataclass
class NoiseSpec:
    """Burst corruptions of a noised test copy (probabilities are burst occupancies)."""

    user_speech_noise_prob: float = 0.0
    user_speech_noise_mean_s: float = 0.2
    user_speech_snr_db: float = 60.0
    user_speech_silence_prob: float = 0.0
    user_speech_silence_mean_s: float = 1.0
    agent_speech_noise_prob: float = 0.0
    agent_speech_noise_mean_s: float = 0.2
    agent_speech_snr_db: float = 60.0
    agent_speech_silence_prob: float = 0.0
    agent_speech_silence_mean_s: float = 0.05
    user_motion_drop_prob: float = 0.0
    user_motion_drop_mean_s: float = 0.2
    user_motion_noise_prob: float = 0.0
    user_motion_noise_mean_s: float = 0.2
    user_motion_noise_type: str = "laplace"
    # None: the mean per-dimension std of all motion in the test dir, rounded to 3 decimals
    # (the reference uses the mean of the 56 dataset-stat stds).
    user_motion_noise_scale: float | None = None
    extra: dict = field(default_factory=dict)

    def tag(self) -> str:
        parts = []
        if self.user_speech_noise_prob > 0:
            parts.append(f"uSpN{self.user_speech_noise_prob}_snr{self.user_speech_snr_db:g}")
        if self.user_speech_silence_prob > 0:
            parts.append(f"uSpSil{self.user_speech_silence_prob}")
        if self.agent_speech_noise_prob > 0:
            parts.append(f"aSpN{self.agent_speech_noise_prob}_snr{self.agent_speech_snr_db:g}")
        if self.agent_speech_silence_prob > 0:
            parts.append(f"aSpSil{self.agent_speech_silence_prob}")
        if self.user_motion_drop_prob > 0:
            parts.append(f"uMoD{self.user_motion_drop_prob}")
        if self.user_motion_noise_prob > 0:
            parts.append(
                f"uMoN{self.user_motion_noise_type[0].upper()}{self.user_motion_noise_prob}"
            )
        return "_".join(parts) or "clean"


def motion_noise_scale(root: str | Path) -> float:
    """Mean over the 56 dims of the per-dim std of all motion frames in ``root`` (3 decimals)."""
    ms = [load_motion(Path(root) / f"{s}.npz") for s in speaker_stems(root, require_partner=False)]
    if not ms:
        raise FileNotFoundError(f"no motion files in {root}")
    return round(float(np.mean(np.concatenate(ms).std(axis=0))), 3)


def _corrupt_speech(x, prob_n, mean_n, snr, prob_s, mean_s, rng):
    if prob_n > 0:
        x, _ = _noise.speech_noise_burst(x, prob_n, mean_n, snr, rng, SAMPLE_RATE)
    if prob_s > 0:
        x, _ = _noise.speech_silence_burst(x, prob_s, mean_s, rng, SAMPLE_RATE)
    return x


def make_noised_testset(
    test_dir: str | Path, out_dir: str | Path, spec: NoiseSpec, seed: int = 6666
) -> Path:
    """Write a noised copy of ``test_dir`` for :func:`iter_test(test_dir, noised_dir=out_dir)`.

    For every agent file A with partner (user) B, in sorted order with one seeded generator:
    ``out/user/B.wav`` (user speech, noised), ``out/user/B.npz`` (user motion: burst noise, then
    hold-last-frame drop), ``out/agent/B.wav`` (agent speech, noised). Also ``noise.json``.
    """
    test_dir, out_dir = Path(test_dir), Path(out_dir)
    stems = speaker_stems(test_dir, require_partner=True)
    if not stems:
        raise FileNotFoundError(f"no complete DualTalk speaker pairs in {test_dir}")
    scale = spec.user_motion_noise_scale
    if spec.user_motion_noise_prob > 0 and scale is None:
        scale = motion_noise_scale(test_dir)
    rng = np.random.default_rng(seed)
    (out_dir / "user").mkdir(parents=True, exist_ok=True)
    (out_dir / "agent").mkdir(parents=True, exist_ok=True)
    for agent in stems:
        user = partner_stem(agent)
        ua = _corrupt_speech(
            load_wav(test_dir / f"{user}.wav"),
            spec.user_speech_noise_prob,
            spec.user_speech_noise_mean_s,
            spec.user_speech_snr_db,
            spec.user_speech_silence_prob,
            spec.user_speech_silence_mean_s,
            rng,
        )
        aa = _corrupt_speech(
            load_wav(test_dir / f"{agent}.wav"),
            spec.agent_speech_noise_prob,
            spec.agent_speech_noise_mean_s,
            spec.agent_speech_snr_db,
            spec.agent_speech_silence_prob,
            spec.agent_speech_silence_mean_s,
            rng,
        )
        um = load_motion(test_dir / f"{user}.npz")
        drop = _noise.burst_mask(
            len(um), spec.user_motion_drop_prob, spec.user_motion_drop_mean_s * FPS, rng
        )
        if spec.user_motion_noise_prob > 0:
            um, _ = _noise.motion_noise_burst(
                um,
                spec.user_motion_noise_prob,
                spec.user_motion_noise_mean_s,
                spec.user_motion_noise_type,
                float(scale),
                rng,
                FPS,
            )
        um = _noise.hold_last_frame(um, drop)
        write_wav(out_dir / "user" / f"{user}.wav", ua, subtype="FLOAT")
        write_wav(out_dir / "agent" / f"{user}.wav", aa, subtype="FLOAT")
        save_motion(out_dir / "user" / f"{user}.npz", um)
    meta = {
        "source": str(test_dir),
        "seed": seed,
        "tag": spec.tag(),
        "spec": asdict(spec),
        "user_motion_noise_scale_used": scale,
        "files": len(stems),
    }
    write_json(out_dir / "noise.json", meta)
    return out_dir
