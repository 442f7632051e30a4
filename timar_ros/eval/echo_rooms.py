"""The robot's echo measured offline, in rooms simulated with pyroomacoustics (no ROS).

Each room is a shoebox of random size (seeded) with a reverberation time RT60, a microphone on
the robot's head, the robot's loudspeaker a few centimetres from it and the partner 1-2 m away,
a noise floor, and the loudspeaker's clock off the microphone's by some ppm (the loudspeaker
plays the reference slightly fast or slow: the echo drifts against the reference). One scripted
exchange of :data:`SCRIPT_S` seconds runs through each room:

    robot alone [0, 8) | partner alone [8, 12) | robot alone [12, 15) | both [15, 20)
    (the partner barges in at 15 s) | partner alone [20, 24)

and through the canceller in each mode (:class:`~timar_ros.robot.echo.EchoCanceller`, fed with
the reference on the same clock, 40-ms microphone chunks as the microphone node sends). Figures
per room and mode (:func:`measure_room`):

* ``erle_db``: echo return loss enhancement while only the robot speaks, after the first 2 s
  (the canceller converging); ``erle_first_2s_db``: during them.
* ``partner_stoi``: how intelligible the partner stays in the output while both speak: STOI
  (short-time objective intelligibility, 0-1; Taal et al., 2011) against the partner's own voice
  as the microphone hears it (reverberant, no echo, no noise); ``partner_alone_stoi``: the same
  where the partner talks alone (what the canceller itself costs a voice with nothing to
  cancel). The raw microphone's is the baseline. STOI compares band envelopes, so the
  canceller's high-pass filter and its few samples of latency do not count against it, as they
  did against the SI-SDR used before (AEC3's output in the first room with the echo taken out
  of the microphone: SI-SDR -45 to -60 dB, STOI 0.90-0.93). STOI's floor is not 0 (noise
  against a voice: 0.36); under 0.5 a voice is hard to follow.
* ``robot_turns_called_partner``: the share of the 1-s turns in which only the robot speaks
  that the policy's voice activity (robot/vad.py, config/timar.yaml's threshold) calls "partner
  speaking"; ``double_talk_turns_heard``: the share of double-talk turns where it hears them.
* ``cpu_s_per_s``: canceller CPU time per second of audio.

Levels (dB SPL, the microphone's full scale at ``FULL_SCALE_SPL``): the loudspeaker at
``ROBOT_SPL_1M`` and the partner at ``PARTNER_SPL_1M`` measured 1 m away, the room's noise at
``NOISE_SPL``; pyroomacoustics applies the distances (1/r) and the room. ``echo_gain_db``
(:func:`simulate`, ``timar echo bench --echo-gain-db``) turns the echo down against the
partner: a quieter loudspeaker, one further away, a directional microphone.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from timar_ros.motion import SAMPLE_RATE

SCRIPT_S = 24.0
ROBOT_ON = ((0.0, 8.0), (12.0, 20.0))
PARTNER_ON = ((8.0, 12.0), (15.0, 24.0))
CONVERGE_S = 2.0
CHUNK_S = 0.04
FULL_SCALE_SPL = 110.0  # dB SPL at 0 dBFS: the loudspeaker 5 cm away peaks below it
ROBOT_SPL_1M = 65.0  # a loudspeaker at conversational level
PARTNER_SPL_1M = 60.0  # normal speech
NOISE_SPL = 35.0  # a quiet room
REFERENCE_DBFS = -20.0  # the robot's speech as voice_player sends it to the DAC (RMS)


@dataclass(frozen=True)
class Room:
    rt60_s: float
    speaker_mic_m: float  # loudspeaker to microphone
    partner_m: float  # partner's mouth to microphone
    drift_ppm: float  # loudspeaker clock against the microphone's
    seed: int

    @property
    def name(self) -> str:
        return (
            f"rt60 {self.rt60_s:.1f} s, speaker {self.speaker_mic_m * 100:.0f} cm, partner "
            f"{self.partner_m:.1f} m, drift {self.drift_ppm:+.0f} ppm"
        )


def default_rooms(count: int = 12, seed: int = 0) -> list[Room]:
    """``count`` rooms cycling RT60 0.2/0.4/0.6 s and loudspeaker 5/10/20 cm, the partner at
    1-2 m and the drift +-100 ppm drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        out.append(
            Room(
                rt60_s=(0.2, 0.4, 0.6)[i % 3],
                speaker_mic_m=(0.05, 0.10, 0.20)[(i // 3) % 3],
                partner_m=float(rng.uniform(1.0, 2.0)),
                drift_ppm=float(rng.choice([-100.0, 100.0])),
                seed=seed * 1000 + i,
            )
        )
    return out


def _mask(spans, n: int, rate: int) -> np.ndarray:
    m = np.zeros(n, bool)
    for a, b in spans:
        m[int(a * rate) : int(b * rate)] = True
    return m


ACTIVE_FRAME_S = 0.02


def active_frames(voice: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """[len(voice) // (ACTIVE_FRAME_S * rate)] bool: the 20-ms frames within 30 dB of the
    loudest, each kept with 100 ms around it (what of a recording is someone speaking)."""
    k = int(ACTIVE_FRAME_S * rate)
    n = len(voice) // k
    if n == 0:
        return np.zeros(0, bool)
    e = (voice[: n * k].reshape(n, k) ** 2).mean(1)
    on = e > e.max() * 1e-3
    return np.convolve(on, np.ones(11), "same") > 0


def voiced(voice: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The voice without its long silences (a conversation's recording is half listening):
    its :func:`active_frames`."""
    k = int(ACTIVE_FRAME_S * rate)
    on = active_frames(voice, rate)
    return voice[: len(on) * k].reshape(len(on), k)[on].reshape(-1)


def _speech(voice: np.ndarray, n: int, spans, rate: int) -> np.ndarray:
    """The voice laid into ``spans`` (looped from its start), silence elsewhere; unit RMS over
    its active part."""
    out = np.zeros(n, np.float32)
    pos = 0
    for a, b in spans:
        i0, i1 = int(a * rate), int(b * rate)
        take = np.resize(np.roll(voice, -pos), i1 - i0)
        out[i0:i1] = take
        pos += i1 - i0
    act = out[_mask(spans, n, rate)]
    return out / (np.sqrt(np.mean(act * act)) + 1e-12)


def _level(spl: float) -> float:
    """RMS (full scale 1.0) of a sound at ``spl`` dB SPL on the microphone."""
    return 10.0 ** ((spl - FULL_SCALE_SPL) / 20.0)


@functools.lru_cache(maxsize=4)
def _free_field_1m_norm(rate: int) -> float:
    """The energy norm of pyroomacoustics' RIR 1 m from a source in free field."""
    import pyroomacoustics as pra

    box = pra.ShoeBox([5.0, 4.0, 3.0], fs=rate, max_order=0)
    box.add_source([2.0, 2.0, 1.5])
    box.add_microphone([3.0, 2.0, 1.5])
    box.compute_rir()
    return float(np.sqrt(np.sum(box.rir[0][0] ** 2)))


def simulate(
    room: Room,
    robot_voice: np.ndarray,
    partner_voice: np.ndarray,
    rate=SAMPLE_RATE,
    echo_gain_db: float = 0.0,
):
    """-> dict of [n] float32 signals: "mic" (what the microphone records), "reference" (what
    the loudspeaker was told to play), "echo", "partner" (their images at the microphone),
    and the masks "robot_on", "partner_on". ``echo_gain_db`` scales the echo (dB, <= 0: the
    robot's voice quieter at the microphone than the room puts it)."""
    import pyroomacoustics as pra
    from scipy.signal import resample

    rng = np.random.default_rng(room.seed)
    n = int(SCRIPT_S * rate)
    dim = np.array([rng.uniform(3.5, 7.0), rng.uniform(3.0, 5.5), rng.uniform(2.4, 3.2)])
    absorption, max_order = pra.inverse_sabine(room.rt60_s, dim)
    shoebox = pra.ShoeBox(
        dim, fs=rate, materials=pra.Material(absorption), max_order=min(max_order, 40)
    )
    mic = np.array([dim[0] * 0.4, dim[1] * 0.5, 1.2])
    az = rng.uniform(0, 2 * np.pi)
    speaker = mic + room.speaker_mic_m * np.array([np.cos(az), np.sin(az), -0.2])
    paz = rng.uniform(-0.6, 0.6)
    partner = mic + room.partner_m * np.array([np.cos(paz), np.sin(paz), 0.25])
    partner = np.clip(partner, 0.3, dim - 0.3)
    shoebox.add_source(speaker)
    shoebox.add_source(partner)
    shoebox.add_microphone(mic)
    shoebox.compute_rir()
    rir_robot, rir_partner = shoebox.rir[0][0], shoebox.rir[0][1]
    # each source calibrated to be at its SPL 1 m away in free field (the RIRs' own scale is
    # pyroomacoustics': 1/(4 pi r) times its fractional-delay filter's energy)
    at_1m = _free_field_1m_norm(rate)
    # the reference is the TTS's signal at its digital level; the loudspeaker's volume makes it
    # ROBOT_SPL_1M
    voice = _speech(robot_voice, n, ROBOT_ON, rate)
    reference = voice * 10.0 ** (REFERENCE_DBFS / 20.0)
    talk = _speech(partner_voice, n, PARTNER_ON, rate) * _level(PARTNER_SPL_1M)
    # the loudspeaker's clock: it plays the reference (1 + ppm) faster than the microphone
    # samples, so the echo drifts against the reference
    played = resample(voice, int(round(n / (1.0 + room.drift_ppm * 1e-6))))[:n]
    played = played * _level(ROBOT_SPL_1M)
    played = np.pad(played, (0, n - len(played)))
    echo = np.convolve(played, rir_robot / at_1m)[:n] * 10.0 ** (echo_gain_db / 20.0)
    partner_img = np.convolve(talk, rir_partner / at_1m)[:n]
    noise = rng.standard_normal(n) * _level(NOISE_SPL)
    return {
        "mic": (echo + partner_img + noise).astype(np.float32),
        "reference": reference.astype(np.float32),
        "echo": echo.astype(np.float32),
        "partner": partner_img.astype(np.float32),
        "robot_on": _mask(ROBOT_ON, n, rate),
        "partner_on": _mask(PARTNER_ON, n, rate),
    }


def echo_over_partner_db(sig: dict) -> float:
    """How much louder the robot's echo is than the partner's voice at the microphone (dB):
    their RMS while each speaks (what `timar echo calibrate --partner-seconds` measures on a
    robot)."""
    e, p = sig["echo"][sig["robot_on"]], sig["partner"][sig["partner_on"]]
    return float(10 * np.log10((np.mean(e * e) + 1e-20) / (np.mean(p * p) + 1e-20)))


def run_canceller(sig: dict, mode: str, rate: int = SAMPLE_RATE, **config) -> tuple:
    """The canceller over a simulated recording as the nodes feed it (:func:`feed`) ->
    (output [n], cpu seconds, counters)."""
    from timar_ros.robot.echo import EchoCanceller, EchoConfig

    ec = EchoCanceller(rate, EchoConfig(mode=mode, **config))
    out, cpu, _ = feed(ec, sig["mic"], sig["reference"], rate)
    return out, cpu, ec.counters.as_dict()


def feed(ec, mic: np.ndarray, reference: np.ndarray | None, rate: int, lead_chunks: int = 5):
    """``mic`` [n] to the canceller ``ec`` in CHUNK_S chunks stamped from 0 s, and the reference
    [n] (None: none) ``lead_chunks`` chunks ahead, as voice_player publishes its timeline ahead
    of the sound -> (output laid on the input's grid [n], the canceller's CPU seconds (its own
    count, EchoCanceller.cpu_s), the output chunks' (stamp s, samples))."""
    k = int(CHUNK_S * rate)
    lead = lead_chunks * k
    out, stamps, cpu0 = np.zeros_like(mic), [], ec.cpu_s
    if reference is not None:
        ec.add_reference(reference[:lead], rate, 0.0)
    for i in range(0, len(mic) - k + 1, k):
        if reference is not None and i + lead < len(reference):
            ec.add_reference(reference[i + lead : i + lead + k], rate, (i + lead) / rate)
        got = ec.process(mic[i : i + k], i / rate)
        if got is not None:
            y, t0 = got
            stamps.append((t0, len(y)))
            j = int(round(t0 * rate))  # before 0 by the canceller's latency at first
            y, j = (y[-j:], 0) if j < 0 else (y, j)
            out[j : j + len(y)] = y[: len(out) - j]
    return out, ec.cpu_s - cpu0, stamps


def stoi(estimate: np.ndarray, target: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """STOI of ``estimate`` [n] against the clean ``target`` [n] (0-1; 0 for a muted output,
    which keeps nothing of the target)."""
    from pystoi import stoi as _stoi

    if float(np.max(np.abs(estimate), initial=0.0)) < 1e-6:
        return 0.0
    return float(_stoi(np.asarray(target, np.float64), np.asarray(estimate, np.float64), rate))


def _turns(lo_s: float, hi_s: float) -> list[tuple[float, float]]:
    return [(t, t + 1.0) for t in np.arange(lo_s, hi_s - 1.0 + 1e-9, 1.0)]


def _called(x: np.ndarray, spans, rate: int) -> list[bool]:
    """The policy's voice activity on each 1-s turn: partner speaking?"""
    from timar_ros.robot.conversation import PipelineConfig
    from timar_ros.robot.vad import VoiceActivity

    cfg = PipelineConfig.defaults()  # the policy's own thresholds, config/timar.yaml
    vad = VoiceActivity(sample_rate=rate, aggressiveness=cfg.vad_aggressiveness)
    return [
        vad.voiced_fraction(x[int(a * rate) : int(b * rate)]) >= cfg.speaking_threshold
        for a, b in spans
    ]


def measure_room(sig: dict, out: np.ndarray, rate: int = SAMPLE_RATE) -> dict:
    """The figures of one output (see the module doc); ``out`` = ``sig["mic"]`` gives the
    no-cancellation baseline."""
    mic = sig["mic"]
    robot_only = sig["robot_on"] & ~sig["partner_on"]
    t = np.arange(len(mic)) / rate
    # active frames only: silence in the robot's speech is no echo to cancel
    loud = np.convolve(sig["echo"] ** 2, np.ones(160) / 160, "same") > _level(NOISE_SPL + 10) ** 2
    settled = robot_only & loud & (t >= CONVERGE_S)
    first = robot_only & loud & (t < CONVERGE_S)
    from timar_ros.robot.echo import echo_return_loss_enhancement as erle

    both = sig["robot_on"] & sig["partner_on"]
    partner_only = sig["partner_on"] & ~sig["robot_on"]
    robot_turns = _turns(0.0, 8.0) + _turns(12.0, 15.0)
    both_turns = _turns(15.0, 20.0)
    partner_turns = _turns(8.0, 12.0) + _turns(20.0, 24.0)
    return {
        "erle_db": erle(mic, out, settled),
        "erle_first_2s_db": erle(mic, out, first),
        "partner_stoi": stoi(out[both], sig["partner"][both], rate),
        "partner_alone_stoi": stoi(out[partner_only], sig["partner"][partner_only], rate),
        "robot_turns_called_partner": float(np.mean(_called(out, robot_turns, rate))),
        "double_talk_turns_heard": float(np.mean(_called(out, both_turns, rate))),
        "partner_turns_heard": float(np.mean(_called(out, partner_turns, rate))),
    }


MODES_MEASURED = ("none", "half_duplex", "aec")
MUTED_DB = 80.0  # an ERLE above this is a muted output (the noise floor is gone too)
FIGURES = {  # key -> (column, how it is summarised over rooms)
    "erle_db": ("ERLE dB (robot alone, after 2 s)", "median"),
    "erle_first_2s_db": ("ERLE dB (first 2 s)", "median"),
    "partner_stoi": ("partner's STOI in double talk", "median"),
    "partner_alone_stoi": ("partner's STOI talking alone", "median"),
    "robot_turns_called_partner": ("robot-alone turns called 'partner speaking'", "mean"),
    "double_talk_turns_heard": ("double-talk turns heard as the partner", "mean"),
    "partner_turns_heard": ("partner-alone turns heard as the partner", "mean"),
    "cpu_s_per_s": ("CPU s per s of audio", "mean"),
}


def demo_voices(rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """(robot, partner) voices without their silences: the bundled demo conversation's."""
    from timar_ros.data.audio import load_wav
    from timar_ros.resources import share_dir

    conv = share_dir() / "data" / "demo_conversation"
    return (
        voiced(load_wav(conv / "demo_speaker2.wav", rate), rate),
        voiced(load_wav(conv / "demo_speaker1.wav", rate), rate),
    )


def bench(
    rooms: list[Room],
    modes=MODES_MEASURED,
    log=print,
    echo_gain_db: float = 0.0,
    cancellers: dict | None = None,
) -> dict:
    """Every room through every mode -> {"rooms": [{room, mode: figures}], "summary": {mode:
    {figure: {"value", "q25", "q75"}}}, "echo_gain_db", "echo_over_partner_db"} (median or mean
    over rooms as :data:`FIGURES` says; ``echo_gain_db`` as :func:`simulate` takes it; the echo
    over the partner per room and its median and quartiles). ``cancellers``: more
    columns, name -> f(signals of :func:`simulate`) -> (output [n], CPU seconds, counters),
    for cancellers other than :class:`~timar_ros.robot.echo.EchoCanceller`'s modes."""
    robot, partner = demo_voices()
    cancellers = cancellers or {}
    modes = list(modes) + list(cancellers)
    per_room = []
    for room in rooms:
        sig = simulate(room, robot, partner, echo_gain_db=echo_gain_db)
        row = {
            "room": room.__dict__
            | {"name": room.name, "echo_over_partner_db": echo_over_partner_db(sig)}
        }
        for mode in modes:
            if mode in cancellers:
                out, cpu, counters = cancellers[mode](sig)
            elif mode == "none":
                out, cpu, counters = sig["mic"], 0.0, {}
            else:
                out, cpu, counters = run_canceller(sig, mode)
            row[mode] = measure_room(sig, out) | {"cpu_s_per_s": cpu / SCRIPT_S}
            if counters:
                row[mode]["counters"] = counters
        log(
            f"  {room.name}: "
            + ", ".join(f"{m} ERLE {row[m]['erle_db']:.1f} dB" for m in modes if m != "none")
        )
        per_room.append(row)
    summary = {}
    for mode in modes:
        summary[mode] = {}
        for key, (_, how) in FIGURES.items():
            v = np.array([r[mode][key] for r in per_room], float)
            if len(v):
                summary[mode][key] = _over_rooms(v, how)
    over = np.array([r["room"]["echo_over_partner_db"] for r in per_room])
    return {
        "rooms": per_room,
        "summary": summary,
        "script_s": SCRIPT_S,
        "echo_gain_db": echo_gain_db,
        "echo_over_partner_db": _over_rooms(over, "median"),
    }


def _over_rooms(v: np.ndarray, how: str) -> dict:
    """A figure over rooms [rooms] -> {"value" (median or mean, as ``how`` says), "q25",
    "q75"}; "nearest": the median and quartiles are rooms' own figures."""
    q = lambda p: float(np.percentile(v, p, method="nearest"))  # noqa: E731
    return {"value": q(50) if how == "median" else float(np.mean(v)), "q25": q(25), "q75": q(75)}


def markdown(report: dict) -> str:
    """The summary as a Markdown table: a row per figure, a column per mode."""
    modes = list(report["summary"])
    rows = [
        "| figure (over rooms) | " + " | ".join(modes) + " |",
        "|---|" + "---|" * len(modes),
    ]
    for key, (label, how) in FIGURES.items():
        cells = []
        for m in modes:
            f = report["summary"][m].get(key)
            if key.startswith("erle") and m == "none" or f is None:
                cells.append("-")
            elif key.startswith("erle") and f["value"] > MUTED_DB:
                cells.append("muted")
            elif key == "cpu_s_per_s":
                cells.append(f"{f['value']:.4f}")
            elif how == "mean":
                cells.append(f"{f['value']:.0%}")
            else:
                d = 2 if key.endswith("stoi") else 1
                cells.append(f"{f['value']:.{d}f} ({f['q25']:.{d}f} to {f['q75']:.{d}f})")
        rows.append(f"| {label}, {how} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def delay_reach(delays_s, room: Room | None = None, log=print) -> list[dict]:
    """AEC3 with the echo arriving later than the reference's stamps say (the robot's audio
    path slower than its stamps): ERLE and the voice activity per extra delay (s), in one room
    (default: the first of :func:`default_rooms`)."""
    robot, partner = demo_voices()
    room = room or default_rooms(1)[0]
    sig = simulate(room, robot, partner)
    rows = []
    for d in delays_s:
        k = int(round(d * SAMPLE_RATE))
        late = dict(sig)
        late["echo"] = np.roll(sig["echo"], k)  # negative: the echo comes early
        late["echo"][: max(k, 0)] = 0.0
        late["echo"][len(late["echo"]) + min(k, 0) :] = 0.0
        late["mic"] = (sig["mic"] - sig["echo"] + late["echo"]).astype(np.float32)
        out, _, counters = run_canceller(late, "aec")
        m = measure_room(late, out)
        rows.append({"delay_s": d, **m, "delay_out_of_range": counters["delay_out_of_range"]})
        log(
            f"  echo {d * 1000:.0f} ms late: ERLE {m['erle_db']:.1f} dB (first 2 s "
            f"{m['erle_first_2s_db']:.1f}), robot turns called partner "
            f"{m['robot_turns_called_partner']:.0%}, delay warnings "
            f"{counters['delay_out_of_range']}"
        )
    return rows
