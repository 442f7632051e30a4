"""The training run's parts around its loop (:mod:`timar_ros.training.loop`): the torchrun
environment and device, the dataset of turn windows, the loss module, batches, the validation
loss and the loss plot."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from timar_ros.files import save_figure
from timar_ros.training.config import TrainError


def dist_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) without it."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def pick_device(name: str, local_rank: int):
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


def build_dataset(
    dirs: list,
    turns: int,
    frames_per_turn: int,
    stride_turns: int | None = None,
    audio_norm: str = "none",
):
    """ConcatDataset of :class:`DualTalkWindows` over ``dirs`` (audio normalised as the model's
    ``audio_norm`` says); errors name the bad folder."""
    from torch.utils.data import ConcatDataset

    from timar_ros.data.dualtalk import DualTalkWindows

    if not dirs:
        raise TrainError(
            "no training data: give --data DIR [DIR ...] (DualTalk layout, e.g. "
            "written by `timar synth`)"
        )
    if stride_turns is not None and not 1 <= stride_turns <= turns:
        raise TrainError(f"--stride-turns must be in 1..{turns} (the window's turns)")
    parts, summaries = [], []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise TrainError(f"data folder not found: {p}")
        try:
            ds = DualTalkWindows(
                p,
                turns=turns,
                frames_per_turn=frames_per_turn,
                stride_turns=stride_turns,
                audio_norm=audio_norm,
            )
        except FileNotFoundError as exc:
            raise TrainError(
                f"{p}: {exc}; a DualTalk folder holds <clip>_speaker1/2 .wav + .npz "
                f"pairs (`timar synth {p}` writes one)"
            ) from exc
        if len(ds) == 0:
            need = turns * frames_per_turn
            raise TrainError(
                f"{p}: no training windows: all {ds.skipped} directions are shorter than one "
                f"window of {turns} turns x {frames_per_turn} frames = {need / 25:.1f} s "
                f"(longest: {max(ds.frames.values(), default=0) / 25:.1f} s); use longer files "
                f"or fewer --turns"
            )
        parts.append(ds)
        summaries.append(ds.summary())
    return ConcatDataset(parts), summaries


def loss_module(model):
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


def batches_of(sampler, batch_size: int) -> list[list[int]]:
    idx = list(sampler)
    return [idx[i : i + batch_size] for i in range(0, len(idx) - batch_size + 1, batch_size)]


def to_device(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def hardware(device) -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:  # Linux: the CPU's marketing name
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {
        "device": str(device),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        hw["gpu"] = torch.cuda.get_device_name(device)
    return hw


def val_loss(model, ds, batch_size: int, max_batches: int, device, amp: bool, seed: int) -> dict:
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
        loader = DataLoader(
            ds, batch_size=batch_size, shuffle=False, generator=torch.Generator().manual_seed(seed)
        )
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                _, st = model.training_loss(to_device(batch, device))
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
        sm = [
            sum(y[max(0, i - k + 1) : i + 1]) / len(y[max(0, i - k + 1) : i + 1])
            for i in range(len(y))
        ]
        ax.plot(s, sm, color="C0", lw=1.5, label=f"train (running mean of {k})")
    if va:
        ax.plot(
            [e["step"] for e in va],
            [e["ema_loss"] for e in va],
            "o-",
            color="C3",
            ms=4,
            label="val (EMA weights)",
        )
        ax.plot(
            [e["step"] for e in va],
            [e["raw_loss"] for e in va],
            "s--",
            color="C2",
            ms=3,
            label="val (raw weights)",
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if tr and min(e["loss"] for e in tr) > 0:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return Path(path)
