"""A headless picture of what the robot head would do (`timar render BAG_OR_NPY OUT.mp4|OUT.png`).

A simple parametric face (not FLAME, not the URDF) drawn with matplotlib's Agg backend:

- head rotation (motion 53:56, axis-angle, FLAME frame x right / y up / z out of the face) turns
  the whole head in 3D: the features sit on an ellipsoid, are rotated, then projected
  orthographically (features turned away from the viewer are hidden), so yaw, pitch and roll
  are all visible; the nose sticks out to make the direction obvious;
- jaw opening (motion 50, the x component of the jaw axis-angle, rad) lowers the lower lip and
  the chin and opens the mouth;
- a few expression coefficients drive the rest, **as an illustration only** (FLAME expression
  components are PCA directions without fixed meanings; this mapping only makes changes in
  them visible): ``exp[0]`` -> mouth corners up/down, ``exp[1]`` -> brows raised/lowered,
  ``exp[2]`` -> brows knitted (inner ends down), ``exp[3]`` -> eyelids closing.
  Each goes through ``tanh(value / 2)`` so values of a few units saturate smoothly.

Under the face a strip shows both speakers' audio envelopes (user above, agent below, shaded
where the voice-activity threshold is crossed) with a time cursor.

Inputs: a ``.npy`` [T, 56] motion array (25 fps unless --motion-fps; optional
``--audio USER.wav AGENT.wav``), or a rosbag2 folder (HeadMotion from --topic, default
``/timar/head_motion``, falling back to ``/timar/ground_truth/head_motion`` when that is absent
and --topic was not given; AudioChunk topics for the strip). Output: MP4 through ffmpeg (raw
frames piped in, audio muxed when present), or a PNG contact sheet (a grid of frames at chosen
times) when OUT ends in .png or ffmpeg is missing (with a message saying so).

(One module, over 500 lines: the face geometry, its drawing and the two writers are one
renderer; nothing else in the package draws.)
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from timar_ros import motion as M
from timar_ros.errors import InputError
from timar_ros.viz.video import Mp4Writer, VideoError, find_ffmpeg

EXPR_MOUTH_CORNERS = 0
EXPR_BROW_RAISE = 1
EXPR_BROW_KNIT = 2
EXPR_EYELID_CLOSE = 3

DEFAULT_WIDTH = 480
DEFAULT_HEIGHT = 600
USER_COLOR = "#1f77b4"
AGENT_COLOR = "#ff7f0e"


class RenderError(InputError, RuntimeError):
    """Rendering cannot proceed as asked; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


@dataclass
class RenderInput:
    """What to draw: motion [T, 56] at ``fps``; optional mono audio per speaker with the offset of
    its first sample relative to motion frame 0 (seconds)."""

    motion: np.ndarray
    fps: float = float(M.FPS)
    user_audio: np.ndarray | None = None
    agent_audio: np.ndarray | None = None
    sample_rate: int = M.SAMPLE_RATE
    user_offset_s: float = 0.0
    agent_offset_s: float = 0.0
    title: str = ""
    start_s: float = 0.0  # the time of frame 0 on the source's clock (a bag's: ROS time)

    @property
    def duration_s(self) -> float:
        return len(self.motion) / self.fps


def _check_motion(motion: np.ndarray, where: str) -> np.ndarray:
    motion = np.asarray(motion, dtype=np.float32)
    if motion.ndim != 2 or motion.shape[1] != M.MOTION_DIM or len(motion) == 0:
        raise RenderError(
            f"{where}: motion must be [T, {M.MOTION_DIM}] with T > 0 "
            f"(exp | jaw | rotation), got {motion.shape}"
        )
    return np.nan_to_num(motion, nan=0.0, posinf=0.0, neginf=0.0)


def load_npy(
    path: str | os.PathLike, audio: tuple[str, str] | None = None, fps: float = M.FPS
) -> RenderInput:
    """A .npy motion file [T, 56] and optional (user.wav, agent.wav), both starting at t = 0."""
    from timar_ros.data.audio import load_wav

    try:
        motion = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001
        raise RenderError(f"{path}: cannot read the .npy motion file ({err})") from None
    inp = RenderInput(_check_motion(motion, str(path)), float(fps), title=Path(path).name)
    if audio:
        inp.user_audio = load_wav(audio[0], inp.sample_rate)
        inp.agent_audio = load_wav(audio[1], inp.sample_rate)
    return inp


