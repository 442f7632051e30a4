#!/usr/bin/env python3
"""Reproduce the bundled checkpoint ``checkpoints/robot/`` (and its MLP-head comparison).

Stages (all by default, or pick with ``--stages``):

    data     synthetic splits with `timar synth` (procedural + flite TTS voices when installed):
             train (240 conversations, seed 0), val (8, seed 3), test (24, seed 1) from
             config/synthetic.yaml and ood (24, seed 2) from config/synthetic_ood.yaml
    train    `timar train` of the robot preset (diffusion head) and of the MLP-head variant,
             140 steps each (runs robot-140, robot-mlp); then the bundled run ``robot``: a copy
             of robot-140 resumed to 300 and to 600 steps (each resume with a longer --steps
             restarts the cosine from where the new schedule puts it)
    export   the EMA weights stored as float16 (half the size; the card states how far the
             rounding can move the outputs, measured by float16_output_change):
             the robot run -> checkpoints/robot/, the others -> WORK/export/<run>/
    eval     `timar evaluate` of the exported models: each on test at n = 0 and 7 and on ood
             at n = 7
    bundle   write checkpoints/robot/model_card.json / model_card.md (data, steps, wall time,
             hardware, metrics)

The data and runs go to ``--work`` (default /tmp/timar_bundled; a few hundred MB, never
committed). The synthetic data are a test bench of known rules, not human motion.

    python tools/train_bundled.py                      # everything (about 45 min on 2 CPU cores)
    python tools/train_bundled.py --stages export eval bundle  # after training
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

SPLITS = {  # name -> (config, conversations, seed)
    "train": ("config/synthetic.yaml", 240, 0),
    "val": ("config/synthetic.yaml", 8, 3),
    "test": ("config/synthetic.yaml", 24, 1),
    "ood": ("config/synthetic_ood.yaml", 24, 2),
}
# The recipe for a ~20-minute CPU run: 8-turn windows (the model's window), batch 4, a short
# warmup and a cosine decay, and a fast EMA (0.97: the reference's 0.9999 would leave the
# exported weights at their initialisation after 140 steps). Attention dropout is off: it costs
# a third of the step on CPU and a run shorter than one epoch does not overfit.
TRAIN_ARGS = [
    "--preset",
    "robot",
    "--set",
    "attn_dropout=0.0",
    "--turns",
    "8",
    "--batch-size",
    "4",
    "--steps",
    "140",
    "--lr",
    "5e-4",
    "--warmup-steps",
    "20",
    "--schedule",
    "cosine",
    "--min-lr",
    "2e-5",
    "--ema",
    "0.97",
    "--seed",
    "0",
    "--save-every",
    "20",
    "--val-every",
    "35",
    "--val-batches",
    "4",
    "--log-every",
    "5",
]
MODELS = {"robot-140": [], "robot-mlp": ["--set", "head=mlp"]}  # equal budget: 140 steps
RESUMES = [
    (300, ["--save-every", "20", "--val-every", "80"]),  # robot-140 -> robot
    (600, ["--save-every", "50", "--val-every", "150"]),
]
RUNS = ["robot", "robot-140", "robot-mlp"]
LABELS = {
    "robot": "TIMAR robot, 600 steps (bundled)",
    "robot-140": "TIMAR robot, 140 steps",
    "robot-mlp": "MLP head, 140 steps",
}
EVALS = [(m, split, ctx) for m in RUNS for split, ctx in (("test", [0, 7]), ("ood", [7]))]
BUNDLE = REPO / "checkpoints" / "robot"


def sh(*args: str) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(list(args), check=True, cwd=REPO)


def stage_data(work: Path) -> None:
    for name, (cfg, n, seed) in SPLITS.items():
        sh(
            PY,
            "-m",
            "timar_ros.cli",
            "synth",
            str(work / "data" / name),
            "--config",
            cfg,
            "--conversations",
            str(n),
            "--seed",
            str(seed),
            "--tts",
            "auto",
        )


def stage_train(work: Path) -> None:
    for name, extra in MODELS.items():
        sh(
            PY,
            "-m",
            "timar_ros.cli",
            "train",
            "--data",
            str(work / "data" / "train"),
            "--val",
            str(work / "data" / "val"),
            "--out",
            str(work / "runs" / name),
            *TRAIN_ARGS,
            *extra,
        )
    shutil.copytree(work / "runs" / "robot-140", work / "runs" / "robot", dirs_exist_ok=True)
    for steps, extra in RESUMES:
        sh(
            PY,
            "-m",
            "timar_ros.cli",
            "train",
            "--resume",
            str(work / "runs" / "robot"),
            "--steps",
            str(steps),
            *extra,
        )


def export_fp16(run: Path, dst: Path) -> Path:
    """model.safetensors (float16) + config.json of a run folder into ``dst``."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    sd = load_file(str(run / "model.safetensors"))
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    save_file(
        sd,
        str(dst / "model.safetensors"),
        metadata={"format": "pt", "producer": "timar_ros tools/train_bundled.py (float16)"},
    )
    (dst / "model.safetensors").chmod(0o644)
    shutil.copy2(run / "config.json", dst / "config.json")
    return dst


