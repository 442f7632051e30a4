"""MP4 encoding through ffmpeg, one RGB frame at a time (the face render and the simulated
head's camera). Written under a temporary name and moved into place by :meth:`Mp4Writer.close`:
a failed or interrupted encode never leaves a truncated file that looks complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from timar_ros.errors import InputError


class VideoError(InputError, RuntimeError):
    """ffmpeg is missing or failed; the message says what to do."""


def find_ffmpeg() -> str | None:
    return shutil.which("ffmpeg")


def video_codec(ffmpeg: str) -> list[str]:
    """H.264 when this ffmpeg has libx264, MPEG-4 part 2 otherwise."""
    try:
        enc = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        enc = ""
    if " libx264 " in enc:
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]
    return ["-c:v", "mpeg4", "-q:v", "4", "-pix_fmt", "yuv420p"]


class Mp4Writer:
    """Frames [height, width, 3] uint8 RGB -> ``out`` at ``fps``.

    Args:
        width, height: frame size in pixels (even: yuv420p needs it).
        audio_wav: a WAV file muxed in (the video ends with the shorter of the two).
    """

    def __init__(
        self,
        out: str | os.PathLike,
        width: int,
        height: int,
        fps: float,
        audio_wav: str | os.PathLike | None = None,
        ffmpeg: str | None = None,
    ):
        ffmpeg = ffmpeg or find_ffmpeg()
        if not ffmpeg:
            raise VideoError("ffmpeg not found: install it (Debian/Ubuntu: apt-get install ffmpeg)")
        if fps <= 0:
            raise VideoError(f"fps must be > 0, got {fps}")
        if width % 2 or height % 2:
            raise VideoError(f"frame size {width}x{height}: width and height must be even")
        self.out = Path(out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.size = (int(height), int(width))
        self.frames = 0
        self._partial = self.out.with_name(f".{self.out.name}.partial")
        cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo"]
        cmd += ["-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-"]
        if audio_wav is not None:
            cmd += ["-i", str(audio_wav), "-c:a", "aac", "-b:a", "96k", "-shortest"]
        cmd += video_codec(ffmpeg) + ["-movflags", "+faststart", "-f", "mp4", str(self._partial)]
        # stderr goes to a file, not a pipe: a chatty ffmpeg filling an unread pipe would block
        # while this process blocks writing frames to its stdin (a deadlock).
        self._log = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._log)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (*self.size, 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frame must be {(*self.size, 3)} uint8, got {frame.shape} {frame.dtype}"
            )
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
            self.frames += 1
        except BrokenPipeError:
            pass  # ffmpeg exited: close() reports why

    def close(self) -> Path:
        """Finish the file and move it into place; raises VideoError when ffmpeg failed."""
        if self._proc is None:
            return self.out
        proc, self._proc = self._proc, None
        try:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            rc = proc.wait()
        except BaseException:  # Ctrl-C: stop the encoder, leave nothing behind
            proc.kill()
            proc.wait()
            self._partial.unlink(missing_ok=True)
            raise
        self._log.seek(0)
        err = self._log.read().decode(errors="replace")
        self._log.close()
        if rc != 0:
            self._partial.unlink(missing_ok=True)
            raise VideoError(f"ffmpeg failed writing {self.out}: {err.strip()[-800:]}")
        os.replace(self._partial, self.out)
        return self.out

    def abort(self) -> None:
        """Stop without a file (after an error)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
            self._partial.unlink(missing_ok=True)
            self._log.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