def load_bag(
    path: str | os.PathLike,
    topic: str | None = None,
    user_audio_topic: str | None = None,
    agent_audio_topic: str | None = None,
) -> RenderInput:
    """HeadMotion (and AudioChunk topics when present) of a bag, on the bag's clock. Topics
    default to the pipeline's under the default namespace."""
    from timar_ros import bags as B
    from timar_ros import topics

    default = topics.resolve(topics.HEAD_MOTION)
    fallback = topics.resolve(topics.GROUND_TRUTH_MOTION)
    user_audio_topic = user_audio_topic or topics.resolve(topics.USER_AUDIO)
    agent_audio_topic = agent_audio_topic or topics.resolve(topics.AGENT_AUDIO)
    with B.BagReader(path) as r:
        have = r.topics
        if topic is None:
            topic = default
            if default not in have and fallback in have:
                print(
                    f"render: {path} has no {default}; drawing {fallback} instead", file=sys.stderr
                )
                topic = fallback
        motion, period, start = B.concat_motion(r.records(topic, B.HEAD_MOTION), path=path)
        inp = RenderInput(
            _check_motion(motion, f"{path} {topic}"),
            1.0 / period,
            title=f"{Path(path).name} {topic}",
            start_s=start * 1e-9,
        )
        for role, t in (("user", user_audio_topic), ("agent", agent_audio_topic)):
            if t and t in have and have[t].msgtype == B.AUDIO_CHUNK and have[t].count:
                audio, rate, a_start = B.concat_audio(r.records(t, B.AUDIO_CHUNK), path=path)
                if rate != inp.sample_rate:
                    from timar_ros.data.audio import resample

                    audio = resample(audio, rate, inp.sample_rate)
                setattr(inp, f"{role}_audio", audio)
                setattr(inp, f"{role}_offset_s", (a_start - start) * 1e-9)
    return inp


