"""``timar echo calibrate``: the robot's echo path measured on the robot itself (no ROS).

A test signal (the bundled robot voice, speech being what the canceller meets) is played on the
loudspeaker's sound device while the microphone's device records, each stream stamped as the
nodes stamp it (voice_player: when a sample is heard, the device's DAC time or now + its output
latency; microphone: now - block - its input latency), so the delay found is the one
echo_canceller will see between the reference's stamps and the echo. :func:`measure` turns the
two signals into the figures: the echo's delay and level, the noise floor, clipping, and the
ERLE the canceller reaches on this recording with the reference_delay_s to set (0 when the echo
is within AEC3's reach). With a partner's voice recorded after it (:func:`record`, someone
speaking from where a person talks with the robot), :func:`partner_figures` says how far the
echo is above that voice at the microphone, which decides whether a partner talking over the
robot is heard (:data:`DOUBLE_TALK_HEARD`).
"""

from __future__ import annotations

import threading
import time

import numpy as np

from timar_ros.robot.echo import AEC3_REACH_S
from timar_ros.robot.echo_timing import DelayMonitor

LEVEL_DBFS = -20.0  # the test signal's RMS while it speaks: voice_player's usual level
SILENCE_S = 1.0  # before the signal (the noise floor) and after it (the room's tail)
# the share of double-talk turns in which AEC3 hears the partner, against the echo's level over
# the partner's voice at the microphone (dB): the medians of 12 simulated rooms at each echo
# gain of `timar echo bench --echo-gain-db 0 / -10 / -20 / -30` (2026-12-07). Ascending
HEARD_OVER_DB = (-5.3, 4.7, 14.7, 24.7)
DOUBLE_TALK_HEARD = (0.63, 0.23, 0.03, 0.0)
VOICE_OVER_NOISE_DB = 10.0  # a recorded voice this far above the noise floor counts as heard


def calibration_signal(seconds: float, rate: int, level_dbfs: float = LEVEL_DBFS) -> np.ndarray:
    """[SILENCE_S + seconds + SILENCE_S] float32: silence, the bundled robot voice (its
    silences shortened) at ``level_dbfs`` RMS, silence."""
    from timar_ros.eval.echo_rooms import demo_voices

    robot, _ = demo_voices(rate)
    voice = np.resize(robot, int(seconds * rate))
    voice *= 10 ** (level_dbfs / 20) / (np.sqrt(np.mean(voice**2)) + 1e-12)
    pad = np.zeros(int(SILENCE_S * rate), np.float32)
    return np.concatenate([pad, voice.astype(np.float32), pad])


def _dbfs(x: np.ndarray) -> float:
    """RMS of ``x`` [n] in dB re full scale."""
    return float(10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-20))


