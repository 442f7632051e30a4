"""``timar evaluate``: the progressive-context protocol through :class:`StreamingPolicy`.

    timar evaluate --checkpoint checkpoints/robot --data TEST_DIR --context 0 1 3 7 --out EVAL

For every context n (the number of previous turns visible, ``context_turns=n``) every test file
is generated once as the agent, its partner as the user (:func:`timar_ros.data.dualtalk.iter_test`:
truncated to whole turns), from a fresh stream with the same seed. By default the policy is
stepped turn by turn, exactly as the robot runs it; ``--offline`` uses ``run_offline`` (the
parallel forward, same numbers, faster). Predictions go to ``EVAL/context_<n>/<name>.npy``
[turns*F, 56]; the DualTalk metrics (:func:`timar_ros.eval.metrics.evaluate_dirs`) are computed
against the test folder. Writes ``EVAL/report.json`` (raw metrics under the reference's keys,
the published scaling, timings), ``EVAL/table.md`` (the layout of the paper's Table 1) and
``EVAL/plots/<name>.png`` (jaw opening, head pitch/yaw/roll and two expression coefficients,
prediction per context vs ground truth).

Every file uses the policy seed (not one RNG running through the files as in the reference),
so a file's prediction does not depend on the file order, ``--limit`` or the world size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from timar_ros.errors import InputError
from timar_ros.files import save_array, save_figure, write_text_atomic

# Traces plotted per file: (label, index into the 56-d vector).
PLOT_DIMS = [
    ("jaw opening (rad)", 50),
    ("head pitch (rad)", 53),
    ("head yaw (rad)", 54),
    ("head roll (rad)", 55),
    ("expression 0", 0),
    ("expression 1", 1),
]


class EvaluateError(InputError, RuntimeError):
    """Bad arguments or data; the message names the problem and the fix."""


def plot_traces(
    name: str, preds: dict[int, np.ndarray], gt: np.ndarray, path: Path, title: str = ""
) -> Path:
    """One figure per file: the :data:`PLOT_DIMS` traces, GT (black) and one line per context."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from timar_ros.motion import FPS

    fig, axes = plt.subplots(
        len(PLOT_DIMS), 1, figsize=(10, 1.6 * len(PLOT_DIMS)), dpi=100, sharex=True
    )
    for ax, (label, d) in zip(axes, PLOT_DIMS):
        n = min([len(gt)] + [len(p) for p in preds.values()])
        t = np.arange(n) / FPS
        ax.plot(t, gt[:n, d], color="k", lw=1.2, label="ground truth")
        for i, (ctx, p) in enumerate(sorted(preds.items())):
            ax.plot(t, p[:n, d], lw=0.9, color=f"C{i}", alpha=0.85, label=f"n = {ctx}")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=len(preds) + 1, loc="upper right")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or name, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)
    return path


