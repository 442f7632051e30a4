"""``timar train``: train a TIMAR model on DualTalk-layout folders (CPU, one GPU, or DDP).

    timar train --data DATA [DATA ...] [--val VAL] --out RUN --preset robot --steps 2000
    torchrun --nproc_per_node=8 -m timar_ros.train --data DATA --out RUN --epochs 400
    timar train --resume RUN --steps 4000          # continue (exactly) to step 4000

The recipe defaults are the reference's (``TrainConfig``): AdamW betas (0.9, 0.95), weight decay
0.02 without decay on 1-D parameters, biases and the motion head (``model.parameter_groups``),
gradient clipping at norm 3.0, EMA 0.9999 updated every step (its weights are what gets
exported), linear warmup over the first 25 % of the steps (the reference's 100 of 400 epochs)
then a constant rate, lr = 1e-4 x global batch / 256, AMP (fp16 + grad scaler) on CUDA only,
seed 6666 + rank.

The run folder ``RUN`` is a checkpoint folder (``model.safetensors`` with the EMA weights,
``config.json``, ``model_card.json``; loadable by ``StreamingPolicy.from_checkpoint(RUN)``)
plus ``train_state.safetensors``/``train_state.json`` (raw weights, EMA, AdamW moments, RNG
states, step: an interrupted run resumes to the same numbers as an uninterrupted one),
``train_log.json`` and ``loss.png``. Nothing is pickled.

Data order: each epoch is a ``DistributedSampler`` permutation (seed, epoch) of the windows,
cut into batches; step s reads batch ``s mod batches_per_epoch`` of epoch
``s // batches_per_epoch``, so the data position follows from the step alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REFERENCE_BLR = 1e-4  # reference: lr = blr * effective batch / 256


@dataclass
class TrainConfig:
    """Everything a run needs; saved in ``train_state.json`` and reused on resume."""

    data: list = field(default_factory=list)  # DualTalk-layout training folders
    val: str | None = None  # DualTalk-layout validation folder (loss computed on it)
    out: str = ""
    preset: str = "robot"
    overrides: dict = field(default_factory=dict)  # TIMARConfig fields (``--set key=value``)
    turns: int | None = None  # window turns S; None = the model's window_turns
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 32  # per process (reference: 32 per GPU)
    lr: float | None = None  # None: REFERENCE_BLR * global batch / 256
    betas: tuple = (0.9, 0.95)
    weight_decay: float = 0.02
    grad_clip: float = 3.0
    ema: float = 0.9999
    warmup_steps: int | None = None  # None: 25 % of the steps
    schedule: str = "constant"  # or "cosine"
    min_lr: float = 0.0
    amp: str = "auto"  # auto = on CUDA only
    seed: int = 6666
    device: str = "auto"
    workers: int = 0
    save_every: int = 500
    log_every: int = 10
    val_every: int | None = None  # None: at every save
    val_batches: int = 16
    progress: bool = True
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Raises ValueError naming any key that is not a field (a renamed or misspelt option
        must not vanish silently, e.g. from a resumed run's saved config)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"TrainConfig: unknown keys {unknown} (known: {sorted(names)})")
        kw = dict(d)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(**kw)


class TrainError(RuntimeError):
    """A run that cannot start; the message names the problem and the fix."""


# ----------------------------------------------------------------------------- setup helpers
def _dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) without it."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
            int(os.environ.get("LOCAL_RANK", 0)))


def _device(name: str, local_rank: int):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda but no CUDA device is available; use --device cpu")
        if name == "cuda":
            name = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(name))
    elif name != "cpu":
        raise TrainError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
    return torch.device(name)


def build_dataset(dirs: list, turns: int, frames_per_turn: int):
    """ConcatDataset of :class:`DualTalkWindows` over ``dirs``; errors name the bad folder."""
    from torch.utils.data import ConcatDataset

    from timar_ros.data.dualtalk import DualTalkWindows

    if not dirs:
        raise TrainError("no training data: give --data DIR [DIR ...] (DualTalk layout, e.g. "
                         "written by `timar synth`)")
    parts, summaries = [], []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise TrainError(f"data folder not found: {p}")
        try:
            ds = DualTalkWindows(p, turns=turns, frames_per_turn=frames_per_turn)
        except FileNotFoundError as exc:
            raise TrainError(f"{p}: {exc}; a DualTalk folder holds <clip>_speaker1/2 .wav + .npz "
                             f"pairs (`timar synth {p}` writes one)") from exc
        if len(ds) == 0:
            need = turns * frames_per_turn
            raise TrainError(
                f"{p}: no training windows: all {ds.skipped} directions are shorter than one "
                f"window of {turns} turns x {frames_per_turn} frames = {need / 25:.1f} s "
                f"(longest: {max(ds.frames.values(), default=0) / 25:.1f} s); use longer files "
                f"or fewer --turns")
        parts.append(ds)
        summaries.append(ds.summary())
    return ConcatDataset(parts), summaries


def _loss_module(model):
    """Wrap ``model`` so that ``forward(batch)`` is ``model.training_loss(batch)`` (DDP hooks
    the forward call)."""
    from torch import nn

    class LossModule(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m

        def forward(self, batch):
            return self.model.training_loss(batch)

    return LossModule(model)


def _batches(sampler, batch_size: int) -> list[list[int]]:
    idx = list(sampler)
    return [idx[i:i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _hardware(device) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:  # Linux: the CPU's marketing name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {"device": str(device), "cpu": cpu,
          "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
          "torch": torch.__version__}
    if device.type == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    return hw


def _val_loss(model, ds, batch_size: int, max_batches: int, device, amp: bool, seed: int) -> dict:
    """Mean training loss (and its parts) of ``model`` in eval mode over the first
    ``max_batches`` batches of ``ds``, with a fixed RNG seed (the mask ratio and diffusion
    timesteps are random) that leaves the training RNG untouched."""
    import torch
    from torch.utils.data import DataLoader

    devices = [device] if device.type == "cuda" else []
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False,
                            generator=torch.Generator().manual_seed(seed))
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                _, st = model.training_loss(_to(batch, device))
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n += 1
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in sums.items() if k != "mask_ratio"}


def plot_losses(log: list[dict], path: str | Path, title: str = "") -> Path:
    """Training loss per logged interval (and its running mean), validation loss points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = [e for e in log if e.get("kind") == "train"]
    va = [e for e in log if e.get("kind") == "val"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if tr:
        s = [e["step"] for e in tr]
        y = [e["loss"] for e in tr]
        ax.plot(s, y, color="0.7", lw=0.8, label="train (interval mean)")
        k = max(1, len(y) // 20)
        sm = [sum(y[max(0, i - k + 1):i + 1]) / len(y[max(0, i - k + 1):i + 1])
              for i in range(len(y))]
        ax.plot(s, sm, color="C0", lw=1.5, label=f"train (running mean of {k})")
    if va:
        ax.plot([e["step"] for e in va], [e["ema_loss"] for e in va], "o-", color="C3",
                ms=4, label="val (EMA weights)")
        ax.plot([e["step"] for e in va], [e["raw_loss"] for e in va], "s--", color="C2",
                ms=3, label="val (raw weights)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if tr and min(e["loss"] for e in tr) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------- the run
def train(cfg: TrainConfig, resume: str | None = None) -> dict:
    """Run (or resume) training; returns the summary written into the model card.

    ``resume``: a run folder; its train config is the base, ``cfg`` must already hold the
    merged values (see :func:`config_for_resume`).
    """
    import torch
    import torch.distributed as dist

    t_start = time.perf_counter()
    rank, world, local_rank = _dist_env()
    own_group = False
    use_dist = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = _device(cfg.device, local_rank)
    if use_dist and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        return _train(cfg, resume, rank, world, device, use_dist, t_start)
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(cfg, resume, rank, world, device, use_dist, t_start) -> dict:
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from timar_ros.model import TIMAR, TIMARConfig, preset
    from timar_ros.runtime.checkpoint import save_checkpoint
    from timar_ros.training.ema import EMA
    from timar_ros.training.schedule import SCHEDULES, lr_at
    from timar_ros.training.state import load_state, prefixed, save_state, unflatten_optimizer

    main = rank == 0
    if not cfg.out:
        raise TrainError("no output folder: give --out RUN_DIR")
    if cfg.schedule not in SCHEDULES:
        raise TrainError(f"--schedule must be one of {SCHEDULES}")
    if cfg.amp not in ("auto", "on", "off"):
        raise TrainError("--amp must be auto, on or off")
    amp = device.type == "cuda" and cfg.amp != "off"
    if cfg.amp == "on" and device.type != "cuda":
        raise TrainError("--amp on needs a CUDA device (AMP is fp16 autocast + grad scaler)")
    out = Path(cfg.out)

    meta, tensors = (load_state(resume) if resume else (None, None))
    if meta is not None:
        mcfg = TIMARConfig.from_dict(meta["model_config"])
    else:
        try:
            mcfg = preset(cfg.preset, **cfg.overrides)
        except (TypeError, ValueError) as exc:
            raise TrainError(f"model config: {exc}") from exc
    S = int(cfg.turns or mcfg.window_turns)
    F = mcfg.frames_per_turn

    torch.manual_seed(cfg.seed + rank)
    np.random.seed((cfg.seed + rank) % 2**32)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    ds, data_summary = build_dataset(cfg.data, S, F)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True)
    bpe = len(sampler) // cfg.batch_size
    if bpe == 0:
        raise TrainError(f"{len(ds)} training windows give no full batch of {cfg.batch_size} "
                         f"per process x {world} processes; lower --batch-size or add data")
    if cfg.steps is not None and cfg.epochs is not None:
        raise TrainError("give --steps or --epochs, not both")
    if cfg.steps is None and cfg.epochs is None:
        raise TrainError("give the length of the run: --steps N or --epochs E")
    total = int(cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * bpe))
    if total < 1:
        raise TrainError("the run has no steps (--steps/--epochs must be > 0)")
    warmup = int(cfg.warmup_steps if cfg.warmup_steps is not None else round(0.25 * total))
    global_batch = cfg.batch_size * world
    lr = float(cfg.lr if cfg.lr is not None else REFERENCE_BLR * global_batch / 256)

    val_ds = None
    if cfg.val:
        val_ds, _ = build_dataset([cfg.val], S, F)

    model = TIMAR(mcfg).to(device)
    model.train()
    ema = EMA(model, cfg.ema)
    opt = torch.optim.AdamW(model.parameter_groups(cfg.weight_decay), lr=lr,
                            betas=tuple(cfg.betas))
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    step, log, wall_before = 0, [], 0.0
    if meta is not None:
        model.load_state_dict(prefixed(tensors, "model"))
        ema.load_state_dict(prefixed(tensors, "ema"))
        opt.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
        if meta.get("scaler") and amp:
            scaler.load_state_dict(meta["scaler"])
        step = int(meta["step"])
        wall_before = float(meta.get("wall_s", 0.0))
        logf = Path(resume) / "train_log.json"
        if logf.is_file():
            log = [e for e in json.loads(logf.read_text())["log"] if e["step"] <= step]
        if int(meta.get("world_size", 1)) == world and f"rng.cpu.{rank}" in tensors:
            torch.set_rng_state(tensors[f"rng.cpu.{rank}"])
            if device.type == "cuda" and f"rng.cuda.{rank}" in tensors:
                torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"], device)
        elif main:
            print(f"timar train: resuming with {world} processes from a state of "
                  f"{meta.get('world_size')}: RNG streams restart (not bit-exact)", file=sys.stderr)
        if step >= total and main:
            print(f"timar train: the state is at step {step} >= --steps {total}; nothing to do "
                  f"(raise --steps to continue)", file=sys.stderr)

    net = _loss_module(model)
    if use_dist:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                  find_unused_parameters=True)  # as the reference (CFG/masking can skip tokens)

    def batches_from(s: int):
        """Batches from global step ``s`` on (epoch = s // bpe, position = s % bpe)."""
        epoch, pos = divmod(s, bpe)
        while True:
            sampler.set_epoch(epoch)
            order = _batches(sampler, cfg.batch_size)[pos:]
            # A private generator: creating a loader iterator draws a base seed, which must
            # not consume the global RNG (that would shift every draw after a resume).
            gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
            loader = DataLoader(ds, batch_sampler=order, num_workers=cfg.workers,
                                pin_memory=device.type == "cuda", generator=gen)
            yield from loader
            epoch, pos = epoch + 1, 0

    info = {
        "windows": len(ds), "window_turns": S, "frames_per_turn": F,
        "batches_per_epoch": bpe, "global_batch": global_batch, "world_size": world,
        "total_steps": total, "warmup_steps": warmup, "lr": lr, "amp": amp,
        "parameters": model.num_parameters(),
    }
    if main:
        out.mkdir(parents=True, exist_ok=True)
        print(f"timar train: {info['parameters'] / 1e6:.2f} M parameters ({mcfg.preset or 'custom'},"
              f" head={mcfg.head}), {len(ds)} windows of {S}x{F} frames, {bpe} batches/epoch of "
              f"{global_batch}, steps {step}->{total}, lr {lr:g}, warmup {warmup}, "
              f"device {device}{' +AMP' if amp else ''}, world {world}", file=sys.stderr)

    def reduce_mean(x: dict) -> dict:
        if not use_dist:
            return x
        keys = sorted(x)
        t = torch.tensor([x[k] for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return {k: float(v) / world for k, v in zip(keys, t.tolist())}

    def wall() -> float:
        return wall_before + time.perf_counter() - t_start

    def summary() -> dict:
        tr = [e for e in log if e["kind"] == "train"]
        va = [e for e in log if e["kind"] == "val"]
        return {
            "name": out.name, "trained": True, "weights": f"EMA (rate {cfg.ema})",
            "preset": mcfg.preset, "head": mcfg.head, "step": step,
            "epochs": round(step / bpe, 3), "wall_s": round(wall(), 1),
            "final_train_loss": tr[-1]["loss"] if tr else None,
            "final_val": {k: v for k, v in va[-1].items() if k != "kind"} if va else None,
            "data": data_summary, "val_data": cfg.val, **info,
            "recipe": {k: v for k, v in cfg.to_dict().items()
                       if k not in ("data", "val", "out", "progress", "overrides")},
            "hardware": _hardware(device),
        }

    def save() -> None:
        rng_cpu = [torch.get_rng_state()]
        rng_cuda = [torch.cuda.get_rng_state(device)] if device.type == "cuda" else None
        if use_dist:  # every rank's RNG state, so a resume with the same world size is exact
            gathered: list = [None] * world
            dist.all_gather_object(gathered, (rng_cpu[0], rng_cuda[0] if rng_cuda else None))
            rng_cpu = [g[0] for g in gathered]
            rng_cuda = [g[1] for g in gathered] if rng_cuda else None
        if main:
            card = summary()
            save_checkpoint(ema.model, out, model_card=card)
            meta_out = {"step": step, "wall_s": wall(), "world_size": world,
                        "train_config": cfg.to_dict(), "model_config": mcfg.to_dict(),
                        "scaler": scaler.state_dict() if amp else None, "info": info}
            save_state(out, model_sd=model.state_dict(), ema_sd=ema.state_dict(),
                       optimizer_sd=opt.state_dict(), rng_cpu=rng_cpu, rng_cuda=rng_cuda,
                       meta=meta_out)
            (out / "train_log.json").write_text(json.dumps(
                {"summary": card, "log": log}, indent=1) + "\n")
            plot_losses(log, out / "loss.png",
                        f"{out.name}: {mcfg.preset} head={mcfg.head}, batch {global_batch}, "
                        f"lr {lr:g}, EMA {cfg.ema}")
        if use_dist:
            dist.barrier()

    def validate() -> None:
        if val_ds is None or not main:
            return
        v_ema = _val_loss(ema.model, val_ds, cfg.batch_size, cfg.val_batches, device, amp, cfg.seed)
        v_raw = _val_loss(model, val_ds, cfg.batch_size, cfg.val_batches, device, amp, cfg.seed)
        e = {"kind": "val", "step": step, "ema_loss": v_ema["loss"], "raw_loss": v_raw["loss"],
             **{f"ema_{k}": v for k, v in v_ema.items() if k != "loss"}}
        log.append(e)
        from tqdm import tqdm

        tqdm.write(f"step {step}: val loss {v_ema['loss']:.4f} (EMA) {v_raw['loss']:.4f} (raw)",
                   file=sys.stderr)

    from tqdm import tqdm

    tty = sys.stderr.isatty()
    bar = tqdm(total=total, initial=min(step, total), disable=not (cfg.progress and main),
               dynamic_ncols=True, mininterval=1.0 if tty else 60.0, unit="step",
               file=sys.stderr)
    it = batches_from(step)
    acc: dict[str, float] = {}
    n_acc, t_int = 0, time.perf_counter()
    val_every = cfg.val_every or cfg.save_every
    while step < total:
        batch = _to(next(it), device)
        cur_lr = lr_at(step, lr, warmup, total, cfg.schedule, cfg.min_lr)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss, stats = net(batch)
        if not torch.isfinite(loss):
            raise TrainError(f"loss is {float(loss)} at step {step}; lower --lr (now {cur_lr:g}) "
                             f"or check the data for NaN/Inf")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        ema.update(model)
        step += 1
        for k, v in stats.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        acc["grad_norm"] = acc.get("grad_norm", 0.0) + float(gnorm)
        n_acc += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == total:
            m = reduce_mean({k: v / n_acc for k, v in acc.items()})
            dt = time.perf_counter() - t_int
            e = {"kind": "train", "step": step, "epoch": round(step / bpe, 4), "lr": cur_lr,
                 **{k: round(v, 6) for k, v in m.items()}, "s_per_step": round(dt / n_acc, 4),
                 "wall_s": round(wall(), 1)}
            log.append(e)
            bar.set_postfix(loss=f"{m['loss']:.4f}", lr=f"{cur_lr:.2e}")
            if main and not tty:
                tqdm.write(f"step {step}/{total} loss {m['loss']:.4f} lr {cur_lr:.2e} "
                           f"|g| {m['grad_norm']:.2f} {dt / n_acc:.2f} s/step", file=sys.stderr)
            acc, n_acc, t_int = {}, 0, time.perf_counter()
        if val_ds is not None and (step % val_every == 0 or step == total):
            validate()
        if step % cfg.save_every == 0 or step == total:
            save()
    bar.close()
    if meta is not None and step == int(meta["step"]) and main:
        save()  # nothing trained (already at --steps): still rewrite card/plot
    return summary()


# ----------------------------------------------------------------------------- CLI
def _value(v: str):
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def parse_overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for kv in items or []:
        if "=" not in kv:
            raise TrainError(f"--set expects KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        out[k.strip()] = _value(v)
    return out


# CLI flag -> TrainConfig field; argparse defaults are None so that only given flags override
# (the run's saved config on --resume, TrainConfig's defaults otherwise).
_FLAGS = ["data", "val", "out", "preset", "turns", "steps", "epochs", "batch_size", "lr",
          "betas", "weight_decay", "grad_clip", "ema", "warmup_steps", "schedule", "min_lr",
          "amp", "seed", "device", "workers", "save_every", "log_every", "val_every",
          "val_batches", "threads"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--data", nargs="+", metavar="DIR", help="DualTalk-layout training folder(s)")
    p.add_argument("--val", metavar="DIR", help="DualTalk-layout validation folder")
    p.add_argument("--out", metavar="RUN", help="run folder (checkpoint + state + log + plot)")
    p.add_argument("--preset", help=f"model preset (default {d.preset})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config field, e.g. --set head=mlp")
    p.add_argument("--resume", metavar="RUN", help="continue a run folder (exactly)")
    p.add_argument("--turns", type=int, help="window turns S (default: the model's window_turns)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="total optimizer steps")
    g.add_argument("--epochs", type=float, help="total epochs (reference: 400)")
    p.add_argument("--batch-size", type=int, help=f"per process (default {d.batch_size})")
    p.add_argument("--lr", type=float, help="peak learning rate (default 1e-4 x global batch/256)")
    p.add_argument("--betas", type=float, nargs=2, help="AdamW betas (default 0.9 0.95)")
    p.add_argument("--weight-decay", type=float, help=f"default {d.weight_decay}")
    p.add_argument("--grad-clip", type=float, help=f"gradient norm clip (default {d.grad_clip})")
    p.add_argument("--ema", type=float, help=f"EMA rate (default {d.ema}; short runs: 0.999)")
    p.add_argument("--warmup-steps", type=int, help="linear warmup steps (default 25%% of steps)")
    p.add_argument("--schedule", choices=["constant", "cosine"], help="after warmup")
    p.add_argument("--min-lr", type=float, help="cosine floor (default 0)")
    p.add_argument("--amp", choices=["auto", "on", "off"], help="fp16 AMP (auto: CUDA only)")
    p.add_argument("--seed", type=int, help=f"default {d.seed} (+ rank)")
    p.add_argument("--device", help="auto | cpu | cuda (default auto)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    p.add_argument("--save-every", type=int, help=f"steps (default {d.save_every})")
    p.add_argument("--log-every", type=int, help=f"steps (default {d.log_every})")
    p.add_argument("--val-every", type=int, help="steps (default: at every save)")
    p.add_argument("--val-batches", type=int, help=f"default {d.val_batches}")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from the flags given; on --resume, the run's saved config is the base."""
    from timar_ros.training.state import load_state

    given = {k: getattr(args, k) for k in _FLAGS if getattr(args, k, None) is not None}
    overrides = parse_overrides(args.set)
    if args.resume:
        if overrides or "preset" in given:
            raise TrainError("--set/--preset cannot change the model of a resumed run")
        meta, _ = load_state(args.resume)
        try:
            base = TrainConfig.from_dict(meta["train_config"]).to_dict()
        except ValueError as exc:
            raise TrainError(f"{args.resume}: the saved train_config cannot be resumed by this "
                             f"version: {exc}; edit train_state.json (rename or remove the key) "
                             "or start a new run") from exc
        base["out"] = str(args.resume)
    else:
        base = TrainConfig().to_dict()
        base["overrides"] = overrides
    base.update(given)
    if "steps" in given:
        base["epochs"] = None
    if "epochs" in given:
        base["steps"] = None
    if args.no_progress:
        base["progress"] = False
    return TrainConfig.from_dict(base)


def run(args: argparse.Namespace) -> int:
    from timar_ros.runtime.checkpoint import CheckpointError
    from timar_ros.training.state import TrainStateError

    try:
        cfg = config_from_args(args)
        s = train(cfg, resume=args.resume)
    except (TrainError, TrainStateError, CheckpointError) as exc:
        print(f"timar train: error: {exc}", file=sys.stderr)
        return 1
    if _dist_env()[0] == 0:
        print(f"timar train: step {s['step']} ({s['epochs']} epochs) in {s['wall_s']:.0f} s; "
              f"final train loss {s['final_train_loss']}; checkpoint {cfg.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun -m timar_ros.train ...`` / ``python -m timar_ros.train``."""
    p = argparse.ArgumentParser(prog="timar train", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
