"""The partner's tracked motion (user/motion) buffered by time, cut per turn for the policy."""

from __future__ import annotations

import numpy as np

from timar_ros.motion import FPS, MOTION_DIM


class UserMotionBuffer:
    """Holds the partner's tracked motion frames by time, to cut them per turn.

    A turn gets the partner's motion only when at least ``min_coverage`` of its frames were
    tracked (the nearest tracked frame fills small holes); otherwise the policy sees no user motion
    for that turn (the null token, as in classifier-free guidance).

    Memory is bounded by time: frames more than ``keep_s`` older than the newest frame are dropped
    on every push, so a tracker that keeps publishing while the audio (and so :meth:`take`) has
    stopped cannot grow it. Frames kept in time order; an out-of-order block is merged in place.
    ``counters`` says what was dropped: ``nonfinite_frames`` (NaN/Inf, never stored) and
    ``unused_frames`` (evicted by the time bound before any turn took them).
    """

    def __init__(
        self, frames_per_turn: int, fps: int = FPS, min_coverage: float = 0.8, keep_s: float = 10.0
    ):
        self.frames_per_turn = int(frames_per_turn)
        self.fps = int(fps)
        self.min_coverage = float(min_coverage)
        self.keep_s = float(keep_s)
        self._times = np.zeros(0)
        self._frames = np.zeros((0, MOTION_DIM), np.float32)
        self._used = np.zeros(0, bool)
        self.counters = {"frames": 0, "nonfinite_frames": 0, "unused_frames": 0}

    def __len__(self) -> int:
        return int(self._times.size)

    def push(self, stamp_s: float, frame_period_s: float, frames: np.ndarray) -> None:
        """Add frames [N, 56]; frame i was captured at stamp_s + i * frame_period_s (s)."""
        frames = np.asarray(frames, np.float32).reshape(-1, MOTION_DIM)
        times = stamp_s + frame_period_s * np.arange(len(frames))
        ok = np.isfinite(frames).all(axis=1) & np.isfinite(times)
        self.counters["frames"] += len(frames)
        self.counters["nonfinite_frames"] += int((~ok).sum())
        times, frames = times[ok], frames[ok]
        if times.size == 0:
            return
        if times.size > 1 and np.any(np.diff(times) < 0):  # a block is normally in order
            order = np.argsort(times, kind="stable")
            times, frames = times[order], frames[order]
        if self._times.size == 0 or times[0] >= self._times[-1]:  # the usual case: append
            self._times = np.concatenate([self._times, times])
            self._frames = np.concatenate([self._frames, frames])
            self._used = np.concatenate([self._used, np.zeros(times.size, bool)])
        else:  # late or reordered: merge in place (after equal stamps, so the first copy wins ties)
            at = np.searchsorted(self._times, times, side="right")
            self._times = np.insert(self._times, at, times)
            self._frames = np.insert(self._frames, at, frames, axis=0)
            self._used = np.insert(self._used, at, False)
        self._evict(self._times[-1] - self.keep_s)

    def _evict(self, before_s: float) -> None:
        cut = int(np.searchsorted(self._times, before_s, side="left"))
        if cut:
            self.counters["unused_frames"] += int((~self._used[:cut]).sum())
            self._times, self._frames, self._used = (
                self._times[cut:],
                self._frames[cut:],
                self._used[cut:],
            )

    def take(self, start_s: float, heard: int | None = None) -> np.ndarray | None:
        """Motion [F, 56] for the turn starting at start_s (s); None if too little was tracked.

        ``heard``: a turn in progress (a tick): only its first ``heard`` frames must be tracked
        (the policy masks the others), and the frames stay available for the whole turn."""
        half = 0.5 / self.fps
        want = start_s + np.arange(self.frames_per_turn) / self.fps
        if heard is not None:
            return self._peek(want, half, int(heard))
        self._evict(start_s - self.keep_s)
        if self._times.size == 0:
            return None
        idx = (
            np.clip(np.searchsorted(self._times, want), 1, self._times.size - 1)
            if self._times.size > 1
            else np.zeros(len(want), int)
        )
        if self._times.size > 1:
            left = idx - 1
            closer_left = np.abs(self._times[left] - want) <= np.abs(self._times[idx] - want)
            idx = np.where(closer_left, left, idx)
        covered = np.abs(self._times[idx] - want) <= half
        if covered.mean() < self.min_coverage:
            return None
        self._used[idx[covered]] = True
        return self._frames[idx].copy()

    def _peek(self, want: np.ndarray, half: float, heard: int) -> np.ndarray | None:
        if self._times.size == 0 or heard <= 0:
            return None
        idx = np.clip(np.searchsorted(self._times, want), 0, self._times.size - 1)
        left = np.clip(idx - 1, 0, None)
        closer_left = np.abs(self._times[left] - want) <= np.abs(self._times[idx] - want)
        idx = np.where(closer_left, left, idx)
        covered = np.abs(self._times[idx] - want) <= half
        if covered[:heard].mean() < self.min_coverage:
            return None
        return self._frames[idx].copy()
