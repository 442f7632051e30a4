"""The training loop of ``timar train`` (CPU, one GPU, or DDP under torchrun).

    timar train --data DATA [DATA ...] [--val VAL] --out RUN --preset robot --steps 2000
    torchrun --nproc_per_node=8 -m timar_ros.cli train --data DATA --out RUN --epochs 400
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

The run's parts around the loop (device, dataset, batches, validation loss, the loss plot) are in
:mod:`timar_ros.training.setup`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from timar_ros.files import write_json
from timar_ros.training.config import AMP_MODES, REFERENCE_BLR, TrainConfig, TrainError
from timar_ros.training.setup import (
    batches_of,
    build_dataset,
    dist_env,
    hardware,
    loss_module,
    pick_device,
    plot_losses,
    to_device,
    val_loss,
)

__all__ = ["train", "build_dataset", "plot_losses", "TrainConfig", "TrainError"]


# ----------------------------------------------------------------------------- the run
def train(cfg: TrainConfig, resume: str | None = None) -> dict:
    """Run (or resume) training; returns the summary written into the model card.

    ``resume``: a run folder; its train config is the base, ``cfg`` must already hold the
    merged values (see :func:`timar_ros.training.config.resolve_config`).
    """
    import torch
    import torch.distributed as dist

    t_start = time.perf_counter()
    rank, world, local_rank = dist_env()
    own_group = False
    use_dist = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    device = pick_device(cfg.device, local_rank)
    if use_dist and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        return _Run(cfg, resume, rank, world, device, use_dist, t_start).run()
    finally:
        if own_group and dist.is_initialized():
            dist.destroy_process_group()


@contextlib.contextmanager
def _deferred_interrupt():
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise KeyboardInterrupt (main thread
    only; elsewhere the block runs unguarded)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    previous = signal.signal(signal.SIGINT, lambda *a: got.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if got:
        raise KeyboardInterrupt


def _check(cfg: TrainConfig, device) -> bool:
    """Validate what the data does not decide; returns whether AMP is on."""
    from timar_ros.training.schedule import SCHEDULES

    if not cfg.out:
        raise TrainError("no output folder: give --out RUN_DIR")
    if cfg.schedule not in SCHEDULES:
        raise TrainError(f"--schedule must be one of {SCHEDULES}")
    if cfg.amp not in AMP_MODES:
        raise TrainError(f"--amp must be one of {AMP_MODES}")
    if cfg.amp == "on" and device.type != "cuda":
        raise TrainError("--amp on needs a CUDA device (AMP is fp16 autocast + grad scaler)")
    return device.type == "cuda" and cfg.amp != "off"


class _Run:
    """One training run: set up (model, EMA, optimizer, data; restored on resume), then
    :meth:`run` steps to ``total``, logging, validating and saving on the way."""

    def __init__(
        self,
        cfg: TrainConfig,
        resume,
        rank: int,
        world: int,
        device,
        use_dist: bool,
        t_start: float,
    ):
        import numpy as np
        import torch
        from torch.utils.data.distributed import DistributedSampler

        from timar_ros.model import TIMAR, TIMARConfig, preset
        from timar_ros.training.ema import EMA
        from timar_ros.training.state import load_state, prefixed, unflatten_optimizer

        self.cfg, self.rank, self.world, self.device = cfg, rank, world, device
        self.use_dist, self.t_start, self.main = use_dist, t_start, rank == 0
        self.amp = _check(cfg, device)
        self.out = Path(cfg.out)

        meta, tensors = load_state(resume) if resume else (None, None)
        self.meta = meta
        init_model = None
        if meta is not None:
            self.mcfg = TIMARConfig.from_dict(meta["model_config"])
        elif cfg.init:
            from timar_ros.runtime.checkpoint import load_checkpoint

            try:
                init_model, init_id = load_checkpoint(cfg.init, config_overrides=cfg.overrides)
            except (TypeError, ValueError) as exc:
                raise TrainError(f"--init {cfg.init}: {exc}") from exc
            self.mcfg = init_model.config
        else:
            try:
                self.mcfg = preset(cfg.preset, **cfg.overrides)
            except (TypeError, ValueError) as exc:
                raise TrainError(f"model config: {exc}") from exc
        S = int(cfg.turns or self.mcfg.window_turns)
        F = self.mcfg.frames_per_turn

        torch.manual_seed(cfg.seed + rank)
        np.random.seed((cfg.seed + rank) % 2**32)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        norm = self.mcfg.audio_norm
        self.ds, self.data_summary = build_dataset(cfg.data, S, F, cfg.stride_turns, norm)
        self.sampler = DistributedSampler(
            self.ds, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed, drop_last=True
        )
        self.bpe = len(self.sampler) // cfg.batch_size
        if cfg.steps is not None and cfg.epochs is not None:
            raise TrainError("give --steps or --epochs, not both")
        if cfg.steps is None and cfg.epochs is None:
            raise TrainError("give the length of the run: --steps N or --epochs E")
        if self.bpe == 0:
            raise TrainError(
                f"{len(self.ds)} training windows give no full batch of {cfg.batch_size} "
                f"per process x {world} processes; lower --batch-size or add data"
            )
        self.total = int(cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * self.bpe))
        if self.total < 1:
            raise TrainError("the run has no steps (--steps/--epochs must be > 0)")
        self.warmup = int(
            cfg.warmup_steps if cfg.warmup_steps is not None else round(0.25 * self.total)
        )
        self.global_batch = cfg.batch_size * world
        self.lr = float(cfg.lr if cfg.lr is not None else REFERENCE_BLR * self.global_batch / 256)
        self.val_ds = build_dataset([cfg.val], S, F, None, norm)[0] if cfg.val else None

        self.model = init_model if init_model is not None else TIMAR(self.mcfg)
        if self.mcfg.normalize_motion and meta is None and init_model is None:
            # The scale is the training data's, fixed at the start (saved with the weights;
            # a resume loads it from the state).
            from timar_ros.data.dualtalk import motion_stats

            self.model.set_motion_stats(*motion_stats(self.ds.datasets))
        self.model = self.model.to(device)
        self.model.train()
        self.ema = EMA(self.model, cfg.ema)
        self.opt = torch.optim.AdamW(
            self.model.parameter_groups(cfg.weight_decay), lr=self.lr, betas=tuple(cfg.betas)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp)
        self.step, self.log, self.wall_before = 0, [], 0.0
        if meta is not None:
            self.model.load_state_dict(prefixed(tensors, "model"))
            self.ema.load_state_dict(prefixed(tensors, "ema"))
            self.opt.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
            if meta.get("scaler") and self.amp:
                self.scaler.load_state_dict(meta["scaler"])
            self.step = int(meta["step"])
            self.wall_before = float(meta.get("wall_s", 0.0))
            logf = Path(resume) / "train_log.json"
            if logf.is_file():
                self.log = [
                    e for e in json.loads(logf.read_text())["log"] if e["step"] <= self.step
                ]
            if int(meta.get("world_size", 1)) == world and f"rng.cpu.{rank}" in tensors:
                torch.set_rng_state(tensors[f"rng.cpu.{rank}"])
                if device.type == "cuda" and f"rng.cuda.{rank}" in tensors:
                    torch.cuda.set_rng_state(tensors[f"rng.cuda.{rank}"], device)
            elif self.main:
                print(
                    f"timar train: resuming with {world} processes from a state of "
                    f"{meta.get('world_size')}: RNG streams restart (not bit-exact)",
                    file=sys.stderr,
                )
            if self.step >= self.total and self.main:
                print(
                    f"timar train: the state is at step {self.step} >= --steps {self.total}; "
                    "nothing "
                    f"to do (raise --steps to continue)",
                    file=sys.stderr,
                )

        self.net = loss_module(self.model)
        if use_dist:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.net = DDP(
                self.net,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=True,
            )  # as the reference (CFG/masking can skip tokens)
        self.info = {
            "windows": len(self.ds),
            "window_turns": S,
            "frames_per_turn": F,
            "batches_per_epoch": self.bpe,
            "global_batch": self.global_batch,
            "world_size": world,
            "total_steps": self.total,
            "warmup_steps": self.warmup,
            "lr": self.lr,
            "amp": self.amp,
            "parameters": self.model.num_parameters(),
        }
        if init_model is not None:
            self.info["initialised_from"] = init_id
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            print(
                f"timar train: {self.info['parameters'] / 1e6:.2f} M parameters "
                f"({self.mcfg.preset or 'custom'}, head={self.mcfg.head}), {len(self.ds)} windows "
                "of "
                f"{S}x{F} frames, {self.bpe} batches/epoch of {self.global_batch}, steps "
                f"{self.step}->{self.total}, lr {self.lr:g}, warmup {self.warmup}, device {device}"
                f"{' +AMP' if self.amp else ''}, world {world}",
                file=sys.stderr,
            )

    # ------------------------------------------------------------------ pieces
    def batches_from(self, s: int):
        """Batches from global step ``s`` on (epoch = s // bpe, position = s % bpe)."""
        import torch
        from torch.utils.data import DataLoader

        epoch, pos = divmod(s, self.bpe)
        while True:
            self.sampler.set_epoch(epoch)
            order = batches_of(self.sampler, self.cfg.batch_size)[pos:]
            # A private generator: creating a loader iterator draws a base seed, which must
            # not consume the global RNG (that would shift every draw after a resume).
            gen = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
            loader = DataLoader(
                self.ds,
                batch_sampler=order,
                num_workers=self.cfg.workers,
                pin_memory=self.device.type == "cuda",
                generator=gen,
            )
            yield from loader
            epoch, pos = epoch + 1, 0

    def reduce_mean(self, x: dict) -> dict:
        if not self.use_dist:
            return x
        import torch
        import torch.distributed as dist

        keys = sorted(x)
        t = torch.tensor([x[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return {k: float(v) / self.world for k, v in zip(keys, t.tolist())}

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.t_start

    def summary(self) -> dict:
        tr = [e for e in self.log if e["kind"] == "train"]
        va = [e for e in self.log if e["kind"] == "val"]
        cfg = self.cfg
        return {
            "name": self.out.name,
            "trained": True,
            "weights": f"EMA (rate {cfg.ema})",
            "preset": self.mcfg.preset,
            "head": self.mcfg.head,
            "step": self.step,
            "epochs": round(self.step / self.bpe, 3),
            "wall_s": round(self.wall(), 1),
            "final_train_loss": tr[-1]["loss"] if tr else None,
            "final_val": {k: v for k, v in va[-1].items() if k != "kind"} if va else None,
            "data": self.data_summary,
            "val_data": cfg.val,
            **self.info,
            "recipe": {
                k: v
                for k, v in cfg.to_dict().items()
                if k not in ("data", "val", "out", "progress", "overrides")
            },
            "hardware": hardware(self.device),
        }

    def save(self) -> None:
        import torch
        import torch.distributed as dist

        from timar_ros.runtime.checkpoint import save_checkpoint
        from timar_ros.training.state import save_state

        device = self.device
        rng_cpu = [torch.get_rng_state()]
        rng_cuda = [torch.cuda.get_rng_state(device)] if device.type == "cuda" else None
        if self.use_dist:  # every rank's RNG state, so a resume with the same world size is exact
            gathered: list = [None] * self.world
            dist.all_gather_object(gathered, (rng_cpu[0], rng_cuda[0] if rng_cuda else None))
            rng_cpu = [g[0] for g in gathered]
            rng_cuda = [g[1] for g in gathered] if rng_cuda else None
        if self.main:
            card = self.summary()
            save_checkpoint(self.ema.model, self.out, model_card=card)
            meta_out = {
                "step": self.step,
                "wall_s": self.wall(),
                "world_size": self.world,
                "train_config": self.cfg.to_dict(),
                "model_config": self.mcfg.to_dict(),
                "scaler": self.scaler.state_dict() if self.amp else None,
                "info": self.info,
            }
            save_state(
                self.out,
                model_sd=self.model.state_dict(),
                ema_sd=self.ema.state_dict(),
                optimizer_sd=self.opt.state_dict(),
                rng_cpu=rng_cpu,
                rng_cuda=rng_cuda,
                meta=meta_out,
            )
            write_json(self.out / "train_log.json", {"summary": card, "log": self.log})
            plot_losses(
                self.log,
                self.out / "loss.png",
                f"{self.out.name}: {self.mcfg.preset} head={self.mcfg.head}, batch "
                f"{self.global_batch}, lr {self.lr:g}, EMA {self.cfg.ema}",
            )
        if self.use_dist:
            dist.barrier()

    def validate(self) -> None:
        if self.val_ds is None or not self.main:
            return
        from tqdm import tqdm

        cfg, device = self.cfg, self.device
        v_ema = val_loss(
            self.ema.model, self.val_ds, cfg.batch_size, cfg.val_batches, device, self.amp, cfg.seed
        )
        v_raw = val_loss(
            self.model, self.val_ds, cfg.batch_size, cfg.val_batches, device, self.amp, cfg.seed
        )
        self.log.append(
            {
                "kind": "val",
                "step": self.step,
                "ema_loss": v_ema["loss"],
                "raw_loss": v_raw["loss"],
                **{f"ema_{k}": v for k, v in v_ema.items() if k != "loss"},
            }
        )
        tqdm.write(
            f"step {self.step}: val loss {v_ema['loss']:.4f} (EMA) {v_raw['loss']:.4f} (raw)",
            file=sys.stderr,
        )

    def train_step(self, batch: dict, cur_lr: float) -> tuple[dict, float]:
        """One optimizer step on ``batch``; returns (loss parts, gradient norm)."""
        import torch

        for g in self.opt.param_groups:
            g["lr"] = cur_lr
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            loss, stats = self.net(batch)
        if not torch.isfinite(loss):
            raise TrainError(
                f"loss is {float(loss)} at step {self.step}; lower --lr (now {cur_lr:g}) "
                f"or check the data for NaN/Inf"
            )
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.ema.update(self.model)
        self.step += 1
        return stats, float(gnorm)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        from tqdm import tqdm

        from timar_ros.training.schedule import lr_at

        cfg = self.cfg
        tty = sys.stderr.isatty()
        bar = tqdm(
            total=self.total,
            initial=min(self.step, self.total),
            disable=not (cfg.progress and self.main),
            dynamic_ncols=True,
            mininterval=1.0 if tty else 60.0,
            unit="step",
            file=sys.stderr,
        )
        it = self.batches_from(self.step)
        acc: dict[str, float] = {}
        n_acc, t_int = 0, time.perf_counter()
        val_every = cfg.val_every or cfg.save_every
        try:
            while self.step < self.total:
                batch = to_device(next(it), self.device)
                cur_lr = lr_at(
                    self.step, self.lr, self.warmup, self.total, cfg.schedule, cfg.min_lr
                )
                with _deferred_interrupt():  # Ctrl-C lands between steps: a whole step saved
                    stats, gnorm = self.train_step(batch, cur_lr)
                for k, v in stats.items():
                    acc[k] = acc.get(k, 0.0) + float(v)
                acc["grad_norm"] = acc.get("grad_norm", 0.0) + gnorm
                n_acc += 1
                bar.update(1)
                step = self.step
                if step % cfg.log_every == 0 or step == self.total:
                    m = self.reduce_mean({k: v / n_acc for k, v in acc.items()})
                    dt = time.perf_counter() - t_int
                    self.log.append(
                        {
                            "kind": "train",
                            "step": step,
                            "epoch": round(step / self.bpe, 4),
                            "lr": cur_lr,
                            **{k: round(v, 6) for k, v in m.items()},
                            "s_per_step": round(dt / n_acc, 4),
                            "wall_s": round(self.wall(), 1),
                        }
                    )
                    bar.set_postfix(loss=f"{m['loss']:.4f}", lr=f"{cur_lr:.2e}")
                    if self.main and not tty:
                        tqdm.write(
                            f"step {step}/{self.total} loss {m['loss']:.4f} lr {cur_lr:.2e} "
                            f"|g| {m['grad_norm']:.2f} {dt / n_acc:.2f} s/step",
                            file=sys.stderr,
                        )
                    acc, n_acc, t_int = {}, 0, time.perf_counter()
                if self.val_ds is not None and (step % val_every == 0 or step == self.total):
                    self.validate()
                if step % cfg.save_every == 0 or step == self.total:
                    self.save()
        except KeyboardInterrupt:
            # Ctrl-C: keep the steps done (one process; DDP ranks cannot agree on a save here).
            bar.close()
            if self.world == 1 and self.step > 0:
                self.save()
                print(
                    f"timar train: interrupted at step {self.step}; the state is saved, continue "
                    f"with `timar train --resume {self.out}`",
                    file=sys.stderr,
                )
            raise
        bar.close()
        if self.meta is not None and self.step == int(self.meta["step"]) and self.main:
            self.save()  # nothing trained (already at --steps): still rewrite card/plot
        return self.summary()