def measure(recorded: np.ndarray, played: np.ndarray, rate: int) -> dict:
    """The figures from the microphone's recording and the played signal, both [n] on one grid
    (sample i = the same instant by the nodes' stamps): ``delay_s`` (the echo after the
    reference's stamps), ``delay_prominence`` (below DelayMonitor.MIN_PROMINENCE: no echo
    found), ``echo_level_db`` (the echo against the played signal), ``echo_dbfs`` (its RMS at
    the microphone while the robot speaks), ``noise_floor_dbfs``,
    ``clipped`` (samples at full scale), ``reference_delay_s`` (what to set), ``erle_db`` (AEC3
    on this recording with that setting, after its first 2 s) and ``advice``."""
    from timar_ros.eval.echo_rooms import feed
    from timar_ros.robot.echo import EchoCanceller, EchoConfig, echo_return_loss_enhancement
    from timar_ros.robot.echo_timing import estimate_delay

    delay, prominence = estimate_delay(played, recorded, rate, max_s=1.5)
    found = prominence >= DelayMonitor.MIN_PROMINENCE
    on = np.convolve(played**2, np.ones(160) / 160, "same") > 1e-5
    shift = int(round(delay * rate)) if found else 0
    echo_on = np.roll(on, shift)
    quiet = recorded[: int(0.8 * SILENCE_S * rate)]
    echo_db = _dbfs(recorded[echo_on])  # the echo's RMS while the robot speaks
    in_reach = AEC3_REACH_S[0] <= delay <= AEC3_REACH_S[1]
    ref_delay = 0.0 if (not found or in_reach) else round(float(delay), 3)
    figures = {
        "delay_s": round(float(delay), 4) if found else None,
        "delay_prominence": round(float(prominence), 1),
        "echo_found": bool(found),
        "echo_level_db": None if not found else round(echo_db - _dbfs(played[on]), 1),
        "echo_dbfs": None if not found else round(echo_db, 1),
        "noise_floor_dbfs": round(_dbfs(quiet), 1),
        "clipped": int(np.sum(np.abs(recorded) >= 0.999)),
        "reference_delay_s": ref_delay,
    }
    if not found:
        figures["erle_db"] = None
        figures["advice"] = _advice(figures, in_reach)
        return figures
    ec = EchoCanceller(rate, EchoConfig(mode="aec", reference_delay_s=ref_delay, delay_check_s=0))
    out, _, _ = feed(ec, recorded.astype(np.float32), played.astype(np.float32), rate)
    t = np.arange(len(recorded)) / rate
    settled = echo_on & (t >= SILENCE_S + 2.0)
    figures["erle_db"] = round(echo_return_loss_enhancement(recorded, out, settled), 1)
    figures["advice"] = _advice(figures, in_reach)
    return figures


def _advice(f: dict, in_reach: bool) -> list[str]:
    out = []
    if not f["echo_found"]:
        out.append(
            "no echo found: the microphone does not hear the loudspeaker (muted, another "
            "device, or hardware echo cancellation: then use echo_mode:=none)"
        )
        return out
    if f["clipped"]:
        out.append(
            f"{f['clipped']} recorded samples at full scale: lower the loudspeaker's volume or "
            "the microphone's gain (a clipped echo cannot be cancelled)"
        )
    if not in_reach:
        out.append(
            f"the echo comes {f['delay_s'] * 1e3:+.0f} ms after the reference's stamps, outside "
            f"AEC3's reach: set echo_canceller's reference_delay_s to {f['reference_delay_s']}"
        )
    if f["erle_db"] < 20:
        out.append(
            f"ERLE {f['erle_db']} dB: weak; check that the reference is what the loudspeaker "
            "plays (no volume control or effect between them), or use echo_mode:=half_duplex"
        )
    if not out:
        out.append("the echo path is fine for echo_mode:=aec with the defaults")
    return out


def partner_figures(voice: np.ndarray, rate: int, echo: dict) -> dict:
    """A partner's voice recorded alone by the microphone [n] and :func:`measure`'s figures ->
    ``partner_dbfs`` (its RMS while speaking), ``echo_over_partner_db`` (the robot's echo at the
    test signal's level over it), ``double_talk_heard`` (the share of turns of a partner
    talking over the robot that AEC3 heard in the simulated rooms at that margin, interpolated
    in :data:`DOUBLE_TALK_HEARD`) and ``advice``."""
    from timar_ros.eval.echo_rooms import voiced

    speech = voiced(voice, rate)
    level = _dbfs(speech)
    heard = speech.size > 0 and level >= echo["noise_floor_dbfs"] + VOICE_OVER_NOISE_DB
    f = {"partner_dbfs": round(level, 1), "voice_heard": bool(heard)}
    if not heard:
        f["advice"] = [
            f"no voice over the noise floor ({echo['noise_floor_dbfs']} dBFS): speak during the "
            "recording, closer or louder, or check the microphone"
        ]
        return f
    if echo.get("echo_dbfs") is None:
        f["advice"] = ["no echo found: a partner talking over the robot is heard as it is"]
        return f
    over = echo["echo_dbfs"] - level
    share = float(np.interp(over, HEARD_OVER_DB, DOUBLE_TALK_HEARD))
    f["echo_over_partner_db"] = round(over, 1)
    f["double_talk_heard"] = round(share, 2)
    table = ", ".join(
        f"{p:.0%} at {d:+.0f} dB" for d, p in zip(HEARD_OVER_DB[::-1], DOUBLE_TALK_HEARD[::-1])
    )
    advice = [
        f"the robot's echo is {over:+.1f} dB over this voice at the microphone: in the simulated "
        f"rooms AEC3 heard a partner talking over the robot in about {share:.0%} of turns at "
        f"that margin ({table})"
    ]
    if share < 0.5:
        advice.append(
            "for a partner to be heard over the robot: lower the loudspeaker's volume, move the "
            "microphone away from it, or use a directional microphone (or array) pointed away "
            "from it; echo cancellation still keeps the robot from hearing itself"
        )
    f["advice"] = advice
    return f


