"""``timar evaluate``: the progressive-context protocol through :class:`StreamingPolicy`.

    timar evaluate --checkpoint checkpoints/robot --data TEST_DIR --context 0 1 3 7 --out EVAL

For every context n (the policy sees the inputs of the last n turns and the current one,
``context_turns=n``, as the reference crops its window; ``stream``: the full streamed history, as
the robot runs it) every test file is generated as the agent, its partner as the user
(:func:`timar_ros.data.dualtalk.iter_test`: truncated to whole turns), from a fresh stream, once
per sampling seed. By default the policy is stepped turn by turn, exactly as the robot runs it;
``--offline`` uses ``run_offline`` (same numbers; parallel where the backend can). Predictions of
the first seed go to ``EVAL/context_<n>/<name>.npy`` [turns*F, 56], of the others to
``EVAL/context_<n>/seed_<s>/``. The DualTalk metrics (:func:`timar_ros.eval.metrics.evaluate_dirs`)
are computed for the first seed; the behaviour metrics (:mod:`timar_ros.eval.behaviour`:
reaction timing, mimicry, correlation, variance and jitter ratios) for every seed, with the
oracle (the ground truth scored as a prediction). Writes ``EVAL/report.json`` (raw metrics under
the reference's keys, the published scaling, behaviour per seed and aggregated, timings),
``EVAL/table.md`` (the layout of the paper's Table 1, then the behaviour table: mean +- std over
seeds), ``EVAL/plots/<name>.png`` (jaw opening, head pitch/yaw/roll and two expression
coefficients, prediction per context vs ground truth) and ``EVAL/side_by_side.png`` (ground truth
and generated head and face of a listening and a speaking stretch).

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


def plot_traces(name: str, preds: dict, gt: np.ndarray, path: Path, title: str = "") -> Path:
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
        for i, (ctx, p) in enumerate(preds.items()):
            ax.plot(t, p[:n, d], lw=0.9, color=f"C{i}", alpha=0.85, label=context_label(ctx))
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


def side_by_side_picture(bfile, pred: np.ndarray, item, path: Path, title: str) -> Path:
    """:func:`timar_ros.viz.side_by_side.side_by_side` of one test file, with the reference
    reaction onsets (the rules', else those detected in the ground truth) and the partner's
    pause starts marked."""
    from timar_ros.eval import behaviour
    from timar_ros.viz.side_by_side import side_by_side

    listening = behaviour.listening_mask(bfile.agent_active)
    if bfile.rule_events is not None:
        onsets = [e["frame"] for e in bfile.rule_events]
    else:
        onsets = [o for o, _, _ in behaviour.detect_reactions(bfile.gt, listening)]
    return side_by_side(
        bfile.gt,
        pred,
        path,
        user_audio=item.user_audio,
        agent_audio=item.agent_audio,
        onsets=onsets,
        pauses=behaviour.pause_starts(bfile.partner_active).tolist(),
        title=title,
    )


def _mean_std(per_seed: list[dict]) -> dict:
    """Per-seed boundary_jitter dicts -> {group: {key: [mean, std]}} (None where absent)."""
    out: dict = {}
    for g in per_seed[0] if per_seed else {}:
        out[g] = {}
        for k in per_seed[0][g]:
            v = [p[g][k] for p in per_seed if p[g][k] is not None]
            out[g][k] = [float(np.mean(v)), float(np.std(v))] if v else None
    return out


def generate(policy, item, offline: bool, user_motion: bool = True, schedule=None) -> np.ndarray:
    """Agent motion [turns*F, 56] for one test item from a fresh stream of ``policy``; with a
    streaming ``schedule`` (:class:`~timar_ros.runtime.ticks.TickSchedule`) tick by tick, as
    the live node runs it."""
    um = item.user_motion if user_motion else None
    if schedule is not None and schedule.streaming:
        return policy.run_ticks(item.user_audio, item.agent_audio, schedule, um)
    if offline:
        return policy.run_offline(item.user_audio, item.agent_audio, um)
    policy.reset()
    if getattr(policy, "audio_norm", "none") == "file":  # the reference's whole-file statistics
        policy.fit_file_audio(item.user_audio, item.agent_audio)
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


STREAM = "stream"  # the context name of the full streamed history (context_turns=None)


def context_name(n) -> str:
    """The report's key of a context: 'stream' or the crop's turn count."""
    return STREAM if n is None or n == STREAM else str(int(n))


def context_label(n) -> str:
    """A context in tables and legends: 'stream' or 'n = <turns>'."""
    key = context_name(n)
    return key if key == STREAM else f"n = {key}"


def parse_contexts(values) -> list:
    """CLI values (ints or 'stream') -> ints and None (stream), in the given order."""
    out = []
    for v in values:
        if str(v) == STREAM:
            out.append(None)
            continue
        try:
            out.append(int(v))
        except ValueError:
            raise EvaluateError(
                f"--context {v!r}: give turn counts (0 1 3 7) or 'stream'"
            ) from None
    return out


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    contexts: list,
    out: str | Path,
    *,
    offline: bool = False,
    limit: int | None = None,
    seed: int = 0,
    seeds: list[int] | None = None,
    backend: str = "torch",
    device: str = "cpu",
    user_motion: bool = True,
    plot_files: int = 3,
    jobs: int = 1,
    progress: bool = False,
    label: str = "",
    policy_options: dict | None = None,
    tick_s: float | None = None,
    lookahead_s: float = 0.0,
) -> dict:
    """Run the protocol; returns the report (also written to ``out/report.json``).

    ``contexts``: ints n (crop to n previous turns) and/or None (the streamed history).
    ``seeds``: sampling seeds (default ``[seed]``); the DualTalk table uses the first.
    ``tick_s`` (< one turn): the streamed history runs inside the turn, a block every tick_s
    with ``lookahead_s`` of the partner heard beyond it (:mod:`timar_ros.runtime.ticks`);
    crops (ints in ``contexts``) stay in the 1-s mode."""
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
    contexts = [None if n == STREAM else n for n in contexts]
    seeds = [int(x) for x in (seeds if seeds else [seed])]
    if len(set(seeds)) != len(seeds):
        raise EvaluateError(f"--seeds {seeds}: each seed once")
    seed = seeds[0]
    bad = [n for n in contexts if n is not None and not 0 <= n <= W - 1]
    if bad:
        raise EvaluateError(
            f"--context {bad}: this model sees at most window_turns - 1 = {W - 1}"
            f" previous turns; use values in 0..{W - 1} or 'stream' (the full streamed history)"
        )
    if not contexts:
        raise EvaluateError("--context needs at least one value (e.g. 0 1 3 7)")
    schedule = None
    if tick_s is not None:
        from timar_ros.runtime.ticks import TickSchedule

        try:
            schedule = TickSchedule.from_seconds(cfg.frames_per_turn, tick_s, lookahead_s)
        except ValueError as exc:
            raise EvaluateError(f"--tick-s/--lookahead-s: {exc}") from exc
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
        "seeds": seeds,
        "user_motion": user_motion,
        "tick_s": None if schedule is None else schedule.tick_s,
        "lookahead_s": None if schedule is None else schedule.lookahead_s,
        "files": len(items),
        "turns": int(sum(i.turns for i in items)),
        "seconds_of_audio": round(sum(i.turns for i in items) * cfg.frames_per_turn / 25, 1),
        "contexts": {},
    }
    from timar_ros.eval import behaviour
    from timar_ros.eval.boundaries import boundary_jitter

    kept: dict[str, dict[str, np.ndarray]] = {}
    plot_names = [i.name for i in items[:plot_files]]
    bfiles = behaviour.load_files(items, {}, data)
    report["behaviour"] = {
        "oracle": behaviour.oracle(bfiles),
        "rule_lags": behaviour.rule_lags(bfiles),
    }
    for n in contexts:
        key = context_name(n)
        pdir = out / f"context_{key}"
        pdir.mkdir(parents=True, exist_ok=True)
        per_seed, gen_s, seams = [], 0.0, []
        for si, s in enumerate(seeds):
            policy = StreamingPolicy.from_checkpoint(
                checkpoint,
                backend=backend,
                device=device,
                seed=s,
                context_turns=n,
                **(policy_options or {}),
            )
            report["model_id"] = policy.model_id
            sdir = pdir if si == 0 else pdir / f"seed_{s}"
            sdir.mkdir(parents=True, exist_ok=True)
            for old in sdir.glob("*.npy"):  # a stale prediction would enter the metrics
                old.unlink()
            it = items
            if progress:
                from tqdm import tqdm

                it = tqdm(items, desc=f"n={key} seed {s}", unit="file", file=sys.stderr)
            t0 = time.perf_counter()
            preds = {}
            for item in it:
                pred = generate(policy, item, offline, user_motion, schedule if n is None else None)
                save_array(sdir / f"{item.name}.npy", pred.astype(np.float32))
                preds[item.name] = pred
                if si == 0 and item.name in plot_names:
                    kept.setdefault(key, {})[item.name] = pred
            if si == 0:
                gen_s = time.perf_counter() - t0
            per_seed.append(behaviour.score(behaviour.with_pred(bfiles, preds)))
            seams.append(
                boundary_jitter(
                    [preds[i.name] for i in items],
                    cfg.frames_per_turn,
                    schedule.tick_frames if (schedule and n is None) else cfg.frames_per_turn,
                )
            )
        # Every test file must have a prediction: a missing one is an error, not a smaller average.
        rep = evaluate_dirs(pdir, data, seed=seed, jobs=jobs, names=[i.name for i in items])
        write_json(pdir / "metrics.json", rep)
        report["contexts"][key] = {
            "metrics": rep["metrics"],
            "pub": rep["pub"],
            "files": rep["files"],
            "predictions": rep["predictions"],
            "skipped": rep["skipped"],
            "excluded": rep["excluded"],
            "excluded_files": rep["excluded_files"],
            "generate_s": round(gen_s, 2),
            "ms_per_turn": round(1000 * gen_s / max(report["turns"], 1), 2),
            "behaviour": behaviour.aggregate(per_seed),
            "behaviour_per_seed": per_seed,
            "seam_jitter": _mean_std(seams),
        }

    def row_label(n) -> str:
        return f"{label + ' ' if label else ''}" + context_label(n)

    keys = [context_name(n) for n in contexts]
    rows = [
        (row_label(n), report["contexts"][k]["metrics"], report["contexts"][k])
        for n, k in zip(contexts, keys)
    ]
    title = (
        f"{report.get('model_id', '')} on {data.name} ({len(items)} files, "
        f"{report['mode']}, seed {seed})"
    )
    brows = [("oracle (ground truth)", report["behaviour"]["oracle"])] + [
        (row_label(n), report["contexts"][k]["behaviour"]) for n, k in zip(contexts, keys)
    ]
    btitle = f"behaviour, mean ± std over seeds {seeds}"
    write_text_atomic(
        out / "table.md", markdown_table(rows, title) + "\n" + behaviour.markdown(brows, btitle)
    )
    for name in plot_names:
        gt = next(i.agent_motion for i in items if i.name == name)
        plot_traces(
            name,
            {k: kept[k][name] for k in keys if name in kept.get(k, {})},
            gt,
            out / "plots" / f"{name}.png",
            f"{report.get('model_id', '')}: {name}",
        )
    report["plots"] = [str(out / "plots" / f"{n}.png") for n in plot_names]
    if plot_names:  # the first plotted file, the last context asked for, the first seed
        report["side_by_side"] = str(
            side_by_side_picture(
                bfiles[0],
                kept[keys[-1]][plot_names[0]],
                items[0],
                out / "side_by_side.png",
                f"{report.get('model_id', '')}, {row_label(contexts[-1])}: {plot_names[0]}",
            )
        )
    write_json(out / "report.json", report)
    return report
