#!/usr/bin/env python3
"""Reproduce the bundled checkpoint ``checkpoints/robot/`` (and its MLP-head comparison).

Stages (all by default, or pick with ``--stages``):

    data     synthetic splits with `timar synth` (procedural + flite TTS voices when installed),
             conversations of 40-60 s: train (320, seed 0), val (8, seed 3), test (24, seed 1)
             from config/synthetic.yaml and ood (24, seed 2) from config/synthetic_ood.yaml
    train    `timar train` of the robot preset (diffusion head, 3000 steps, the reference's
             MAR masking), then its fine-tuning with every agent frame masked (1500 steps,
             `--init`), and the MLP-head variant (1500 steps) (runs robot, robot-ft, robot-mlp;
             an interrupted run resumes)
    export   the EMA weights stored as float16 (half the size; the card states how far the
             rounding can move the outputs, measured by float16_output_change), with the
             chosen sampling options (``SAMPLING``) in config.json: the fine-tuned run ->
             checkpoints/robot/, the others -> WORK/export/<run>/
    eval     `timar evaluate` of the three on test and ood at n = 0, n = 7 and the streamed
             history, seeds 0 1 2 (DualTalk table and behaviour metrics)
    bundle   write checkpoints/robot/model_card.json / model_card.md (data, steps, wall time,
             hardware, metrics; the smoothing measurements WORK/smoothing*.json of
             tools/measure_smoothing.py when present)

The data and runs go to ``--work`` (default /tmp/timar_bundled; a few hundred MB, never
committed). The synthetic data are a test bench of known rules, not human motion.

    python tools/train_bundled.py                      # everything (hours on 2 CPU cores)
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

SPLITS = {  # name -> (config, conversations, seed); every conversation lasts 40-60 s
    "train": ("config/synthetic.yaml", 320, 0),
    "val": ("config/synthetic.yaml", 8, 3),
    "test": ("config/synthetic.yaml", 24, 1),
    "ood": ("config/synthetic_ood.yaml", 24, 2),
}
DURATION_S = ("40", "60")
# The recipe for a CPU run of about 1.5 h on 2 cores: 12-turn windows (longer than the 8-turn
# attention window, so turn t of a window sees as much history as it does when streaming a long
# conversation), starting every 6 turns; motion centred per dimension and scaled per group
# (expression, jaw, rotation) so the head rotations, ~0.02 rad, weigh as much as the
# expression (per-dimension z-scores made the loss mostly inflated idle noise); batch 4, a
# short warmup and a cosine decay, an EMA of ~200 steps. Attention dropout is off: it costs a
# third of the step on CPU.
TRAIN_ARGS = [
    "--preset",
    "robot",
    "--set",
    "attn_dropout=0.0",
    "--set",
    "normalize_motion=true",
    "--turns",
    "12",
    "--stride-turns",
    "6",
    "--batch-size",
    "4",
    "--lr",
    "5e-4",
    "--warmup-steps",
    "100",
    "--schedule",
    "cosine",
    "--min-lr",
    "2e-5",
    "--ema",
    "0.995",
    "--seed",
    "0",
    "--save-every",
    "250",
    "--val-every",
    "500",
    "--val-batches",
    "8",
    "--log-every",
    "25",
]
MODELS = {  # run -> (steps, extra args)
    "robot": (3000, []),
    # Half the steps: the comparison run had to fit beside the bundled one in one CPU session
    # (its validation loss was still falling; the card says so).
    "robot-mlp": (1500, ["--set", "head=mlp"]),
}
# The bundled run: the robot run fine-tuned with every agent frame masked, the regime single-pass
# inference runs in (the first stage masks 70-100 % as the reference does, so it also learns to
# fill in frames it can see, which it never can at inference: its loss was 0.51 at the training
# masks and 0.79 with every frame masked). run -> (initialised from, steps, args)
FINETUNE = {
    "robot-ft": (
        "robot",
        1500,
        ["--set", "mask_ratio_min=1.0", "--turns", "12", "--stride-turns", "6"]
        + ["--batch-size", "4", "--lr", "2e-4", "--warmup-steps", "50", "--schedule", "cosine"]
        + ["--min-lr", "2e-5", "--ema", "0.995", "--seed", "1", "--save-every", "250"]
        + ["--val-batches", "16", "--log-every", "50"],
    ),
}
BUNDLED_RUN = "robot-ft"
RUNS = [BUNDLED_RUN, *MODELS]
LABELS = {
    "robot-ft": "TIMAR robot (bundled)",
    "robot": "first stage (masks 70-100 %, temperature 1)",
    "robot-mlp": "MLP head",
}
CONTEXTS = ["0", "7", "stream"]  # crop to 0 / 7 previous turns, and the streamed history
SEEDS = ["0", "1", "2"]
EVALS = [(m, split) for m in RUNS for split in ("test", "ood")]
# The sampling options chosen by tools/measure_smoothing.py (see the card's Smoothness table):
# the noise's correlation time over frames, and the share of the expression noise held for the
# whole conversation. Written into the exported config.json. The bundled run also samples at a
# temperature of 1.1, which brought its head-pose variance ratio from 0.45 to 0.50 on the OOD
# split (0.55 -> 0.60 on test; streamed, 3 seeds) with the jitter still <= 1.25 and the other
# figures within their spread (the first stage is evaluated as it was bundled, at 1).
SAMPLING = {"noise_tau_s": 1.5, "noise_hold_exp": 0.8}
BUNDLED_SAMPLING = {**SAMPLING, "temperature": 1.1}
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
            "--duration",
            *DURATION_S,
        )


def stage_train(work: Path, only: list[str] | None = None) -> None:
    for name, (steps, extra) in MODELS.items():
        if only and name not in only:
            continue
        run = work / "runs" / name
        resume = ["--resume", str(run)] if (run / "train_state.json").is_file() else []
        sh(
            PY,
            "-m",
            "timar_ros.cli",
            "train",
            *(
                resume
                or [
                    "--data",
                    str(work / "data" / "train"),
                    "--val",
                    str(work / "data" / "val"),
                    "--out",
                    str(run),
                    *TRAIN_ARGS,
                    *extra,
                ]
            ),
            "--steps",
            str(steps),
            "--no-progress",
        )
    for name, (base, steps, args) in FINETUNE.items():
        if only and name not in only:
            continue
        run = work / "runs" / name
        resume = ["--resume", str(run)] if (run / "train_state.json").is_file() else []
        start = ["--init", str(work / "runs" / base), "--data", str(work / "data" / "train")]
        start += ["--val", str(work / "data" / "val"), "--out", str(run), *args]
        sh(PY, "-m", "timar_ros.cli", "train", *(resume or start), "--steps", str(steps))


def export_fp16(run: Path, dst: Path, sampling: dict | None = None) -> Path:
    """model.safetensors (float16) + config.json of a run folder into ``dst``; the config of a
    diffusion model gets the sampling options (default ``SAMPLING``: noise correlation and held
    share)."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    sd = load_file(str(run / "model.safetensors"))
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    save_file(
        sd,
        str(dst / "model.safetensors"),
        metadata={"format": "pt", "producer": "timar_ros tools/train_bundled.py (float16)"},
    )
    cfg = json.loads((run / "config.json").read_text())
    if cfg.get("head") == "diffusion":
        cfg.update(SAMPLING if sampling is None else sampling)
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return dst