def exported(work: Path, model: str) -> Path:
    return BUNDLE if model == "robot" else work / "export" / model


def stage_export(work: Path) -> None:
    for model in RUNS:
        print(
            f"+ export {work / 'runs' / model} -> "
            f"{export_fp16(work / 'runs' / model, exported(work, model))}"
        )


def stage_eval(work: Path, offline: bool) -> None:
    for model, split, ctx in EVALS:
        sh(
            PY,
            "-m",
            "timar_ros.cli",
            "evaluate",
            "--checkpoint",
            str(exported(work, model)),
            "--data",
            str(work / "data" / split),
            "--context",
            *map(str, ctx),
            "--out",
            str(work / "eval" / f"{model}-{split}"),
            "--label",
            model,
            *(["--offline"] if offline else []),
        )


def fp16_storage_claim(ckpt: Path, seeds: int = 3) -> dict:
    """The card's storage claim, measured: how far float16 rounding can move the motion of 8 s
    of the demo conversation (3 draws per seed), and a stated bound with 2x headroom."""
    import numpy as np
    import soundfile as sf

    from timar_ros.runtime.checkpoint import float16_output_change, load_checkpoint
    from timar_ros.runtime.torch_policy import TorchStreamingPolicy

    demo = REPO / "data" / "demo_conversation"
    user, _ = sf.read(demo / "demo_speaker1.wav", dtype="float32")
    robot, _ = sf.read(demo / "demo_speaker2.wav", dtype="float32")

    def run(p):
        p.reset()
        n = p.samples_per_turn
        return np.concatenate(
            [p.step(user[k * n : (k + 1) * n], robot[k * n : (k + 1) * n], None) for k in range(8)]
        )

    model, _ = load_checkpoint(ckpt)
    measured = [
        round(
            float16_output_change(lambda m: TorchStreamingPolicy(m, seed=0), model, run, seed=s), 6
        )
        for s in range(seeds)
    ]
    bound = float(f"{2 * max(measured):.1g}")
    return {
        "dtype": "float16",
        "loaded_as": "float32",
        "max_output_change": bound,
        "measured_output_change": measured,
        "how": "weights moved uniformly within half a float16 step (every float32 model that "
        "rounds to these weights lies in that box), 3 draws each of 3 seeds; max |change| "
        "of the motion on 8 s of the bundled demo conversation "
        "(timar_ros.runtime.checkpoint.float16_output_change)",
    }


