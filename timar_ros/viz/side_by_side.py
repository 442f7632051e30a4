"""Ground truth next to generated motion, for a listening and a speaking stretch (one PNG).

For each stretch: a row of faces of the ground truth, a row of the generated motion at the same
instants (the parametric face of :mod:`timar_ros.viz.render`), and the traces that matter there
(head pitch and roll, jaw opening, smile), with the partner's pause starts and the reference
reaction onsets marked. The listening stretch is chosen around a listener reaction of the
reference, the speaking stretch in the agent's longest turn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from timar_ros.data.synthetic.signals import runs
from timar_ros.motion import FPS

TRACES = [("head pitch (rad)", 53), ("head roll (rad)", 55), ("jaw (rad)", 50), ("smile", 1)]


def pick_stretches(
    listening: np.ndarray, agent_speaking: np.ndarray, onsets: list[int], length_s: float = 3.0
) -> dict[str, int]:
    """Start frames of a 'listening' stretch (1 s before the reaction onset whose stretch is the
    most listening, else the longest listening run) and a 'speaking' one (the middle of the
    agent's longest speech run)."""
    n = int(round(length_s * FPS))
    T = len(listening)
    out: dict[str, int] = {}
    starts = [int(np.clip(f - FPS, 0, max(0, T - n))) for f in onsets]
    if starts:
        out["listening"] = max(starts, key=lambda s: (listening[s : s + n].mean(), -s))
    for name, mask in (("listening", listening), ("speaking", agent_speaking)):
        if name in out:
            continue
        spans = runs(mask)
        if spans:
            a, b = max(spans, key=lambda r: r[1] - r[0])
            out[name] = int(np.clip((a + b) // 2 - n // 2, 0, max(0, T - n)))
    return out


def side_by_side(
    gt: np.ndarray,
    pred: np.ndarray,
    out: str | Path,
    *,
    user_audio: np.ndarray | None = None,
    agent_audio: np.ndarray | None = None,
    stretches: dict[str, int] | None = None,
    onsets: list[int] | None = None,
    pauses: list[int] | None = None,
    length_s: float = 3.0,
    faces: int = 5,
    title: str = "",
) -> Path:
    """Write the picture; ``gt``/``pred`` [T, 56] at 25 fps, ``stretches`` {name: start frame}
    (default: :func:`pick_stretches` from the audio), ``onsets``/``pauses`` frames to mark
    (pauses default: from ``user_audio``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timar_ros.eval.behaviour import listening_mask, pause_starts, speech_activity
    from timar_ros.files import save_figure
    from timar_ros.viz.render import FaceRenderer, RenderInput

    T = min(len(gt), len(pred))
    gt, pred = np.asarray(gt[:T], np.float32), np.asarray(pred[:T], np.float32)
    onsets = list(onsets or [])
    if pauses is None and user_audio is not None:
        pauses = pause_starts(speech_activity(user_audio, T)).tolist()
    if stretches is None:
        if agent_audio is not None:
            act = speech_activity(agent_audio, T)
        else:
            act = np.zeros(T, bool)
        stretches = pick_stretches(listening_mask(act), act & ~listening_mask(act, 0.0), onsets)
    n = int(round(length_s * FPS))
    renders = {
        k: FaceRenderer(
            RenderInput(m, user_audio=user_audio, agent_audio=agent_audio, title=k),
            width=240,
            height=300,
        )
        for k, m in (("ground truth", gt), ("generated", pred))
    }
    names = [k for k in ("listening", "speaking") if k in stretches]
    rows = 2 + len(TRACES) + 1  # faces, faces, one axis per trace, a gap
    fig = plt.figure(figsize=(2.4 * faces, 9.0 * len(names)), dpi=80)
    grid = fig.add_gridspec(
        rows * len(names), faces, height_ratios=([3, 3] + [0.8] * len(TRACES) + [0.5]) * len(names)
    )
    for si, name in enumerate(names):
        s = int(stretches[name])
        times = np.linspace(s, min(T - 1, s + n - 1), faces).round().astype(int)
        for ri, (label, r) in enumerate(renders.items()):
            for c, f in enumerate(times):
                ax = fig.add_subplot(grid[rows * si + ri, c])
                ax.imshow(r.draw(int(f)))
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(label, fontsize=10)
                ax.set_title(f"{name}, t = {f / FPS:.2f} s", fontsize=8)
        t = np.arange(s, min(T, s + n)) / FPS
        for k, (label, d) in enumerate(TRACES):
            ax = fig.add_subplot(grid[rows * si + 2 + k, :])
            ax.plot(t, gt[s : s + n, d], color="k", lw=1.2, label="ground truth")
            ax.plot(t, pred[s : s + n, d], color="C1", lw=1.0, label="generated")
            for f in onsets:
                if s <= f < s + n:
                    ax.axvline(f / FPS, color="C2", ls="--", lw=1)
            for f in pauses or []:
                if s <= f < s + n:
                    ax.axvline(f / FPS, color="C0", ls=":", lw=1)
            ax.set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
            if k < len(TRACES) - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel(
                    "time (s)   black: ground truth, orange: generated, green dashes: reference "
                    "reaction onset, blue dots: partner pause start",
                    fontsize=8,
                )
    fig.suptitle(title or "ground truth vs generated", fontsize=11)
    fig.tight_layout()
    out = Path(out)
    save_figure(fig, out)
    plt.close(fig)
    for r in renders.values():
        r.fig.clear()
    return out