def _sampling(model: str) -> dict:
    return BUNDLED_SAMPLING if model == BUNDLED_RUN else SAMPLING


def exported(work: Path, model: str) -> Path:
    return BUNDLE if model == BUNDLED_RUN else work / "export" / model


def stage_export(work: Path) -> None:
    for model in RUNS:
        print(
            f"+ export {work / 'runs' / model} -> "
            f"{export_fp16(work / 'runs' / model, exported(work, model), _sampling(model))}"
        )


def stage_eval(work: Path, offline: bool) -> None:
    for model, split in EVALS:
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
            *CONTEXTS,
            "--seeds",
            # the MLP head is deterministic: one seed says it all
            *(SEEDS[:1] if model == "robot-mlp" else SEEDS),
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
    run = work / "runs" / BUNDLED_RUN
    shutil.copy2(run / "loss.png", BUNDLE / "loss.png")
    card = _read(run / "model_card.json")
    first = _read(work / "runs" / FINETUNE[BUNDLED_RUN][0] / "model_card.json")
    mlp = _read(work / "runs" / "robot-mlp" / "model_card.json")
    data = {s: _read(work / "data" / s / "synthetic_config.json") for s in SPLITS}
    evals = {}
    for model, split in EVALS:
        rep = _read(work / "eval" / f"{model}-{split}" / "report.json")
        if rep is None:
            continue
        evals[f"{model}/{split}"] = {
            "files": rep["files"],
            "turns": rep["turns"],
            "mode": rep["mode"],
            "seeds": rep["seeds"],
            "oracle": rep["behaviour"]["oracle"],
            "contexts": {
                n: {
                    "pub": c["pub"],
                    "metrics": c["metrics"],
                    "behaviour": c["behaviour"],
                    "ms_per_turn": c["ms_per_turn"],
                }
                for n, c in rep["contexts"].items()
            },
        }
    # tools/measure_smoothing.py runs: the sampling options, and MAR decoding (slower, so on
    # fewer files)
    smoothing = [d for p in sorted(work.glob("smoothing*.json")) if (d := _read(p))]
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
                "duration_s": d["config"]["turns"]["duration_s"],
            }
            for s, d in data.items()
            if d
        },
        "reproduce": "python tools/train_bundled.py",
        "sampling": BUNDLED_SAMPLING,
        "storage": fp16_storage_claim(BUNDLE),
        "first_stage": {
            k: first[k]
            for k in ("step", "wall_s", "final_train_loss", "final_val", "recipe", "hardware")
        }
        if first
        else None,
        "comparison_mlp_head": {
            k: mlp[k] for k in ("step", "wall_s", "final_train_loss", "final_val", "parameters")
        }
        if mlp
        else None,
        "evaluation": evals,
        "smoothing": [
            {
                "files": sm["files"],
                "turns": sm.get("turns"),
                "seeds": sm["seeds"],
                **{k: v["aggregate"] for k, v in sm.items() if isinstance(v, dict)},
            }
            for sm in smoothing
        ],
    }
    (BUNDLE / "model_card.json").write_text(json.dumps(full, indent=1) + "\n")
    (BUNDLE / "model_card.md").write_text(_card_md(full, mlp, smoothing, first))
    print(f"wrote {BUNDLE}")