def generate(policy, item, offline: bool, user_motion: bool = True) -> np.ndarray:
    """Agent motion [turns*F, 56] for one test item from a fresh stream of ``policy``."""
    um = item.user_motion if user_motion else None
    if offline:
        return policy.run_offline(item.user_audio, item.agent_audio, um)
    policy.reset()
    spt, F = policy.samples_per_turn, policy.frames_per_turn
    out = [
        policy.step(
            item.user_audio[t * spt : (t + 1) * spt],
            item.agent_audio[t * spt : (t + 1) * spt],
            None if um is None else um[t * F : (t + 1) * F],
        )
        for t in range(item.turns)
    ]
    return np.concatenate(out, 0)


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    contexts: list[int],
    out: str | Path,
    *,
    offline: bool = False,
    limit: int | None = None,
    seed: int = 0,
    backend: str = "torch",
    device: str = "cpu",
    user_motion: bool = True,
    plot_files: int = 3,
    jobs: int = 1,
    progress: bool = False,
    label: str = "",
    policy_options: dict | None = None,
) -> dict:
    """Run the protocol; returns the report (also written to ``out/report.json``)."""
    from timar_ros.data.dualtalk import iter_test
    from timar_ros.data.dualtalk_files import speaker_stems
    from timar_ros.eval.metrics import evaluate_dirs
    from timar_ros.eval.tables import markdown_table
    from timar_ros.files import write_json
    from timar_ros.runtime import StreamingPolicy, load_checkpoint_config

    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise EvaluateError(f"test folder not found: {data}")
    if not speaker_stems(data, require_partner=True):
        raise EvaluateError(
            f"{data}: no complete DualTalk speaker pairs (<clip>_speaker1/2 "
            f".wav + .npz); `timar synth {data}` writes a synthetic test split"
        )
    cfg = load_checkpoint_config(checkpoint)
    W = cfg.window_turns
    bad = [n for n in contexts if not 0 <= n <= W - 1]
    if bad:
        raise EvaluateError(
            f"--context {bad}: this model sees at most window_turns - 1 = {W - 1}"
            f" previous turns; use values in 0..{W - 1}"
        )
    if not contexts:
        raise EvaluateError("--context needs at least one value (e.g. 0 1 3 7)")
    names = speaker_stems(data, require_partner=True)
    if limit is not None:
        names = names[:limit]
    items = list(iter_test(data, cfg.frames_per_turn, names=names))
    if not items:
        raise EvaluateError(
            f"{data}: every file is shorter than one turn ({cfg.frames_per_turn} frames)"
        )
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "mode": "offline" if offline else "stepping",
        "backend": backend,
        "device": device,
        "seed": seed,
        "user_motion": user_motion,
        "files": len(items),
        "turns": int(sum(i.turns for i in items)),
        "seconds_of_audio": round(sum(i.turns for i in items) * cfg.frames_per_turn / 25, 1),
        "contexts": {},
    }
    kept: dict[int, dict[str, np.ndarray]] = {}
    plot_names = [i.name for i in items[:plot_files]]
    for n in contexts:
        policy = StreamingPolicy.from_checkpoint(
            checkpoint,
            backend=backend,
            device=device,
            seed=seed,
            context_turns=n,
            **(policy_options or {}),
        )
        report["model_id"] = policy.model_id
        pdir = out / f"context_{n}"
        pdir.mkdir(parents=True, exist_ok=True)
        for old in pdir.glob("*.npy"):  # a stale prediction would enter the metrics
            old.unlink()
        it = items
        if progress:
            from tqdm import tqdm

            it = tqdm(items, desc=f"n={n}", unit="file", file=sys.stderr)
        t0 = time.perf_counter()
        for item in it:
            pred = generate(policy, item, offline, user_motion)
            save_array(pdir / f"{item.name}.npy", pred.astype(np.float32))
            if item.name in plot_names:
                kept.setdefault(n, {})[item.name] = pred
        gen_s = time.perf_counter() - t0
        # Every test file must have a prediction: a missing one is an error, not a smaller average.
        rep = evaluate_dirs(pdir, data, seed=seed, jobs=jobs, names=[i.name for i in items])
        write_json(pdir / "metrics.json", rep)
        report["contexts"][str(n)] = {
            "metrics": rep["metrics"],
            "pub": rep["pub"],
            "files": rep["files"],
            "predictions": rep["predictions"],
            "skipped": rep["skipped"],
            "excluded": rep["excluded"],
            "excluded_files": rep["excluded_files"],
            "generate_s": round(gen_s, 2),
            "ms_per_turn": round(1000 * gen_s / max(report["turns"], 1), 2),
        }
    rows = [
        (
            f"{label + ' ' if label else ''}n = {n}",
            report["contexts"][str(n)]["metrics"],
            report["contexts"][str(n)],
        )
        for n in contexts
    ]
    title = (
        f"{report.get('model_id', '')} on {data.name} ({len(items)} files, "
        f"{report['mode']}, seed {seed})"
    )
    write_text_atomic(out / "table.md", markdown_table(rows, title))
    for name in plot_names:
        gt = next(i.agent_motion for i in items if i.name == name)
        plot_traces(
            name,
            {n: kept[n][name] for n in contexts if name in kept.get(n, {})},
            gt,
            out / "plots" / f"{name}.png",
            f"{report.get('model_id', '')}: {name}",
        )
    report["plots"] = [str(out / "plots" / f"{n}.png") for n in plot_names]
    write_json(out / "report.json", report)
    return report