def voice_envelope(
    audio: np.ndarray | None, rate: int, fps: float, n_frames: int, offset_s: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per motion frame: (envelope in 0..1 on a 50 dB scale, voice activity bool).

    Frame i covers audio [i / fps, (i + 1) / fps) - offset; missing audio is silence. Voice
    activity: RMS above 1e-3 and within 30 dB of the clip's loud level (99th percentile).
    """
    env = np.zeros(n_frames, np.float32)
    if audio is None or len(audio) == 0:
        return env, np.zeros(n_frames, bool)
    win = rate / fps
    rms = np.zeros(n_frames, np.float64)
    a = np.asarray(audio, np.float64)
    for i in range(n_frames):
        s = int(round(i * win - offset_s * rate))
        e = int(round((i + 1) * win - offset_s * rate))
        s, e = max(s, 0), min(e, len(a))
        if e > s:
            rms[i] = np.sqrt(np.mean(a[s:e] ** 2))
    db = 20 * np.log10(rms + 1e-9)
    loud = np.percentile(db, 99) if n_frames else -180.0
    env = np.clip((db - (loud - 50.0)) / 50.0, 0.0, 1.0).astype(np.float32)
    vad = (rms > 1e-3) & (db > loud - 30.0)
    return env, vad


# --------------------------------------------------------------------------------------------
# Face geometry (pure numpy; testable without drawing)
# --------------------------------------------------------------------------------------------

# Head ellipsoid half-axes (x width, y height, z depth), in head units.
_AX = np.array([0.78, 1.0, 0.9])


def _rotation_matrix(rotvec: np.ndarray) -> np.ndarray:
    v = np.asarray(rotvec, np.float64)
    th = float(np.linalg.norm(v))
    if th < 1e-12:
        return np.eye(3)
    k = v / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)


def _on_surface(xy: np.ndarray, lift: float | np.ndarray = 0.0) -> np.ndarray:
    """Points on the front of the head ellipsoid at (x, y), pushed out along z by `lift`."""
    xy = np.atleast_2d(xy)
    r = 1.0 - (xy[:, 0] / _AX[0]) ** 2 - (xy[:, 1] / _AX[1]) ** 2
    z = _AX[2] * np.sqrt(np.clip(r, 0.0, None)) + lift
    return np.column_stack([xy, z])


def _curve(x0, x1, y, bend=0.0, n=12):
    x = np.linspace(x0, x1, n)
    t = np.linspace(-1, 1, n)
    return np.column_stack([x, y + bend * (1 - t**2)])


def _ellipse(cx, cy, rx, ry, n=24):
    t = np.linspace(0, 2 * np.pi, n)
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])


def face_controls(frame: np.ndarray) -> dict[str, float]:
    """The drawing controls of one motion frame [56] (see the module docstring)."""
    exp = frame[M.EXP]
    sq = lambda v: float(np.tanh(v / 2.0))  # noqa: E731
    return {
        "jaw_open": float(np.clip(frame[M.JAW][0], -0.05, 0.6)),
        "mouth_corners": sq(exp[EXPR_MOUTH_CORNERS]),
        "brow_raise": sq(exp[EXPR_BROW_RAISE]),
        "brow_knit": sq(exp[EXPR_BROW_KNIT]),
        "eyelid_close": 0.9 * max(0.0, sq(exp[EXPR_EYELID_CLOSE])),
    }


def face_geometry(frame: np.ndarray) -> dict[str, np.ndarray]:
    """2-D polylines [n, 2] (image x right, y up; NaN where hidden) of one motion frame [56]."""
    c = face_controls(frame)
    R = _rotation_matrix(frame[M.ROT])
    jaw = c["jaw_open"]
    parts3: dict[str, np.ndarray] = {}
    # Eyes: almond outline whose height shrinks with the eyelids; pupils.
    open_h = 0.075 * (1.0 - c["eyelid_close"])
    for side, sx in (("l", -1), ("r", 1)):
        ex = sx * 0.28
        t = np.linspace(0, 2 * np.pi, 20)
        eye = np.column_stack([ex + 0.12 * np.cos(t), 0.18 + open_h * np.sin(t)])
        parts3[f"eye_{side}"] = _on_surface(eye, 0.01)
        parts3[f"pupil_{side}"] = _on_surface(
            _ellipse(ex, 0.18, 0.035, min(0.035, open_h + 1e-3), 10), 0.02
        )
        # Brows: raised with brow_raise; inner end lowered with brow_knit.
        bx = np.linspace(sx * 0.14, sx * 0.42, 10)
        by = 0.33 + 0.09 * c["brow_raise"] + 0.03 * np.sin(np.linspace(0.3, np.pi - 0.3, 10))
        by = by - 0.07 * c["brow_knit"] * np.linspace(1.0, 0.0, 10)
        parts3[f"brow_{side}"] = _on_surface(np.column_stack([bx, by]), 0.02)
    # Nose: a ridge that sticks out, so yaw and pitch read at a glance.
    ridge = np.array([[0.0, 0.14], [0.0, -0.05], [0.0, -0.17]])
    parts3["nose"] = _on_surface(ridge, np.array([0.03, 0.16, 0.2]))
    parts3["nostrils"] = _on_surface(np.array([[-0.08, -0.2], [0.0, -0.22], [0.08, -0.2]]), 0.05)
    # Mouth: corners move with mouth_corners; the lower lip and the chin drop with the jaw.
    corner_y = -0.45 + 0.07 * c["mouth_corners"]
    drop = 0.9 * jaw
    upper = _curve(-0.25, 0.25, -0.43, bend=0.0)
    upper[:, 1] = np.where(np.abs(upper[:, 0]) > 0.2, corner_y, upper[:, 1])
    upper[[0, -1], 1] = corner_y
    lower_x = np.linspace(0.25, -0.25, 12)
    lower_y = (
        corner_y
        + (-0.45 - drop - corner_y) * (1 - (lower_x / 0.25) ** 2)
        - 0.02 * (1 - (lower_x / 0.25) ** 2)
    )
    lower = np.column_stack([lower_x, lower_y])
    parts3["mouth"] = _on_surface(np.vstack([upper, lower, upper[:1]]), 0.03)
    chin_x = np.linspace(-0.3, 0.3, 12)
    chin = np.column_stack([chin_x, -0.8 - drop * 0.6 + 0.12 * (chin_x / 0.3) ** 2])
    parts3["chin"] = _on_surface(chin, 0.0)

    out: dict[str, np.ndarray] = {}
    for name, p in parts3.items():
        q = p @ R.T
        # Hidden when the surface faces away: normal of the ellipsoid at p, rotated.
        n = (p / _AX**2) @ R.T
        xy = q[:, :2].copy()
        xy[n[:, 2] < 0.0] = np.nan
        out[name] = xy
    # Silhouette: the projection of the rotated ellipsoid is the ellipse with matrix
    # S = (R diag(ax^2) R^T)[:2, :2] (shadow of an ellipsoid), traced as L @ unit circle.
    S = (R @ np.diag(_AX**2) @ R.T)[:2, :2]
    L = np.linalg.cholesky(S)
    t = np.linspace(0, 2 * np.pi, 64)
    out["head"] = (L @ np.vstack([np.cos(t), np.sin(t)])).T
    return out


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------


class FaceRenderer:
    """Draws frames of a RenderInput into one reused matplotlib figure (Agg, no display)."""

    def __init__(self, inp: RenderInput, width: int = DEFAULT_WIDTH, height: int = DEFAULT_HEIGHT):
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if width < 64 or height < 64:
            raise RenderError(f"frame size {width}x{height} too small (min 64x64)")
        self.inp = inp
        self.width, self.height = int(width), int(height)
        n = len(inp.motion)
        self.user_env, self.user_vad = voice_envelope(
            inp.user_audio, inp.sample_rate, inp.fps, n, inp.user_offset_s
        )
        self.agent_env, self.agent_vad = voice_envelope(
            inp.agent_audio, inp.sample_rate, inp.fps, n, inp.agent_offset_s
        )
        dpi = 100
        self.fig = Figure(figsize=(self.width / dpi, self.height / dpi), dpi=dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.add_axes((0.02, 0.26, 0.96, 0.72))
        ax.set_xlim(-1.45, 1.45)
        ax.set_ylim(-1.55, 1.35)
        ax.set_aspect("equal", adjustable="box")
        ax.axis("off")
        self.ax = ax
        # Neck and shoulders: static, behind the head.
        ax.fill([-0.32, 0.32, 0.36, -0.36], [-0.7, -0.7, -1.3, -1.3], color="#e8c9a8", zorder=0)
        ax.plot(
            [-1.3, -0.45, 0.45, 1.3], [-1.55, -1.25, -1.25, -1.55], color="#555", lw=2, zorder=0
        )
        self.head = ax.fill([0], [0], color="#f6dcc0", ec="#6b4b3a", lw=2, zorder=1)[0]
        self.mouth_fill = ax.fill([0], [0], color="#5a1e1e", zorder=2)[0]
        g = face_geometry(np.zeros(M.MOTION_DIM, np.float32))
        style = {
            "eye_l": ("#222", 1.5),
            "eye_r": ("#222", 1.5),
            "brow_l": ("#4a3020", 3.5),
            "brow_r": ("#4a3020", 3.5),
            "nose": ("#8a5a44", 2.0),
            "nostrils": ("#8a5a44", 1.5),
            "mouth": ("#8b2c2c", 2.0),
            "chin": ("#6b4b3a", 1.5),
        }
        self.lines = {
            k: ax.plot(*g[k].T, color=col, lw=lw, zorder=3, solid_capstyle="round")[0]
            for k, (col, lw) in style.items()
        }
        self.pupils = {
            k: ax.fill(*g[k].T, color="#222", zorder=4)[0] for k in ("pupil_l", "pupil_r")
        }
        self.title = ax.text(
            0, 1.33, "", ha="center", va="top", fontsize=8, color="#333", linespacing=1.3
        )
        self.speaking = ax.text(
            0, -1.45, "", ha="center", va="bottom", fontsize=9, fontweight="bold"
        )
        # Strip: user envelope above the axis, agent below, cursor.
        sx = self.fig.add_axes((0.12, 0.04, 0.85, 0.19))
        t = np.arange(n) / inp.fps
        sx.fill_between(t, 0, self.user_env, color=USER_COLOR, alpha=0.35, lw=0, step="post")
        sx.fill_between(t, 0, -self.agent_env, color=AGENT_COLOR, alpha=0.35, lw=0, step="post")
        sx.fill_between(
            t, 0, np.where(self.user_vad, 1.0, 0.0), color=USER_COLOR, alpha=0.25, lw=0, step="post"
        )
        sx.fill_between(
            t,
            0,
            np.where(self.agent_vad, -1.0, 0.0),
            color=AGENT_COLOR,
            alpha=0.25,
            lw=0,
            step="post",
        )
        sx.axhline(0, color="#999", lw=0.5)
        sx.set_xlim(0, max(inp.duration_s, 1.0 / inp.fps))
        sx.set_ylim(-1.05, 1.05)
        sx.set_yticks([0.5, -0.5], ["user", "agent"], fontsize=8)
        sx.tick_params(axis="x", labelsize=7)
        if inp.user_audio is None and inp.agent_audio is None:
            sx.text(
                0.5,
                0.5,
                "no audio",
                transform=sx.transAxes,
                ha="center",
                va="center",
                color="#999",
                fontsize=8,
            )
        self.cursor = sx.axvline(0, color="red", lw=1.2)
        self.strip = sx
        # Blitting: draw the static parts once, then only the moving artists per frame.
        self._dynamic = [
            self.head,
            self.mouth_fill,
            *self.lines.values(),
            *self.pupils.values(),
            self.title,
            self.speaking,
            self.cursor,
        ]
        for a in self._dynamic:
            a.set_animated(True)
        self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(self.fig.bbox)

    def frame_index(self, t_s: float) -> int:
        return int(np.clip(round(t_s * self.inp.fps), 0, len(self.inp.motion) - 1))

    def draw(self, i: int) -> np.ndarray:
        """Frame i as an RGB uint8 array [height, width, 3]."""
        i = int(np.clip(i, 0, len(self.inp.motion) - 1))
        g = face_geometry(self.inp.motion[i])
        self.head.set_xy(g["head"])
        for k, ln in self.lines.items():
            ln.set_data(g[k][:, 0], g[k][:, 1])
        for k, p in self.pupils.items():
            xy = g[k]
            p.set_xy(xy if np.isfinite(xy).all() else np.zeros((1, 2)) + np.nan)
        m = g["mouth"]
        self.mouth_fill.set_xy(m if np.isfinite(m).all() else np.zeros((1, 2)) + np.nan)
        t = i / self.inp.fps
        name = self.inp.title if len(self.inp.title) <= 64 else "..." + self.inp.title[-61:]
        self.title.set_text(
            f"{name}\nt = {t:6.2f} s  frame {i}" if name else f"t = {t:6.2f} s  frame {i}"
        )
        who = [w for w, v in (("user", self.user_vad[i]), ("agent", self.agent_vad[i])) if v]
        self.speaking.set_text(" + ".join(who) + " speaking" if who else "")
        self.speaking.set_color(AGENT_COLOR if who == ["agent"] else USER_COLOR if who else "#333")
        self.cursor.set_xdata([t, t])
        self.canvas.restore_region(self._background)
        for a in self._dynamic:
            a.axes.draw_artist(a)
        buf = np.asarray(self.canvas.buffer_rgba())
        return np.ascontiguousarray(buf[: self.height, : self.width, :3])


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def contact_sheet_times(duration_s: float, n: int) -> list[float]:
    """n times spread evenly over the clip (frame centres)."""
    n = max(1, int(n))
    return [duration_s * (k + 0.5) / n for k in range(n)]


def render_png(
    inp: RenderInput,
    out: str | os.PathLike,
    *,
    times: list[float] | None = None,
    n: int = 12,
    cols: int = 4,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
) -> Path:
    """A contact sheet: frames at `times` (s; default n evenly spread) in a grid of `cols`
    columns. The PNG is (rows * height) x (cols * width) pixels."""
    from matplotlib.image import imsave

    r = FaceRenderer(inp, width, height)
    times = list(times) if times else contact_sheet_times(inp.duration_s, n)
    cols = max(1, min(int(cols), len(times)))
    rows = -(-len(times) // cols)
    sheet = np.full((rows * r.height, cols * r.width, 3), 255, np.uint8)
    for k, t in enumerate(times):
        y, x = divmod(k, cols)
        sheet[y * r.height : (y + 1) * r.height, x * r.width : (x + 1) * r.width] = r.draw(
            r.frame_index(t)
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    imsave(out, sheet)
    return out


def render_mp4(
    inp: RenderInput,
    out: str | os.PathLike,
    *,
    fps: float | None = None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    audio: bool = True,
    ffmpeg: str | None = None,
) -> Path:
    """Encode the clip as MP4 at `fps` (default: the motion's; lower subsamples frames) through
    ffmpeg; both speakers' audio, mixed, is muxed in when present. Raises RenderError when
    ffmpeg is missing or fails."""
    ffmpeg = ffmpeg or find_ffmpeg()
    if not ffmpeg:
        raise RenderError(
            "ffmpeg not found: install it (Debian/Ubuntu: apt-get install ffmpeg) "
            "or write a PNG contact sheet (OUT.png)"
        )
    fps = float(fps or inp.fps)
    if fps <= 0:
        raise RenderError(f"--fps must be > 0, got {fps}")
    w, h = int(width) // 2 * 2, int(height) // 2 * 2  # yuv420p needs even sizes
    r = FaceRenderer(inp, w, h)
    n_out = max(1, int(np.floor(inp.duration_s * fps + 1e-9)))
    with tempfile.TemporaryDirectory(prefix="timar_render_") as tmp:
        wav = None
        mix = mixed_audio(inp) if audio else None
        if mix is not None:
            import soundfile as sf

            wav = Path(tmp) / "mix.wav"
            sf.write(wav, mix, inp.sample_rate, subtype="PCM_16")
        try:
            with Mp4Writer(out, w, h, fps, audio_wav=wav, ffmpeg=ffmpeg) as video:
                for k in range(n_out):
                    video.write(r.draw(r.frame_index(k / fps)))
        except VideoError as exc:
            raise RenderError(str(exc)) from None
    return Path(out)


def mixed_audio(inp: RenderInput) -> np.ndarray | None:
    """Both speakers on the motion clock (frame 0 = sample 0), mixed to mono and limited."""
    tracks = [
        (a, off)
        for a, off in ((inp.user_audio, inp.user_offset_s), (inp.agent_audio, inp.agent_offset_s))
        if a is not None and len(a)
    ]
    if not tracks:
        return None
    n = int(round(inp.duration_s * inp.sample_rate))
    mix = np.zeros(n, np.float32)
    for a, off in tracks:
        s = int(round(off * inp.sample_rate))
        src = a[max(0, -s) :]
        dst = max(0, s)
        k = max(0, min(len(src), n - dst))
        mix[dst : dst + k] += src[:k]
    peak = float(np.max(np.abs(mix))) if n else 0.0
    return mix / peak * 0.9 if peak > 1.0 else mix


def load_input(
    src: str | os.PathLike,
    topic: str | None = None,
    audio: tuple[str, str] | None = None,
    motion_fps: float = M.FPS,
    user_audio_topic: str | None = None,
    agent_audio_topic: str | None = None,
) -> RenderInput:
    """A bag folder or a ``.npy`` motion [T, 56] (with optional user/agent WAVs) to draw."""
    src = Path(src)
    if not src.exists():
        raise RenderError(f"input not found: {src}")
    if src.suffix == ".npy":
        return load_npy(src, audio, motion_fps)
    if not (src.is_dir() or src.suffix in (".mcap", ".db3")):
        raise RenderError(
            f"{src}: neither a .npy motion array [T, 56] nor a rosbag2 bag "
            "(a folder, or its .mcap/.db3 file)"
        )
    if audio:
        raise RenderError(
            "--audio is for .npy input; a bag's audio comes from its AudioChunk topics"
        )
    return load_bag(src, topic, user_audio_topic, agent_audio_topic)


def render_file(
    inp: RenderInput,
    out: str | os.PathLike,
    *,
    fps: float | None = None,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    audio: bool = True,
    times: list[float] | None = None,
    frames: int = 12,
    cols: int = 4,
    log=print,
) -> Path:
    """Render to OUT by its suffix: .png a contact sheet, .mp4/.m4v/.mov a video (a contact sheet
    next to it, said through ``log``, when ffmpeg is missing). Returns the file written."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".mp4", ".m4v", ".mov"):
        raise RenderError(f"{out}: the output must end in .mp4 (video) or .png (contact sheet)")
    if suffix != ".png" and find_ffmpeg() is None:
        out = out.with_suffix(".png")
        log(
            f"ffmpeg not found (Debian/Ubuntu: apt-get install ffmpeg); writing a PNG contact "
            f"sheet instead: {out}"
        )
        suffix = ".png"
    if suffix == ".png":
        return render_png(inp, out, times=times, n=frames, cols=cols, width=width, height=height)
    return render_mp4(inp, out, fps=fps, width=width, height=height, audio=audio)
