"""The backend-independent StreamingPolicy interface (imports only numpy).

``StreamingPolicy.from_checkpoint(path, backend=...)`` dispatches to a backend class registered in
:data:`BACKENDS` (module imported lazily: the torch backend imports torch, the onnx backend only
numpy + onnxruntime).
"""

from __future__ import annotations

import importlib
import os

import numpy as np

from ..data.audio_norm import AudioNormalizer
from ..motion import FPS, MOTION_DIM
from .sampling_noise import hold_vector, policy_noise

# backend name -> (module, class). Modules are imported only when chosen.
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("timar_ros.runtime.torch_policy", "TorchStreamingPolicy"),
    "onnx": ("timar_ros.runtime.onnx_policy", "OnnxStreamingPolicy"),
}


class StreamingPolicy:
    """Per-turn TIMAR inference.

    Attributes:
        frames_per_turn: F, motion frames per turn (25 fps).
        samples_per_turn: 16 kHz audio samples per turn (F * 640).
        history_turns: how many past turns the last :meth:`step` attended directly (the crop's
            length, or min(turns so far, W-1) when streaming; the receptive field of a streamed
            turn is ``num_blocks`` times as deep).
        turn_index: turns processed since :meth:`reset`.
        model_id: checkpoint folder name + short hash of its weights.
    """

    backend = "abstract"
    frames_per_turn: int
    samples_per_turn: int
    model_id: str = ""
    history_turns: int = 0
    turn_index: int = 0

    @classmethod
    def from_checkpoint(
        cls,
        path,
        backend: str = "torch",
        device: str = "cpu",
        seed: int = 0,
        kv_cache: bool = True,
        **options,
    ) -> StreamingPolicy:
        """Load a checkpoint folder (model.safetensors + config.json) for ``backend``.

        Options (all backends that support them):

        * ``context_turns``: None (default) streams with the full history: every layer attends
          the last window_turns - 1 turns of its input, so a turn can depend on up to
          ``num_blocks * (window_turns - 1)`` past turns. An int n in 0..window_turns - 1 crops
          the history as the reference's progressive-context protocol does: the policy sees
          only the inputs of the last n turns and the current one (n = 0: no history); each
          turn then encodes n + 1 turns, so it costs about n + 1 times a streamed turn.
        * ``noise_tau_s``: time constant (s) of the sampling noise's correlation over frames
          (default: the checkpoint's ``noise_tau_s``; 0 = independent per frame, the
          reference's); ``noise_hold_exp``: share of the expression noise held for the whole
          conversation (default: the checkpoint's). See :mod:`timar_ros.runtime.sampling_noise`.
        * ``audio_norm``: how each stream's waveform is normalised before the speech encoder
          (default: the checkpoint's): "none", "chunk", "running" (causal, for live audio) or
          "file" (the whole file's statistics, as the reference; offline only). See
          :mod:`timar_ros.data.audio_norm`.
        * ``noise``: None (draws from ``seed``), "zeros" (every Gaussian draw of the sampler is
          0: with ``audio_norm="none"`` the output can be compared bit for bit with another
          implementation), or a callable ``(turn, frames, steps) -> (x_T [frames, 56],
          step_noise [steps, frames, 56])``.
        * ``guidance_scale``, ``temperature``, ``num_sampling_steps``, ``threads`` (intra-op
          threads of the backend).
        * ``guidance_every``: with guidance, streaming inside the turn runs the unconditional
          backbone pass at a turn's first tick and every k-th after it, the ticks between reuse
          its features (default: the checkpoint's ``guidance_every``; 1 = every tick).
        * ``show_prefix``: streaming inside the turn (:meth:`tick`) shows the model the frames
          already emitted; False masks them, as the 1-s mode masks every frame (default: the
          checkpoint's ``show_prefix``).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
        module, name = BACKENDS[backend]
        # OpenMP threads that spin while waiting make torch 5-10x slower (p99 ~2 s per turn
        # measured) when other processes share a small CPU, as on a robot; passive waiting
        # costs nothing when the CPU is free. Only effective before torch is first imported;
        # an explicit user setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            impl = getattr(importlib.import_module(module), name)
        except ImportError as exc:
            raise ImportError(f"backend {backend!r} is not available: {exc}") from exc
        return impl.from_checkpoint(path, device=device, seed=seed, kv_cache=kv_cache, **options)

    # -- audio normalisation (one normaliser per stream; reset with the stream)
    def _init_audio_norm(self, config, audio_norm) -> None:
        mode = config.audio_norm if audio_norm is None else str(audio_norm)
        self.audio_norm = mode
        self._audio_norms = (AudioNormalizer(mode), AudioNormalizer(mode))

    def _reset_audio_norm(self) -> None:
        for n in self._audio_norms:
            n.reset()

    def fit_file_audio(self, user_audio, agent_audio) -> None:
        """For ``audio_norm="file"``: the whole user and agent files [samples] (16 kHz), whose
        statistics normalise every turn until the next :meth:`reset`."""
        self._audio_norms[0].fit(user_audio)
        self._audio_norms[1].fit(agent_audio)

    def normalize_audio(self, user_audio: np.ndarray, agent_audio: np.ndarray):
        """One turn's checked audio -> normalised as ``audio_norm`` says (advances the running
        statistics)."""
        return self._audio_norms[0](user_audio), self._audio_norms[1](agent_audio)

    # -- interface
    def reset(self) -> None:
        raise NotImplementedError

    def step(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        raise NotImplementedError

    # -- streaming inside the turn (runtime/ticks.py)
    shown: int = 0  # frames of the turn in progress already emitted by tick()
    # tick() shows the frames already emitted to the model (False: every agent frame masked,
    # as in the 1-s mode; an ablation)
    show_prefix: bool = True

    def _reset_turn(self) -> None:
        self.shown = 0
        self._prefix = np.zeros((self.frames_per_turn, MOTION_DIM), np.float32)
        self._turn_noise = None
        self._ticks = 0  # ticks of the turn in progress
        self._uncond_h = None  # the last unconditional pass's features of the turn, [F, d]

    def _uncond_due(self) -> bool:
        """Whether this tick runs the unconditional pass (``guidance_every``), else reuses
        ``_uncond_h``."""
        return self._uncond_h is None or self._ticks % self.guidance_every == 0

    def tick(self, user_audio, agent_audio, heard, frames: int, user_motion=None) -> np.ndarray:
        """The next ``frames`` agent frames of the turn in progress.

        Args:
            user_audio, agent_audio: [samples_per_turn] float32 16 kHz, the turn so far (the
                samples after the heard frames are ignored; pass zeros there).
            heard: (user frames, agent frames) of the turn heard so far, each 0..F (the robot's
                own speech may be known further ahead than the partner's).
            frames: how many frames to emit, 1..F - :attr:`shown`.
            user_motion: [F, 56] or None (only the heard frames are used).
        Returns: [frames, 56] float32, frames ``shown .. shown + frames - 1`` of the turn, sampled
        with the frames already emitted as the visible prefix and the same noise the 1-s mode
        draws for them. The history is untouched until :meth:`end_turn`.
        """
        ua, aa, um = self.check_turn(user_audio, agent_audio, user_motion)
        F, spf = self.frames_per_turn, self.samples_per_turn // self.frames_per_turn
        try:
            uk, ak = (int(h) for h in heard)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"heard must be (user frames, agent frames), got {heard!r}") from exc
        if not (0 <= uk <= F and 0 <= ak <= F):
            raise ValueError(f"heard={heard!r}: each must be 0..{F} frames of the turn")
        frames = int(frames)
        if not 1 <= frames <= F - self.shown:
            raise ValueError(
                f"frames={frames}: {self.shown} of the turn's {F} frames are shown, so 1.."
                f"{F - self.shown} can follow"
                + ("; call end_turn() to start the next turn" if self.shown == F else "")
            )
        self._check_tick_support()
        un, an = np.zeros_like(ua), np.zeros_like(aa)
        un[: uk * spf] = self._audio_norms[0].peek(ua[: uk * spf])
        an[: ak * spf] = self._audio_norms[1].peek(aa[: ak * spf])
        if self._turn_noise is None:
            self._turn_noise = self._draw_turn_noise()
        x_T, sn = self._turn_noise
        sl = slice(self.shown, self.shown + frames)
        known = np.array([[uk, ak, self.shown if self.show_prefix else 0]], dtype=np.int64)
        out = self._tick(un, an, um, known, sl, x_T[sl], sn[:, sl])
        self._prefix[sl] = out
        self.shown += frames
        self._ticks += 1
        return out

    def end_turn(self, user_audio, agent_audio, user_motion=None) -> None:
        """Commit the completed turn (every frame emitted by :meth:`tick`) to the history with
        its whole audio [samples_per_turn]: the same keys/values :meth:`step` would keep."""
        if self.shown != self.frames_per_turn:
            raise ValueError(
                f"end_turn: {self.shown} of the turn's {self.frames_per_turn} frames are shown; "
                "tick() the rest first"
            )
        ua, aa, um = self.check_turn(user_audio, agent_audio, user_motion)
        ua, aa = self.normalize_audio(ua, aa)
        self._commit(ua, aa, um)
        self._reset_turn()

    def run_ticks(self, user_audio, agent_audio, schedule, user_motion=None) -> np.ndarray:
        """A whole conversation (N turns) streamed tick by tick as ``schedule``
        (:class:`~timar_ros.runtime.ticks.TickSchedule`) says, in a fresh stream: the partner's
        and the robot's audio heard up to each tick's ``heard`` frame -> [N*F, 56]. What the
        live node runs, offline. Does not disturb this policy's own stream."""
        ua, aa, um, n = self.check_conversation(user_audio, agent_audio, user_motion)
        if schedule.frames_per_turn != self.frames_per_turn:
            raise ValueError(
                f"schedule of {schedule.frames_per_turn}-frame turns for a model of "
                f"{self.frames_per_turn}"
            )
        ticks = list(schedule.ticks())

        def turn(u, a, m):
            out = [self.tick(u, a, (tk.heard, tk.heard), tk.frames, m) for tk in ticks]
            self.end_turn(u, a, m)
            return np.concatenate(out, 0)

        return self._fresh_stream(ua, aa, um, n, turn)

    def _fresh_stream(self, ua, aa, um, n: int, turn) -> np.ndarray:
        """``turn(user_audio, agent_audio, user_motion)`` -> [F, 56] over the n turns of a
        checked conversation in a fresh stream; this policy's own stream is left as it was."""
        saved = self._save_all()
        try:
            self.reset()
            if self.audio_norm == "file" and n:
                self.fit_file_audio(ua, aa)
            spt, F = self.samples_per_turn, self.frames_per_turn
            out = [
                turn(
                    ua[t * spt : (t + 1) * spt],
                    aa[t * spt : (t + 1) * spt],
                    None if um is None else um[t * F : (t + 1) * F],
                )
                for t in range(n)
            ]
        finally:
            self._restore_all(saved)
        return np.concatenate(out, 0) if out else np.zeros((0, MOTION_DIM), np.float32)

    def _save_all(self):
        return (
            self._save_state(),
            [a.state() for a in self._audio_norms],
            (self.shown, self._prefix.copy(), self._turn_noise, self._ticks, self._uncond_h),
        )

    def _restore_all(self, saved) -> None:
        self._restore_state(saved[0])
        for a, st in zip(self._audio_norms, saved[1]):
            a.load_state(st)
        self.shown, self._prefix, self._turn_noise, self._ticks, self._uncond_h = saved[2]

    def _check_tick_support(self) -> None:
        """Raise ValueError when this policy's configuration cannot stream inside the turn."""

    def _check_no_turn_in_progress(self) -> None:
        if self.shown:
            raise ValueError(
                f"step(): a turn is in progress ({self.shown} frames emitted by tick()); finish it "
                "with tick() and end_turn(), or reset()"
            )

    def _draw_turn_noise(self):
        """(x_T [F, 56], step_noise [steps, F, 56]) numpy of the turn in progress, as every
        backend's step draws them (the temperature is applied where the step applies it)."""
        return policy_noise(
            self.noise,
            self.seed,
            1,
            self.frames_per_turn,
            self.num_sampling_steps,
            self.turn_index,
            tau_frames=self.noise_tau_s * FPS,
            hold=self._hold,
        )

    def _tick(self, user_audio, agent_audio, user_motion, known, frames: slice, x_T, step_noise):
        raise NotImplementedError

    def _commit(self, user_audio, agent_audio, user_motion) -> None:
        raise NotImplementedError

    def run_offline(self, user_audio, agent_audio, user_motion=None) -> np.ndarray:
        """Default: a fresh stream, turn by turn (backends may override with a parallel path).
        Does not disturb the state of this policy's own stream."""
        ua, aa, um, n = self.check_conversation(user_audio, agent_audio, user_motion)
        return self._fresh_stream(ua, aa, um, n, self.step)

    def _save_state(self):
        raise NotImplementedError

    def _restore_state(self, state) -> None:
        raise NotImplementedError

    # -- input checks shared by backends
    def check_turn(self, user_audio, agent_audio, user_motion=None):
        spt, F = self.samples_per_turn, self.frames_per_turn
        ua = _array("user_audio", user_audio, (spt,))
        aa = _array("agent_audio", agent_audio, (spt,))
        um = None if user_motion is None else _array("user_motion", user_motion, (F, MOTION_DIM))
        return ua, aa, um

    def check_conversation(self, user_audio, agent_audio, user_motion=None):
        spt, F = self.samples_per_turn, self.frames_per_turn
        ua = np.asarray(user_audio, dtype=np.float32).reshape(-1)
        n = len(ua) // spt
        if len(ua) != n * spt:
            raise ValueError(
                f"user_audio has {len(ua)} samples, not a whole number of turns of "
                f"{spt}; trim or pad it"
            )
        ua = _array("user_audio", ua, (n * spt,))
        aa = _array("agent_audio", agent_audio, (n * spt,))
        um = (
            None if user_motion is None else _array("user_motion", user_motion, (n * F, MOTION_DIM))
        )
        return ua, aa, um, n


def check_context_turns(context_turns, window_turns: int) -> int | None:
    """None (stream the full history) or the crop n in 0..window_turns - 1; else ValueError."""
    if context_turns is None:
        return None
    n = int(context_turns)
    if not 0 <= n <= window_turns - 1:
        raise ValueError(
            f"context_turns must be in 0..{window_turns - 1} (window_turns - 1) or None (the "
            f"full streamed history), got {context_turns}"
        )
    return n


def noise_options(config, noise_tau_s, noise_hold_exp):
    """The sampling-noise options of a policy (None: the checkpoint's) -> (tau_s, hold_exp,
    hold [56] or None); ValueError on a negative time constant or a share outside [0, 1)."""
    tau = config.noise_tau_s if noise_tau_s is None else float(noise_tau_s)
    if not tau >= 0:
        raise ValueError(f"noise_tau_s must be >= 0 seconds, got {noise_tau_s}")
    hold_exp = config.noise_hold_exp if noise_hold_exp is None else float(noise_hold_exp)
    return tau, hold_exp, hold_vector(hold_exp)


def check_guidance_every(config, guidance_every) -> int:
    """The policy's ``guidance_every`` (None: the checkpoint's); ValueError below 1."""
    k = config.guidance_every if guidance_every is None else guidance_every
    if int(k) != k or int(k) < 1:
        raise ValueError(
            f"guidance_every must be a whole number of ticks >= 1 (1 = the unconditional pass "
            f"at every tick), got {guidance_every}"
        )
    return int(k)


def _array(name: str, x, shape: tuple) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.shape != shape:
        raise ValueError(
            f"{name} must have shape {shape} (float32, 16 kHz mono for audio; "
            f"exp|jaw|rotation for motion), got {a.shape}"
        )
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return a
