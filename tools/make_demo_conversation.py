#!/usr/bin/env python3
"""Build the committed demo conversation in data/demo_conversation/ from Debian flite voices.

A scripted two-speaker exchange (greeting, questions, answers, backchannels, overlaps, pauses)
is synthesised with flite, placed on a common timeline, and written in the DualTalk layout:

    demo_speaker1.wav/.npz   the user (the robot's partner), flite voice "rms"
    demo_speaker2.wav/.npz   the robot (the agent),          flite voice "slt"
    conversation.json        the script with its timings, voices and the listener reactions
    README.md

16 kHz mono WAVs on the same timeline (each track silent except its own speech). The .npz
motion targets come from the synthetic generator's rules (timar_ros.data.synthetic.render_motion)
driven by the real TTS audio, so the conversation can also be used for evaluation. These targets
are a test bench, not recorded human motion.

Needs `flite` on PATH (Debian: apt-get install flite). Usage:
    python tools/make_demo_conversation.py [--out data/demo_conversation] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOICES = {1: "rms", 2: "slt"}  # speaker1 = user (partner), speaker2 = robot (agent)

# (speaker, text, timing). Main lines: ("gap", s) after the previous main line ends (negative =
# overlap). Backchannels: ("at", fraction) of the partner's line that is currently running.
SCRIPT = [
    (1, "Hi there! Are you the new lab assistant?", ("gap", 0.5)),
    (2, "Hello! Yes, I am. I just started this week. How can I help you?", ("gap", 0.45)),
    (1, "I am looking for the meeting room, the one with the big windows.", ("gap", 0.5)),
    (2, "mm-hm", ("at", 0.55)),
    (
        2,
        "Oh, that is on the second floor. Take the stairs on your left, and it is the third door.",
        ("gap", 0.35),
    ),
    (1, "okay", ("at", 0.5)),
    (1, "Great, thanks. And is the coffee machine working again?", ("gap", -0.3)),
    (2, "Hmm, let me think. Yes, they fixed it this morning.", ("gap", 0.9)),
    (1, "Perfect. You have been really helpful.", ("gap", 0.3)),
    (2, "You are welcome! Have a nice meeting.", ("gap", 0.35)),
    (1, "Thanks, bye!", ("gap", -0.25)),
]
TAIL_S = 0.8


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "data" / "demo_conversation"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--config", default=str(REPO / "config" / "synthetic.yaml"))
    args = ap.parse_args(argv)

    from timar_ros.data.synthetic import (
        Conversation,
        SyntheticConfig,
        flite_available,
        render_motion,
        write_conversation,
    )
    from timar_ros.data.synthetic.timeline import Segment
    from timar_ros.data.synthetic.voices import flite_say
    from timar_ros.motion import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

    if not flite_available():
        print(
            "make_demo_conversation: `flite` is not on PATH. Install it first "
            "(Debian/Ubuntu: sudo apt-get install flite), then re-run.",
            file=sys.stderr,
        )
        return 2
    version = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    version = next((ln.strip() for ln in version.splitlines() if "version" in ln), "flite")
    cfg = SyntheticConfig.from_yaml(args.config)
    cfg.mood.warm_prob = 1.0  # a warm conversation: the listener nods and both smile

    clips = []
    for spk, text, timing in SCRIPT:
        x = flite_say(text, VOICES[spk])
        x = 0.35 * x / max(1e-9, float(np.abs(x).max())) * (0.6 if timing[0] == "at" else 1.0)
        clips.append((spk, text, timing, x.astype(np.float32)))

    lines, t_end, current = [], 0.0, None
    for spk, text, (kind, val), x in clips:
        dur = len(x) / SAMPLE_RATE
        if kind == "gap":
            start = max(0.0, t_end + val)
            t_end = start + dur
            current = (start, dur)
        else:  # backchannel inside the partner's running line
            start = current[0] + val * current[1]
        lines.append(
            {
                "speaker": spk,
                "role": "user" if spk == 1 else "robot",
                "text": text,
                "voice": VOICES[spk],
                "kind": "line" if kind == "gap" else "backchannel",
                "start_s": round(start, 3),
                "end_s": round(start + dur, 3),
                "x": x,
            }
        )
    total = max(ln["end_s"] for ln in lines) + TAIL_S
    n = int(np.ceil(total * FPS)) * SAMPLES_PER_FRAME
    tracks = [np.zeros(n, np.float32), np.zeros(n, np.float32)]
    for ln in lines:
        s0 = int(round(ln["start_s"] * SAMPLE_RATE))
        seg = ln["x"][: n - s0]
        tracks[ln["speaker"] - 1][s0 : s0 + len(seg)] += seg
    rng = np.random.default_rng(args.seed)
    for k in range(2):  # the generator's noise floor, so silence is not digital zero
        tracks[k] = np.clip(tracks[k] + cfg.audio.noise_floor * rng.standard_normal(n), -1, 1)
        tracks[k] = tracks[k].astype(np.float32)
    motions, info = render_motion(tracks, cfg, rng)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    segs = [
        Segment(
            ln["speaker"] - 1,
            ln["start_s"],
            ln["end_s"],
            "turn" if ln["kind"] == "line" else "backchannel",
        )
        for ln in lines
    ]
    conv = Conversation(tracks, motions, info["events"], segs, {})
    write_conversation(conv, out, "demo", meta=False)
    for ln in lines:
        del ln["x"]
    meta = {
        "duration_s": round(n / SAMPLE_RATE, 3),
        "sample_rate": SAMPLE_RATE,
        "fps": FPS,
        "frames": n // SAMPLES_PER_FRAME,
        "tts": version,
        "speakers": {
            "speaker1": {"role": "user (partner)", "voice": VOICES[1]},
            "speaker2": {"role": "robot (agent)", "voice": VOICES[2]},
        },
        "motion_rules": "timar_ros.data.synthetic.render_motion with config/synthetic.yaml, "
        f"seed {args.seed} (a test bench, not recorded human motion)",
        "script": lines,
        "listener_reactions": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in e.items()}
            for e in info["events"]
        ],
        "made_by": "tools/make_demo_conversation.py",
    }
    (out / "conversation.json").write_text(json.dumps(meta, indent=1))
    rows = "\n".join(
        f"| {ln['start_s']:.2f}-{ln['end_s']:.2f} | {ln['role']} | {ln['kind']} | {ln['text']} |"
        for ln in sorted(lines, key=lambda d: d["start_s"])
    )
    (out / "README.md").write_text(f"""# Demo conversation

