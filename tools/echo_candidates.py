#!/usr/bin/env python3
"""The echo cancellers considered for the robot (issue 25), measured on `timar echo bench`'s
simulated rooms: WebRTC's AEC3 (the package's `aec` mode, from the livekit wheel) next to
speexdsp's MDF canceller, alone (linear) and with speexdsp's residual-echo suppressor.

    python tools/echo_candidates.py --rooms 12 [--echo-gain-db 0] [--json out.json]

speexdsp has no wheel for both x86_64 and aarch64 (the `speexdsp` package is an sdist needing
swig), so this script calls Debian's libspeexdsp1 (a dependency of PulseAudio, so present
wherever `make system-deps` ran) through ctypes; the package itself does not use it. Prints the
same Markdown table as the bench, a column per canceller.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timar_ros.eval.echo_rooms import bench, default_rooms, markdown  # noqa: E402
from timar_ros.motion import SAMPLE_RATE  # noqa: E402
from timar_ros.robot.echo import AEC3_LEAD_S  # noqa: E402

FRAME = 160  # 10 ms at 16 kHz, as AEC3's frames
# speexdsp.h's request codes
ECHO_SET_SAMPLING_RATE = 24
PREPROCESS_SET_DENOISE = 0
PREPROCESS_SET_ECHO_STATE = 24


def _speexdsp():
    name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise SystemExit(
            f"libspeexdsp not found ({exc}): apt-get install libspeexdsp1 (PulseAudio's dependency)"
        ) from exc
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p] * 4
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    return lib


def speex_canceller(tail_s: float, suppressor: bool, rate: int = SAMPLE_RATE):
    """-> f(signals of echo_rooms.simulate) -> (output [n], CPU s, {}): speexdsp's MDF with a
    ``tail_s`` filter, the reference fed AEC3_LEAD_S ahead of its stamps as the package feeds
    AEC3; ``suppressor``: then speexdsp's preprocessor (noise and residual-echo suppression at
    its defaults)."""
    lib = _speexdsp()

    def run(sig: dict):
        echo = lib.speex_echo_state_init(FRAME, int(tail_s * rate))
        r = ctypes.c_int(rate)
        lib.speex_echo_ctl(echo, ECHO_SET_SAMPLING_RATE, ctypes.byref(r))
        pre = None
        if suppressor:
            pre = lib.speex_preprocess_state_init(FRAME, rate)
            lib.speex_preprocess_ctl(pre, PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(echo))
            on = ctypes.c_int(1)  # the suppressor's gains are applied only with denoise on
            lib.speex_preprocess_ctl(pre, PREPROCESS_SET_DENOISE, ctypes.byref(on))
        lead = int(AEC3_LEAD_S * rate)
        ref = np.concatenate([sig["reference"][lead:], np.zeros(lead, np.float32)])
        mic16 = (np.clip(sig["mic"], -1, 1) * 32767).round().astype(np.int16)
        ref16 = (np.clip(ref, -1, 1) * 32767).round().astype(np.int16)
        out = np.zeros(len(mic16), np.int16)
        frame = np.zeros(FRAME, np.int16)
        t0 = time.process_time()
        for i in range(0, len(mic16) - FRAME + 1, FRAME):
            m = np.ascontiguousarray(mic16[i : i + FRAME])
            x = np.ascontiguousarray(ref16[i : i + FRAME])
            lib.speex_echo_cancellation(echo, m.ctypes.data, x.ctypes.data, frame.ctypes.data)
            if pre is not None:
                lib.speex_preprocess_run(pre, frame.ctypes.data)
            out[i : i + FRAME] = frame
        cpu = time.process_time() - t0
        if pre is not None:
            lib.speex_preprocess_state_destroy(pre)
        lib.speex_echo_state_destroy(echo)
        return out.astype(np.float32) / 32767.0, cpu, {}

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rooms", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tail-s", type=float, default=0.25, help="speexdsp's filter (s)")
    ap.add_argument("--echo-gain-db", type=float, default=0.0)
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()
    cancellers = {
        "speexdsp MDF": speex_canceller(args.tail_s, suppressor=False),
        "speexdsp MDF + suppressor": speex_canceller(args.tail_s, suppressor=True),
    }
    rep = bench(
        default_rooms(args.rooms, args.seed),
        ("none", "aec"),
        echo_gain_db=args.echo_gain_db,
        cancellers=cancellers,
    )
    print(markdown(rep))
    if args.json_out:
        from timar_ros.files import write_json

        write_json(args.json_out, rep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