def _read(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def stage_bundle(work: Path) -> None:
    run = work / "runs" / "robot"
    shutil.copy2(run / "loss.png", BUNDLE / "loss.png")
    card = _read(run / "model_card.json")
    mlp = _read(work / "runs" / "robot-mlp" / "model_card.json")
    r140 = _read(work / "runs" / "robot-140" / "model_card.json")
    data = {s: _read(work / "data" / s / "synthetic_config.json") for s in SPLITS}
    evals, rows = {}, {"test": [], "ood": []}
    for model, split, ctx in EVALS:
        rep = _read(work / "eval" / f"{model}-{split}" / "report.json")
        if rep is None:
            continue
        evals[f"{model}/{split}"] = {
            "files": rep["files"],
            "mode": rep["mode"],
            "seed": rep["seed"],
            "contexts": {
                n: {"pub": c["pub"], "metrics": c["metrics"], "ms_per_turn": c["ms_per_turn"]}
                for n, c in rep["contexts"].items()
            },
        }
        for n in ctx:
            label = f"{LABELS[model]}, n = {n}"
            rows[split].append((label, rep["contexts"][str(n)]["metrics"]))
    full = {
        **card,
        "name": "robot",
        "description": "TIMAR robot preset trained on SYNTHETIC conversations (a test bench of "
        "known rules from timar_ros.data.synthetic; NOT human data). It shows the "
        "pipeline end to end; it is not a model of human conversational behaviour.",
        "training_data": {
            s: {
                "conversations": d["conversations"],
                "seed": d["seed"],
                "config": d["config"]["name"],
            }
            for s, d in data.items()
            if d
        },
        "reproduce": "python tools/train_bundled.py",
        "storage": fp16_storage_claim(BUNDLE),
        "comparison_mlp_head": {
            k: mlp[k] for k in ("step", "wall_s", "final_train_loss", "final_val", "parameters")
        }
        if mlp
        else None,
        "comparison_robot_140_steps": {
            k: r140[k] for k in ("step", "wall_s", "final_train_loss", "final_val")
        }
        if r140
        else None,
        "evaluation": evals,
        "jaw_follow_test_n7": {
            m: round(
                jaw_follow(work / "eval" / f"{m}-test" / "context_7", work / "data" / "test"), 3
            )
            for m in RUNS
            if (work / "eval" / f"{m}-test").is_dir()
        },
    }
    (BUNDLE / "model_card.json").write_text(json.dumps(full, indent=1) + "\n")
    (BUNDLE / "model_card.md").write_text(_card_md(full, rows, mlp))
    print(f"wrote {BUNDLE}")


def jaw_follow(pred_dir: Path, data_dir: Path) -> float:
    """Mean over files of the Pearson correlation between the predicted jaw opening (smoothed
    over 9 frames: the diffusion samples are jittery) and the ground truth's: does the jaw
    follow the robot's own speech?"""
    import numpy as np
    from scipy.ndimage import uniform_filter1d

    from timar_ros.data.dualtalk_files import load_motion

    cs = []
    for f in sorted(pred_dir.glob("*.npy")):
        p = np.load(f)
        g = load_motion(data_dir / f"{f.stem}.npz")[: len(p)]
        cs.append(np.corrcoef(uniform_filter1d(p[:, 50], 9), g[:, 50])[0, 1])
    return float(np.mean(cs))


# Observations on the committed run, written after reading its tables (see the report).
READING: list[str] = [
    "- At 600 steps the bundled model beats both 140-step models on JAW (FD, P-FD, MSE, rPCC) "
    "and on EXP FD/P-FD/SID; the 140-step MLP head keeps a slightly lower EXP MSE: it regresses "
    "to the mean (low SID, less diverse motion), the pattern of the paper's MLP-head ablation "
    "(Table 2, Fig. 7).",
    "- n = 0 and n = 7 are nearly equal: the model does not use history yet (in these "
    "synthetic rules history matters only through listener reactions and the engagement "
    "ramp).",
    "- The OOD split (other voices, rates, reaction lags) costs mostly on JAW (FD 0.45 -> 0.65).",
]


def _card_md(c: dict, rows: dict, mlp: dict | None) -> str:
    from timar_ros.eval.tables import markdown_table

    hw = c["hardware"]
    fv = c.get("final_val") or {}
    mv = (mlp or {}).get("final_val") or {}
    td = c["training_data"]
    lines = [
        "# checkpoints/robot: TIMAR, robot preset, trained on synthetic conversations",
        "",
        "**Not human data.** Trained and evaluated on synthetic two-person conversations written "
        "by `timar synth` (procedural speech-like voices and Debian flite TTS voices; motion "
        "targets from known rules: the speaker's jaw and mouth follow their own speech envelope, "
        "the listener nods or tilts after the partner pauses, engagement builds over turns). It "
        "exists so that `make demo` runs a trained model end to end; its motion reflects those "
        "rules, not human behaviour. For real use, train on DualTalk-layout human data with "
        "`timar train` (see README).",
        "",
        "## Model",
        f"- preset `robot`, diffusion head, {c['parameters'] / 1e6:.2f} M trainable parameters, "
        f"turns of {c['frames_per_turn']} frames (1 s), window of {c['window_turns']} turns",
        f"- weights: {c['weights']}, stored as float16 (outputs within "
        f"{c['storage']['max_output_change']:g} of float32: float16 rounding moved the motion by "
        "at "
        f"most {max(c['storage']['measured_output_change']):.2g} over 9 draws on 8 s of the demo "
        "conversation); "
        "`config.json` has attention dropout 0 (training speed)",
        "",
        "## Data (generated, not committed)",
    ]
    for s, d in td.items():
        lines.append(
            f"- {s}: {d['conversations']} conversations, seed {d['seed']}, config `{d['config']}`"
        )
    data0 = c["data"][0]
    lines += [
        f"- training windows: {c['windows']} distinct 8-turn windows from {data0['directions']} "
        "directions (each conversation used both ways)",
        "",
        "## Training",
        f"- {c['step']} steps of batch {c['global_batch']} ({c['epochs']} epochs), AdamW "
        "(0.9, 0.95), wd 0.02 (no decay on 1-D/bias/head), clip 3.0, EMA "
        f"{c['recipe']['ema']}; lr {c['lr']:g} with {c['warmup_steps']} warmup steps then "
        "cosine to 2e-5 over 140 steps, then resumed to 300 and to 600 steps (each resume "
        "re-plans the cosine over the new total: two warm restarts)",
        f"- wall time {c['wall_s'] / 60:.1f} min on {hw['device']} ({hw['cpu_count']} cores, "
        f"shared with other jobs; torch {hw['torch']}, {hw['torch_threads']} threads)",
        f"- final train loss {c['final_train_loss']:.4f}; validation loss (EMA weights) "
        f"{fv.get('ema_loss', float('nan')):.4f}",
    ]
    if mlp:
        lines.append(
            f"- MLP-head variant (same data and recipe, 140 steps = the first stage of the "
            f"robot run): {mlp['step']} steps in "
            f"{mlp['wall_s'] / 60:.1f} min, final train loss "
            f"{mlp['final_train_loss']:.4f} (plain MSE, not comparable with the "
            f"diffusion loss), validation MSE {mv.get('ema_loss', float('nan')):.4f}"
        )
    lines += [
        "",
        "Loss curve: `loss.png` (train loss per 5 steps; validation loss of the EMA and "
        "raw weights on a separate synthetic split).",
        "",
        "Reproduce: `python tools/train_bundled.py` (data, both trainings, evaluation, this card).",
        "",
    ]
    for split, title in (
        ("test", "Synthetic test split (same generator config, other seed)"),
        (
            "ood",
            "Synthetic OOD split (config/synthetic_ood.yaml: other voices, "
            "rates, gaps, reaction lags)",
        ),
    ):
        if rows[split]:
            lines += [f"## {title}", "", markdown_table(rows[split]).rstrip(), ""]
    lines += [
        "## Reading (this run)",
        "",
        "- Correlation of the predicted (9-frame smoothed) jaw opening with the ground truth on "
        "the test split at n = 7: "
        + ", ".join(f"{m} {v:.2f}" for m, v in c.get("jaw_follow_test_n7", {}).items())
        + ". At 140 steps the diffusion head had not yet learned to open the jaw with the "
        "robot's speech while the MLP head had; by 300-600 steps it has.",
        *READING,
        "- Still a short run (about two epochs of a small synthetic set on a shared 2-core "
        "CPU); longer training (`timar train --resume RUN --steps N`, or a GPU) is the next "
        "step before judging the method.",
        "",
        "n = previous turns visible (progressive-context protocol, `timar evaluate`). "
        "Metric values are not comparable with the paper's DualTalk numbers (different data).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default="/tmp/timar_bundled", help="data, runs and evaluations")
    p.add_argument(
        "--stages",
        nargs="+",
        default=["data", "train", "export", "eval", "bundle"],
        choices=["data", "train", "export", "eval", "bundle"],
    )
    p.add_argument(
        "--stepping",
        action="store_true",
        help="evaluate by stepping the policy (default: run_offline, same numbers)",
    )
    a = p.parse_args()
    work = Path(a.work)
    sys.path.insert(0, str(REPO))
    if "data" in a.stages:
        stage_data(work)
    if "train" in a.stages:
        stage_train(work)
    if "export" in a.stages:
        stage_export(work)
    if "eval" in a.stages:
        stage_eval(work, offline=not a.stepping)
    if "bundle" in a.stages:
        stage_bundle(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
