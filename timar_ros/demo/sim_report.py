"""What the demo shows of the simulated head (``timar demo --sim mujoco``): the tracking figures
of commanded vs simulated joint positions over the conversation, a plot of them, and a video of
the generated motion (the face render) next to the simulated head (MuJoCo's camera), both on
the bag's clock, with the conversation's sound."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

VIDEO_FPS = 12.5  # as render.mp4
PANEL = (400, 300)  # width, height of each half of the video


def trace_arrays(trace, conversation_only: bool = True):
    """sim_head's trace -> (times [T] s, commands [T, n], measured [T, n]); with
    ``conversation_only`` from the first command that moves a joint (before it the head only
    waits)."""
    if conversation_only:
        first = trace[0][1]
        start = next((i for i, e in enumerate(trace) if np.any(e[1] != first)), 0)
        trace = trace[max(start - 1, 0) :]
    return tuple(np.array([e[k] for e in trace]) for k in range(3))


def sim_figures(trace, head, real_time_factor: float, overruns: int) -> dict:
    """trace: sim_head's (time s, command [n], measured [n]) per tick -> the summary's "sim"
    entry: tracking per joint (RMS, worst, best lag), how often each limit acted, the real-time
    factor of the physics on this CPU."""
    from timar_ros.sim.tracking import tracking_figures

    t, cmd, meas = trace_arrays(trace)
    counts = head.count_summary()
    steps = max(counts["steps"], 1)
    return {
        "joints": head.joint_names,
        "tracking": tracking_figures(t, cmd, meas, head.joint_names),
        "commands": counts["commands"],
        "position_clipped_share": {
            k: round(v / max(counts["commands"], 1), 4)
            for k, v in counts["position_clipped"].items()
        },
        "velocity_limited_share": {
            k: round(v / steps, 4) for k, v in counts["velocity_limited"].items()
        },
        "effort_saturated_share": {
            k: round(v / steps, 4) for k, v in counts["effort_saturated"].items()
        },
        "physics_real_time_factor": round(real_time_factor, 1),
        "simulated_s": round(head.time, 2),
        "overruns": overruns,
    }


def plot_tracking(trace, figures: dict, out: Path) -> Path:
    """Commanded vs simulated position per joint over the conversation -> PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    t, cmd, meas = trace_arrays(trace)
    t = t - t[0]
    names = figures["joints"]
    fig = Figure(figsize=(14, 2.0 * ((len(names) + 1) // 2)), dpi=90)
    axes = fig.subplots((len(names) + 1) // 2, 2, sharex=True, squeeze=False).ravel()
    for j, (ax, name) in enumerate(zip(axes, names)):
        f = figures["tracking"]["joints"][name]
        ax.plot(t, cmd[:, j], color="#999", lw=1.2, label="commanded (head_retargeter)")
        ax.plot(t, meas[:, j], color="#c33", lw=0.9, label="simulated (MuJoCo)")
        ax.set_title(
            f"{name}: RMS {f['rms_rad'] * 1e3:.1f} mrad, worst {f['worst_rad'] * 1e3:.0f} mrad, "
            f"lag {f['lag_s'] * 1e3:.0f} ms",
            fontsize=9,
        )
        ax.set_ylabel("rad", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names) :]:
        ax.axis("off")
    axes[0].legend(fontsize=8, loc="upper right")
    for ax in axes[-2:]:
        ax.set_xlabel("s", fontsize=8)
    fig.suptitle(
        f"servo commands vs the simulated head (physics at "
        f"{figures['physics_real_time_factor']:g}x real time on this CPU)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(out)
    return out


def render_side_by_side(bag: Path, trace, head_factory, out: Path, log=print) -> Path:
    """An MP4 of the generated motion (left, the face render of the bag's HeadMotion) next to
    the simulated head (right, MuJoCo's camera on the positions sim_head measured at the same
    time), with the conversation's sound; a PNG contact sheet when ffmpeg is missing."""
    import soundfile as sf

    from timar_ros.viz import render
    from timar_ros.viz.video import Mp4Writer, find_ffmpeg

    inp = render.load_bag(bag)
    t, _, meas = trace_arrays(trace, conversation_only=False)
    head = head_factory(PANEL)
    face = render.FaceRenderer(inp, *PANEL)
    n = max(1, int(np.floor(inp.duration_s * VIDEO_FPS)))

    def frame(k: int) -> np.ndarray:
        ts = inp.start_s + k / VIDEO_FPS
        q = np.array([np.interp(ts, t, meas[:, j]) for j in range(meas.shape[1])])
        return np.hstack([face.draw(face.frame_index(k / VIDEO_FPS)), head.render_pose(q)])

    try:
        if find_ffmpeg() is None:
            out = out.with_suffix(".png")
            log(f"  ffmpeg not found (apt-get install ffmpeg): writing a contact sheet {out.name}")
            picks = np.linspace(0, n - 1, 6).astype(int)
            sheet = np.vstack([frame(k) for k in picks])
            import matplotlib.image

            matplotlib.image.imsave(out, sheet)
            return out
        with tempfile.TemporaryDirectory(prefix="timar_sim_") as tmp:
            wav = None
            mix = render.mixed_audio(inp)
            if mix is not None:
                wav = Path(tmp) / "mix.wav"
                sf.write(wav, mix, inp.sample_rate, subtype="PCM_16")
            with Mp4Writer(out, 2 * PANEL[0], PANEL[1], VIDEO_FPS, audio_wav=wav) as video:
                for k in range(n):
                    video.write(frame(k))
        return out
    finally:
        head.close()


def head_with_panel_size(sim_config, urdf):
    """A factory of kinematic heads rendering at a given (width, height)."""
    from timar_ros.sim.head import MujocoHead

    def make(size):
        cam = dataclasses.replace(sim_config.camera, width=size[0], height=size[1])
        return MujocoHead(urdf, dataclasses.replace(sim_config, camera=cam))

    return make