A {meta["duration_s"]:.1f}-s two-speaker conversation synthesised with Debian `flite`
({version}) by `tools/make_demo_conversation.py` (re-run it to rebuild; needs `flite`).

- `demo_speaker1.wav` / `.npz`: the **user** (the robot's partner), flite voice `{VOICES[1]}`.
- `demo_speaker2.wav` / `.npz`: the **robot** (the agent), flite voice `{VOICES[2]}`.
- WAV: 16 kHz mono, one track per speaker on a common timeline.
- NPZ (DualTalk layout): `exp` [T, 50], `pose` [T, 6] = head rotation | jaw, 25 fps,
  T = {meta["frames"]}.
  The motion comes from the synthetic generator's rules (`timar_ros.data.synthetic`) driven by
  this audio, in the warm mood: jaw and mouth follow each speaker's own speech envelope, the
  speaker's head follows their prosody, the listener nods a few hundred ms after the partner
  pauses and its smile follows the partner's of two seconds earlier. It is a test bench, not
  recorded human motion.
- `conversation.json`: the script with timings and voices, and the listener reactions.

| time (s) | speaker | kind | text |
|---|---|---|---|
{rows}
""")
    size = sum(p.stat().st_size for p in out.iterdir())
    print(
        f"wrote {out} ({meta['duration_s']:.1f} s, {len(info['events'])} listener reactions, "
        f"{size / 1e6:.2f} MB)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