# Observations on the committed run, written after reading its tables.
READING: list[str] = [
    "- **Smoothness** (Smoothness tables): sampling every frame from independent noise, as "
    "the reference does, jitters 11.4x (expression), 1.9x (jaw) and 8.9x (pose) the ground "
    "truth. Temperature 0.7 leaves 9.3 / 1.6 / 7.2 and shrinks the pose variance to 0.69. A "
    "causal one-pole smoother of 0.16 s gets the expression to 1.6 but delays the jaw by "
    "0.08 s and leaves 0.14 of the pose variance. MAR decoding with 4 iterations (later frames "
    "conditioned on earlier ones) costs 4 backbone passes per turn and still jitters 11.1 / "
    "1.7 / 6.7: the frames it conditions on do not make the next frame's own noise smoother. "
    "Noise correlated over 1.5 s brings 1.72 / 0.79 / 1.34, and holding 0.8 of the "
    "expression noise for the conversation 0.96 / 0.77 / 1.29, with no jaw lag and the "
    "variance kept (0.84 / 1.06 / 0.79). The only option at <= 1.5 in every group without "
    "delay, so the bundled config.json uses it. A small seam remains at turn boundaries: second "
    "differences across a boundary are 1.19x (expression) and 1.16x (pose) the within-turn ones "
    "(ground truth 1.01-1.02; test split, stream, one seed); conditioning a turn on the "
    "previous turn's last frames, not tried here, would address it.",
    "- **Fine-tuning with every frame masked** (the bundled weights against the first stage): "
    "the first stage learned with 70-100 % of the agent frames masked, so part of what it "
    "learned was filling in frames it could see; at inference it never sees one. Its loss "
    "with every frame masked was 0.786 (0.508 at the training masks); 1500 more steps in that "
    "regime (40 min here) brought it to 0.752 and moved every history figure: at n = 7 on the "
    "test split kind 0.76 -> 0.82, F1 0.27 -> 0.30, mimicry 0.08 -> 0.14; on OOD kind "
    "0.71 -> 0.86, F1 0.18 -> 0.24, mimicry 0.15 -> 0.23 (the first stage's rows above; "
    "training it on to 4500 steps in its own regime had lowered its validation loss to 0.474 "
    "and none of these). Sampled at temperature 1 the fine-tuned head moved less (pose "
    "variance ratio 0.55 test, 0.45 OOD); at 1.1, bundled, 0.60 / 0.50, with jitter 1.25 / "
    "1.00 (pose) and the other figures within their spread.",
    "- **History** (the mood, which only earlier turns reveal, sets the reaction kind; the "
    "partner's earlier smiles, which the agent's smile follows): kind accuracy 0.57 +- 0.02 at "
    "n = 0 against 0.82 +- 0.03 at n = 7 (test) and 0.67 +- 0.02 against 0.86 +- 0.01 (OOD); "
    "mimicry 0.06 +- 0.02 against 0.14 +- 0.03 (test, oracle 0.21) and 0.12 +- 0.04 against "
    "0.23 +- 0.03 (OOD, oracle 0.38): beyond the seed spread in every case. n = 7 and the "
    "stream agree within 0.01: 7 turns hold what these rules need.",
    "- **Reactions**: F1 0.30 +- 0.03 at n = 7 against 0.18 +- 0.03 at n = 0 (test) and "
    "0.24 +- 0.04 against 0.12 +- 0.01 (OOD), still far below the oracle's 0.79 / 0.67: about "
    "a quarter of the rules' nods and tilts appear within 0.3 s of their onset (recall 0.27 / "
    "0.21), a third of the detected ones match one (precision 0.35 / 0.28). The head moves "
    "(pose variance ratio 0.60 / 0.50, one seed of three at 0.40 on OOD) but mostly not in "
    "time with the rules (pose r 0.11 / 0.05). This is the weak point of a CPU-sized run.",
    "- **MLP head** (1500 steps, val MSE 1.33 / 0.84 / 0.78 at steps 500 / 1000 / 1500, "
    "still falling; one seed, it is deterministic): the regression to the mean the diffusion "
    "head avoids. Its head hardly moves (pose variance ratio 0.03-0.04 on both splits), so "
    "almost no reaction is detected (F1 <= 0.03); its pose r is higher (0.14-0.16 test) because "
    "the mean is never wrong by much; jaw r 0.98 / 0.93.",
    "- **Jaw**: r 0.97 (test) / 0.92 (OOD), as the first stage; the model bundled before it "
    "had 0.92 / 0.85 on the first 16 files of the same splits (seed 0).",
]


