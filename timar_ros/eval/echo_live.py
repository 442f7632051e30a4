"""The robot's echo measured in a recording of the live pipeline (``timar demo --live-audio
--echo``, or a robot's bag with the same topics), no ROS needed.

The bag holds what the microphone captured (``user/audio_raw``: the partner and the robot's own
voice coming back), what echo_canceller made of it (``user/audio``), what the loudspeaker played
(``agent/audio``, stamped when heard) and the policy's ConversationState. With the partner's dry
voice (its WAV file, found in the microphone by cross-correlation) every figure has a ground
truth:

* ``echo_path``: the echo's delay after the reference stamps (GCC-PHAT) and its level against
  the reference, as the room and the sound server made them;
* ``erle_db``: echo return loss enhancement while only the robot speaks (after the first
  ``CONVERGE_S`` of its speech; ``erle_first_s_db``: during them);
* ``partner_kept``: the correlation of the output with the partner's dry voice and its STOI
  against it, while only the partner speaks and while both do (:func:`_kept`), against the raw
  microphone's;
* ``conditions``: the policy replayed offline on the same recording (as ``timar bag evaluate``
  does, :func:`~timar_ros.eval.bag_eval.run_offline`, the live run's seed and settings) with
  three partner signals: the canceller's output (``cancelled``), the raw microphone (``echo``:
  no cancellation) and the partner's dry voice on the microphone's clock (``no_echo``); per
  condition the speaking flags (the share of robot-alone turns called "partner speaking", of
  partner turns heard) and the model's reactions after the partner's pauses
  (:func:`~timar_ros.eval.reaction_latency.pause_reactions`, on the audio clock: display delay
  not included). ``live``: the flags the live policy published (ConversationState).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from timar_ros import topics
from timar_ros.motion import FPS

CONVERGE_S = 2.0  # the canceller's first seconds of robot speech, reported apart
TURN_S = 1.0  # the policy's turns (speaking flags per turn)


def _grid(records, t0_ns: int, n: int, rate: int) -> np.ndarray:
    """AudioChunk records (mono) laid on a grid of ``n`` samples at ``rate`` from ``t0_ns``,
    each at its own stamp (bags.concat_audio lays them from the first chunk's stamp instead,
    one rounding more, and takes one rate only)."""
    out = np.zeros(n, np.float32)
    for r in records:
        if r.sample_rate != rate:
            from timar_ros.data.audio import resample

            s = resample(r.samples, r.sample_rate, rate)
        else:
            s = r.samples
        i = int(round((r.stamp_ns - t0_ns) * rate / 1e9))
        lo, hi = max(i, 0), min(i + len(s), n)
        if hi > lo:
            out[lo:hi] = s[lo - i : hi - i]
    return out


def _active(x: np.ndarray, rate: int) -> np.ndarray:
    """[n] bool per sample: echo_rooms.active_frames (someone speaking)."""
    from timar_ros.eval.echo_rooms import ACTIVE_FRAME_S, active_frames

    on = active_frames(x, rate)
    k = int(ACTIVE_FRAME_S * rate)
    return np.concatenate([np.repeat(on, k), np.zeros(len(x) - len(on) * k, bool)])


def _aligned(x: np.ndarray, partner: np.ndarray, mask: np.ndarray, rate: int):
    """The 0.5-s segments mostly in ``mask``, each of ``x`` at its best lag within +-50 ms
    against the partner's dry voice (the live clocks re-anchor now and then, so one alignment
    for the whole recording would not hold to a sample) -> [(normalised correlation, x's
    segment aligned [k], the dry voice's [k])]."""
    from scipy.signal import correlate

    k, lag = int(0.5 * rate), int(0.05 * rate)
    got = []
    for i in range(lag, len(x) - k - lag, k):
        if mask[i : i + k].mean() < 0.8:
            continue
        p = partner[i : i + k].astype(np.float64)
        seg = x[i - lag : i + k + lag].astype(np.float64)
        c = correlate(seg, p, mode="valid")
        energy = np.convolve(seg * seg, np.ones(k), "valid")
        denom = np.sqrt(energy * np.dot(p, p))
        if denom.max() <= 0:
            continue
        r = np.abs(c) / np.maximum(denom, 1e-20)
        best = int(np.argmax(r))
        got.append((float(r[best]), seg[best : best + k], p))
    return got


def _kept(x: np.ndarray, partner: np.ndarray, mask: np.ndarray, rate: int) -> dict:
    """How much of the partner's voice ``x`` keeps where ``mask``: ``correlation``, the median
    over :func:`_aligned`'s segments of the normalised correlation with the dry voice, and
    ``stoi``, the intelligibility of the aligned segments laid end to end against the dry
    voice's (as `timar echo bench` measures it; None under 1 s of them)."""
    from timar_ros.eval.echo_rooms import stoi

    got = _aligned(x, partner, mask, rate)
    if not got:
        return {"correlation": None, "stoi": None}
    intelligible = None
    if len(got) * len(got[0][2]) >= rate:
        intelligible = round(
            stoi(np.concatenate([g[1] for g in got]), np.concatenate([g[2] for g in got]), rate),
            3,
        )
    return {
        "correlation": round(float(np.median([g[0] for g in got])), 3),
        "stoi": intelligible,
    }


def locate(signal: np.ndarray, recording: np.ndarray, rate: int) -> tuple[int, float]:
    """Where ``signal`` [N] starts in ``recording`` [M] (sample index, may be negative) and the
    GCC-PHAT peak's prominence."""
    from timar_ros.robot.echo_timing import estimate_delay

    max_s = (len(recording) + len(signal)) / rate
    delay, prominence = estimate_delay(signal, recording, rate, max_s=max_s)
    return int(round(delay * rate)), prominence


def echo_figures(
    bag: str | Path,
    partner_wav: str | Path,
    policy_overrides: dict,
    namespace: str = topics.DEFAULT_NAMESPACE,
    log=print,
) -> dict:
    """The figures of the module doc from a recorded bag; ``policy_overrides``: the live
    policy's parameters that differ from config/timar.yaml (checkpoint, backend, seed, tick_s,
    agent_audio_heard), for the offline replays."""
    from timar_ros import bags
    from timar_ros.data.audio import load_wav
    from timar_ros.robot.echo import echo_return_loss_enhancement
    from timar_ros.robot.echo_timing import estimate_delay

    name = lambda rel: topics.resolve(rel, namespace)  # noqa: E731
    with bags.BagReader(bag) as r:
        mic_recs = r.records(name(topics.MIC_AUDIO))
        out_recs = r.records(name(topics.USER_AUDIO))
        ref_recs = r.records(name(topics.AGENT_AUDIO))
        states = [
            bags.conversation_state_to_dict(m)
            for _, _, _, m in r.messages([name(topics.CONVERSATION_STATE)])
        ]
    for what, recs in (("microphone", mic_recs), ("cancelled", out_recs), ("reference", ref_recs)):
        if not recs:
            raise bags.BagError(f"{bag}: no {what} audio; the echo figures need all three")
    rate = mic_recs[0].sample_rate
    t0 = min(x.stamp_ns for x in mic_recs)
    end = max(x.stamp_ns + len(x.samples) * 1e9 / x.sample_rate for x in mic_recs)
    n = int((end - t0) * rate / 1e9)
    mic, out, ref = (_grid(recs, t0, n, rate) for recs in (mic_recs, out_recs, ref_recs))

    # the echo path: where the reference comes back in the microphone, and how loud
    delay_s, prominence = estimate_delay(ref, mic, rate, max_s=1.0)
    shift = int(round(delay_s * rate))
    echo_ref = np.roll(ref, shift)
    if shift > 0:
        echo_ref[:shift] = 0
    # the partner: its dry voice found in the microphone
    dry = load_wav(partner_wav, rate)
    at, p_prom = locate(dry, mic, rate)
    partner = np.zeros(n, np.float32)
    lo, hi = max(at, 0), min(at + len(dry), n)
    partner[lo:hi] = dry[lo - at : hi - at]

    robot_on, partner_on = _active(echo_ref, rate), _active(partner, rate)
    robot_alone, partner_alone = robot_on & ~partner_on, partner_on & ~robot_on
    both = robot_on & partner_on
    k = robot_alone & (np.cumsum(robot_on) > CONVERGE_S * rate)
    first = robot_alone & ~k
    gain_db = 10 * np.log10(
        (np.mean(mic[robot_alone] ** 2) + 1e-20) / (np.mean(echo_ref[robot_alone] ** 2) + 1e-20)
    )
    figures = {
        "echo_path": {
            "delay_s": round(float(delay_s), 4),
            "delay_prominence": round(float(prominence), 1),
            "level_db": round(float(gain_db), 1),
            "partner_found_prominence": round(float(p_prom), 1),
        },
        "seconds": {
            "robot_alone": round(float(robot_alone.sum() / rate), 1),
            "partner_alone": round(float(partner_alone.sum() / rate), 1),
            "both": round(float(both.sum() / rate), 1),
        },
        "erle_db": round(echo_return_loss_enhancement(mic, out, k), 1),
        "erle_first_s_db": round(echo_return_loss_enhancement(mic, out, first), 1),
        "partner_kept": {
            span: {
                "cancelled": _kept(out, partner, mask, rate),
                "echo": _kept(mic, partner, mask, rate),
            }
            for span, mask in (("partner_alone", partner_alone), ("both", both))
        },
    }
    truth = _TurnTruth(partner, echo_ref, rate, t0 * 1e-9)
    figures["live"] = truth.flags([(s["stamp_ns"] * 1e-9, s["user_speaking"]) for s in states])
    user_act, agent_act = _frames(partner_on, rate), _frames(robot_on, rate)
    conditions = {}
    for cond, signal in (("cancelled", None), ("echo", mic), ("no_echo", partner)):
        log(f"  echo figures: the policy replayed on the partner's audio {cond!r}")
        recs = None if signal is None else _on_chunks(signal, mic_recs, t0)
        conditions[cond] = _replay(
            bag, namespace, recs, policy_overrides, truth, user_act, agent_act
        )
    figures["conditions"] = conditions
    return figures


def _on_chunks(signal: np.ndarray, chunks, t0_ns: int) -> list:
    """``signal`` (on the grid from ``t0_ns``) cut into records with the stamps and lengths of
    ``chunks``: what the microphone node would have sent had it captured ``signal``."""
    out = []
    for x in chunks:
        i = int(round((x.stamp_ns - t0_ns) * x.sample_rate / 1e9))
        piece = np.zeros(len(x.samples), np.float32)
        got = signal[max(i, 0) : i + len(piece)]
        piece[max(-i, 0) : max(-i, 0) + len(got)] = got
        out.append(replace(x, samples=piece, channels=1))
    return out


def _frames(mask: np.ndarray, rate: int) -> np.ndarray:
    """A per-sample mask -> per 25-fps frame (any sample on)."""
    k = rate // FPS
    m = len(mask) // k
    return mask[: m * k].reshape(m, k).any(1)


class _TurnTruth:
    """Who really speaks in a turn: the partner's and the robot's voice (on the microphone's
    grid) read by the policy's own voice activity and threshold, as its flags are."""

    def __init__(self, partner: np.ndarray, robot: np.ndarray, rate: int, t0_s: float):
        from timar_ros.robot.conversation import PipelineConfig

        self.partner, self.robot, self.rate, self.t0 = partner, robot, rate, t0_s
        self.cfg = PipelineConfig.defaults()

    def _speaks(self, x: np.ndarray, i: int) -> bool:
        from timar_ros.robot.vad import VoiceActivity

        vad = VoiceActivity(sample_rate=self.rate, aggressiveness=self.cfg.vad_aggressiveness)
        seg = x[i : i + int(TURN_S * self.rate)]
        return vad.voiced_fraction(seg) >= self.cfg.speaking_threshold

    def flags(self, turns) -> dict:
        """``turns``: (start s, "partner speaking" flag) -> the share of robot-alone turns
        called "partner speaking" and of the partner's turns heard, with the turn counts."""
        robot_alone, partner_turns = [], []
        for start, flag in turns:
            i = int(round((start - self.t0) * self.rate))
            if i < 0 or i + int(TURN_S * self.rate) > len(self.partner):
                continue
            if self._speaks(self.partner, i):
                partner_turns.append(bool(flag))
            elif self._speaks(self.robot, i):
                robot_alone.append(bool(flag))
        share = lambda xs: round(float(np.mean(xs)), 3) if xs else None  # noqa: E731
        return {
            "robot_alone_turns": len(robot_alone),
            "robot_alone_called_partner": share(robot_alone),
            "partner_turns": len(partner_turns),
            "partner_turns_heard": share(partner_turns),
        }


def _replay(bag, namespace, user_recs, overrides, truth, user_act, agent_act) -> dict:
    """The policy offline on the bag with the partner's audio replaced by ``user_recs`` (None:
    the bag's user/audio, the canceller's output), received when the microphone's were."""
    from timar_ros.eval.bag_eval import policy_params, run_offline
    from timar_ros.eval.bag_records import read_inputs
    from timar_ros.eval.bag_report import assemble
    from timar_ros.eval.reaction_latency import pause_reactions

    inputs = read_inputs(bag, namespace)
    if user_recs is not None:
        from timar_ros import bags

        with bags.BagReader(bag) as r:
            times = [t for _, _, t, _ in r.messages([topics.resolve(topics.MIC_AUDIO, namespace)])]
        events = [e for e in inputs.events if e[1] != "user"]
        events += [(t, "user", x) for t, x in zip(times, user_recs)]
        inputs = replace(inputs, events=sorted(events, key=lambda e: e[0]))
    run = run_offline(inputs, policy_params(overrides), log=lambda *_: None)
    motion, _ = assemble(run.turns, truth.t0)
    n = min(len(motion), len(user_act), len(agent_act))
    return {
        **truth.flags([(t.start_s, t.user_speaking) for t in run.turns]),
        "reactions_after_pauses": pause_reactions(motion[:n], user_act[:n], agent_act[:n]),
    }
