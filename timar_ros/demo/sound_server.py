"""A real sound server without sound hardware: a user-space PulseAudio with null sinks, started in
a temporary folder (the live-audio tests and ``timar demo --live-audio``). Whatever is played to
a sink is heard on its monitor, so a known signal played there is captured by the node under
test through PortAudio -> ALSA's pulse plugin -> the server, as on a desktop or robot computer.

``make test`` / ``make demo`` install PulseAudio, its ALSA plugin and PortAudio on a fresh
Debian machine (``make system-deps``); where they are missing, :meth:`SoundServer.missing`
says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SINK = "timar_test_sink"
RATE = 16000
PACKAGES = "pulseaudio pulseaudio-utils libasound2-plugins libportaudio2"


class SoundServer:
    """PulseAudio with null sinks (mono, ``RATE`` Hz) on a socket in ``root``: ``sinks[0]`` is
    the default output and its monitor the default input (what a microphone hears).

    ``env``: the variables a client process needs (``PULSE_SERVER``); :meth:`start` also sets
    them in this process, before PortAudio first opens a stream."""

    def __init__(self, root: Path, rate: int = RATE, sinks: tuple[str, ...] = (SINK,)):
        self.root = Path(root)
        self.rate = rate
        self.sinks = tuple(sinks)
        self.socket = self.root / "native"
        self.env = {"PULSE_SERVER": f"unix:{self.socket}"}
        self.proc: subprocess.Popen | None = None
        self.log = self.root / "pulseaudio.log"

    @staticmethod
    def missing() -> str | None:
        """Why a sound server cannot run here (None: it can)."""
        for tool in ("pulseaudio", "pactl"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (apt-get install {PACKAGES}; make test does)"
        import ctypes.util

        # not imported here: PortAudio lists the server's devices only if it starts after it
        if ctypes.util.find_library("portaudio") is None:
            return "PortAudio is not installed (apt-get install libportaudio2)"
        if (
            not Path("/usr/share/alsa/alsa.conf.d/pulse.conf").is_file()
            and not Path("/etc/alsa/conf.d/99-pulse.conf").is_file()
        ):
            return "ALSA's pulse plugin is not installed (apt-get install libasound2-plugins)"
        return None

    def start(self, timeout: float = 20.0) -> SoundServer:
        home = self.root / "home"
        for d in (home, self.root / "runtime"):
            d.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            HOME=str(home),
            XDG_RUNTIME_DIR=str(self.root / "runtime"),
            PULSE_RUNTIME_PATH=str(self.root / "runtime"),
        )
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            [
                "pulseaudio",
                "-n",  # no default script: only the modules below
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--use-pid-file=no",
                "--disallow-exit",
                "--log-target=stderr",
                *(
                    f"--load=module-null-sink sink_name={name} rate={self.rate} channels=1"
                    for name in self.sinks
                ),
                f"--load=module-native-protocol-unix socket={self.socket} auth-anonymous=1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
        )
        os.environ.update(self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {self.log.read_text()[-2000:]}")
            if self.pactl("info", check=False).returncode == 0:
                self.pactl("set-default-sink", self.sinks[0])
                self.pactl("set-default-source", f"{self.sinks[0]}.monitor")
                self._refresh_portaudio()
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pulseaudio did not start in {timeout} s: {self.log.read_text()}")

    @staticmethod
    def _refresh_portaudio() -> None:
        """PortAudio enumerates devices when it starts: restart it in this process if it
        started before the server (sounddevice has no public call for this)."""
        import sys

        sd = sys.modules.get("sounddevice")
        if sd is not None:
            sd._terminate()
            sd._initialize()

    def set_defaults(self, sink: str, source: str) -> None:
        """The default output (a sink name) and input (a source, e.g. ``<sink>.monitor``)."""
        self.pactl("set-default-sink", sink)
        self.pactl("set-default-source", source)

    def loopback(self, source: str, sink: str, latency_s: float, gain_db: float) -> str:
        """Route ``source`` (e.g. ``<sink>.monitor``) into ``sink`` through the server, about
        ``latency_s`` later (module-loopback's target; it adapts its rate to keep it) and
        ``gain_db`` louder (negative: quieter). Returns the module's index (:meth:`unload`)."""
        module = self.pactl(
            "load-module",
            "module-loopback",
            f"source={source}",
            f"sink={sink}",
            f"latency_msec={max(1, round(latency_s * 1000))}",
            "source_dont_move=true",
            "sink_dont_move=true",
        ).stdout.strip()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # its sink input appears once the module runs
            index = None
            for line in self.pactl("list", "sink-inputs").stdout.splitlines():
                line = line.strip()
                if line.startswith("Sink Input #"):
                    index = line.removeprefix("Sink Input #")
                elif line == f"Owner Module: {module}" and index is not None:
                    self.pactl("set-sink-input-volume", index, f"{gain_db:.2f}dB")
                    return module
            time.sleep(0.05)
        self.pactl("unload-module", module, check=False)
        raise RuntimeError(f"module-loopback {source} -> {sink} made no sink input in 5 s")

    def unload(self, module: str) -> None:
        self.pactl("unload-module", module, check=False)

    def play(self, wav: Path, sink: str) -> subprocess.Popen:
        """Play a WAV file into ``sink`` (paplay); returns the process."""
        return subprocess.Popen(
            ["paplay", f"--device={sink}", str(wav)],
            env=dict(os.environ, **self.env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["pactl", *args],
            env=dict(os.environ, **self.env),
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log_file", None) is not None:
            self._log_file.close()
            self._log_file = None
        for k in self.env:
            os.environ.pop(k, None)


def find_signal(got, signal) -> tuple[int, float]:
    """Where ``signal`` [N] lies in ``got`` [M >= N]: (sample index of its first sample, the
    normalised correlation there, 1 = the same samples up to a gain)."""
    import numpy as np

    corr = np.correlate(got, signal, "valid")
    lag = int(np.argmax(corr))
    seg = got[lag : lag + len(signal)]
    return lag, float(corr[lag] / np.sqrt((signal**2).sum() * (seg**2).sum()))


class MonitorRecorder:
    """Records the default input (the null sink's monitor) in this process, each block stamped
    as the microphone node stamps it (now - block - nominal latency, one clock per stream)."""

    def __init__(self, rate: int = RATE, block: int = 320):
        import threading

        import sounddevice as sd

        from timar_ros.robot.capture_clock import CaptureClock, capture_reading

        self.rate, self.blocks, self.stamps = rate, [], []
        self._clock = CaptureClock(rate)
        self._lock = threading.Lock()

        def callback(indata, frames, time_info, status):
            measured = capture_reading(time.time(), frames, rate, self.stream.latency)
            with self._lock:
                stamp, _ = self._clock.stamp(measured, frames)
                self.blocks.append(indata[:, 0].copy())
                self.stamps.append(stamp)

        self.stream = sd.InputStream(
            samplerate=rate,
            channels=1,
            dtype="float32",
            device="pulse",
            blocksize=block,
            callback=callback,
        )

    def __enter__(self):
        self.stream.start()
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.stream.close()

    def find(self, signal) -> tuple[float, float]:
        """(capture stamp of ``signal``'s first sample, normalised correlation)."""
        import numpy as np

        with self._lock:
            got = np.concatenate(self.blocks)
            t = np.concatenate(
                [s + np.arange(len(b)) / self.rate for s, b in zip(self.stamps, self.blocks)]
            )
        lag, r = find_signal(got, signal)
        return float(t[lag]), r