def record(seconds: float, rate: int, input_device=None) -> np.ndarray:
    """``seconds`` of the microphone's device (sounddevice name or index; None: the default)
    -> [n] float32 mono."""
    from timar_ros.nodes.microphone import import_sounddevice

    sd = import_sounddevice()
    x = sd.rec(
        int(seconds * rate), samplerate=rate, channels=1, dtype="float32", device=input_device
    )
    sd.wait()
    return x[:, 0].copy()


def play_and_record(
    signal: np.ndarray,
    rate: int,
    output_device=None,
    input_device=None,
    input_chunk_s: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Play ``signal`` [n] on ``output_device`` while ``input_device`` records (sounddevice
    names or indices; None: the defaults) in blocks of ``input_chunk_s`` (the microphone node's
    chunk_s: a device's reported input latency depends on it) -> (recorded, played) on one
    grid, each stream placed by its stamps taken as the nodes take them."""
    from timar_ros.nodes.microphone import import_sounddevice
    from timar_ros.robot.capture_clock import capture_reading, output_ahead_s

    sd = import_sounddevice()
    block = int(round(input_chunk_s * rate))
    out_block = rate // 100  # voice_player's
    lock = threading.Lock()
    rec_blocks, rec_stamps, out_stamps = [], [], []
    pos = [0]

    def on_input(indata, frames, time_info, status):
        stamp = capture_reading(time.time(), frames, rate, istream.latency)
        with lock:
            rec_blocks.append(indata[:, 0].copy())
            rec_stamps.append(stamp)

    def on_output(outdata, frames, time_info, status):
        i = pos[0]
        chunk = signal[i : i + frames]
        outdata[:, 0] = 0.0
        outdata[: len(chunk), 0] = chunk
        heard = time.time() + output_ahead_s(time_info, ostream.latency)
        with lock:
            out_stamps.append((i, heard))
        pos[0] = i + frames

    mono = dict(samplerate=rate, channels=1, dtype="float32")
    istream = sd.InputStream(device=input_device, blocksize=block, callback=on_input, **mono)
    ostream = sd.OutputStream(device=output_device, blocksize=out_block, callback=on_output, **mono)
    with istream:
        time.sleep(0.3)  # the input runs before the signal starts
        with ostream:
            while pos[0] < len(signal):
                time.sleep(0.05)
            time.sleep(0.3)
        time.sleep(0.3)
    # one line per stream through its stamps (sample counting from the median start), as
    # the nodes' clocks smooth the callbacks' jitter
    starts = [s - k * block / rate for k, s in enumerate(rec_stamps)]
    rec_t0 = float(np.median(starts))
    play_t0 = float(np.median([s - i / rate for i, s in out_stamps]))
    recorded = np.concatenate(rec_blocks)
    played = np.zeros_like(recorded)
    k = int(round((play_t0 - rec_t0) * rate))
    lo, hi = max(k, 0), min(k + len(signal), len(played))
    if hi > lo:
        played[lo:hi] = signal[lo - k : hi - k]
    return recorded, played