def _behaviour_rows(evals: dict, split: str) -> list:
    from timar_ros.eval.progressive import context_label

    rows = []
    for model in RUNS:
        e = evals.get(f"{model}/{split}")
        if not e:
            continue
        if not rows:
            rows.append(("oracle (the rules' targets)", e["oracle"]))
        for n, c in e["contexts"].items():
            rows.append((f"{LABELS[model]}, {context_label(n)}", c["behaviour"]))
    return rows


def _dualtalk_rows(evals: dict, split: str) -> list:
    from timar_ros.eval.progressive import context_label

    return [
        (f"{LABELS[m]}, {context_label(n)}", c["metrics"])
        for m in RUNS
        if (e := evals.get(f"{m}/{split}"))
        for n, c in e["contexts"].items()
    ]


def _card_md(c: dict, mlp: dict | None, smoothing: list[dict], first: dict | None) -> str:
    from timar_ros.eval.behaviour import markdown
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
        "targets from known rules, `timar_ros/data/synthetic/rules.py`: the speaker's jaw and "
        "mouth follow their own speech, their head follows their prosody (accent nods, phrase "
        "pitch and direction); the listener nods or tilts ~0.3 s after the partner pauses, the "
        "kind set by the conversation's mood, which only the partner's earlier speaking smiles "
        "reveal; the listener's smile follows the partner's of 2 s earlier; reactions grow with "
        "the turns heard). It exists so that `make demo` runs a trained model end to end and so "
        "that the bench can show what the method learns; its motion reflects those rules, not "
        "human behaviour. For real use, train on DualTalk-layout human data with `timar train` "
        "(see README).",
        "",
        "## Model",
        f"- preset `robot`, diffusion head, {c['parameters'] / 1e6:.2f} M trainable parameters, "
        f"turns of {c['frames_per_turn']} frames (1 s), attention window of "
        f"{json.loads((BUNDLE / 'config.json').read_text())['window_turns']} turns, trained on "
        f"{c['window_turns']}-turn windows; motion centred per dimension and scaled per group "
        "(expression, jaw, rotation) with the training data's statistics "
        "(`normalize_motion`, saved with the weights)",
        f"- sampling temperature {c['sampling'].get('temperature', 1.0):g}, noise correlated "
        "over frames with a time constant of "
        f"{c['sampling']['noise_tau_s']:g} s, {c['sampling']['noise_hold_exp']:g} of the "
        "expression noise held for the whole conversation (`noise_tau_s`, `noise_hold_exp` in "
        "`config.json`; see Smoothness below)",
        f"- weights: {c['weights']}, stored as float16 (outputs within "
        f"{c['storage']['max_output_change']:g} of float32: float16 rounding moved the motion by "
        f"at most {max(c['storage']['measured_output_change']):.2g} over 9 draws on 8 s of the "
        "demo conversation); `config.json` has attention dropout 0 (training speed)",
        "",
        "## Data (generated, not committed)",
    ]
    for s, d in td.items():
        lo, hi = d["duration_s"]
        lines.append(
            f"- {s}: {d['conversations']} conversations of {lo:g}-{hi:g} s, seed {d['seed']}, "
            f"config `{d['config']}`"
        )
    lines += [
        f"- training windows: {c['windows']} windows of {c['window_turns']} turns starting "
        f"every {c['data'][0].get('stride_turns')} turns, from {c['data'][0]['directions']} "
        "directions (each conversation used both ways)",
        "",
        "## Training",
    ]
    if first:
        ffv = first.get("final_val") or {}
        fr = first["recipe"]
        lines += [
            f"- first stage: {first['step']} steps of batch {fr['batch_size']}, AdamW (0.9, "
            "0.95), wd 0.02 (no decay on 1-D/bias/head), clip 3.0, EMA "
            f"{fr['ema']}; lr {fr['lr']:g} with {fr['warmup_steps']} warmup steps then cosine "
            f"to {fr['min_lr']:g}; agent frames masked 70-100 % (the reference's MAR masking); "
            f"{first['wall_s'] / 60:.0f} min; final train loss "
            f"{first['final_train_loss']:.4f}, validation loss (EMA) "
            f"{ffv.get('ema_loss', float('nan')):.4f}",
        ]
    lines += [
        f"- {'fine-tuning: ' if first else ''}{c['step']} steps of batch {c['global_batch']} "
        f"({c['epochs']} epochs) with every agent frame masked (`mask_ratio_min: 1.0`: the "
        "regime of single-pass inference, where no agent frame is ever visible), EMA "
        f"{c['recipe']['ema']}; lr {c['lr']:g} with {c['warmup_steps']} warmup steps then "
        f"cosine to {c['recipe']['min_lr']:g}, the optimizer started afresh (`timar train "
        "--init`)",
        f"- wall time {c['wall_s'] / 60:.0f} min on {hw['device']} ({hw['cpu']}, "
        f"{hw['cpu_count']} cores, shared with other work; torch {hw['torch']}, "
        f"{hw['torch_threads']} threads); no GPU was available to this run",
        f"- final train loss {c['final_train_loss']:.4f}; validation loss (EMA weights) "
        f"{fv.get('ema_loss', float('nan')):.4f} (every frame masked; the first stage's weights "
        "scored 0.786 the same way)",
    ]
    if mlp:
        lines.append(
            f"- MLP-head variant (same data and recipe, head=mlp): {mlp['step']} steps in "
            f"{mlp['wall_s'] / 60:.0f} min, final train loss {mlp['final_train_loss']:.4f} "
            f"(plain MSE, not comparable with the diffusion loss), validation MSE "
            f"{mv.get('ema_loss', float('nan')):.4f}"
        )
    lines += [
        "",
        "Loss curve: `loss.png`. Reproduce: `python tools/train_bundled.py` (data, both "
        "trainings, evaluation, this card).",
        "",
        f"## Behaviour (`timar evaluate`, mean ± std over sampling seeds {', '.join(SEEDS)})",
        "",
        "n = the policy sees only the last n turns (the reference's crop); stream = the full "
        "streamed history (every layer attends the last 7 turns, as the robot runs). F1/P/R: "
        "listener reactions detected in the motion within ±0.3 s of the rules' onsets; kind: "
        "share of matched reactions of the rules' kind (nod vs tilt: the mood, from earlier "
        "turns); lag: median reaction onset after the partner's pause; mimic r: peak correlation "
        "of the agent's smile with the partner's smile L s earlier while listening (@: L); r: "
        "per-frame correlation with the ground truth; var / jit: variance and jitter (mean "
        "|second difference|) ratios to the ground truth per group. The oracle is the rules' "
        "own targets scored the same way (the detector's limit).",
        "",
    ]
    ev = c["evaluation"]
    for split, title in (
        ("test", "Synthetic test split (same generator config, other seed)"),
        (
            "ood",
            "Synthetic OOD split (config/synthetic_ood.yaml: other voices, rates, lags, "
            "amplitudes)",
        ),
    ):
        b = _behaviour_rows(ev, split)
        if b:
            lines += [f"### {title}", "", markdown(b).rstrip(), ""]
    lines += ["## DualTalk metrics (first seed)", ""]
    for split in ("test", "ood"):
        d = _dualtalk_rows(ev, split)
        if d:
            lines += [f"### {split}", "", markdown_table(d).rstrip(), ""]
    if smoothing:
        from timar_ros.eval.behaviour import markdown as bmd

        lines += [
            "## Smoothness: what was tried (tools/measure_smoothing.py)",
            "",
            "Measured on the first-stage weights, which chose the sampling options the bundled "
            "model keeps; the bundled model's own jitter ratios are in the Behaviour tables.",
            "",
        ]
        for sm in smoothing:
            rows = [(k, v["aggregate"]) for k, v in sm.items() if isinstance(v, dict)]
            lines += [
                f"{sm['files']} test files x their first {sm.get('turns', 30)} turns, seeds "
                f"{sm['seeds']}, the streamed history unless noted (mar: the crop of 7 turns).",
                "",
                bmd(rows).rstrip(),
                "",
            ]
    lines += ["## Reading (this run)", "", *READING, ""]
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
    p.add_argument("--runs", nargs="+", choices=RUNS, help="train only these runs")
    a = p.parse_args()
    work = Path(a.work)
    sys.path.insert(0, str(REPO))
    if "data" in a.stages:
        stage_data(work)
    if "train" in a.stages:
        stage_train(work, a.runs)
    if "export" in a.stages:
        stage_export(work)
    if "eval" in a.stages:
        stage_eval(work, offline=not a.stepping)
    if "bundle" in a.stages:
        stage_bundle(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
