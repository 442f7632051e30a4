"""What a training run is given: :class:`TrainConfig` (saved in ``train_state.json`` and reused on
resume) and how command-line values and a resumed run's saved config merge into one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timar_ros.errors import InputError

REFERENCE_BLR = 1e-4  # reference: lr = blr * effective batch / 256
AMP_MODES = ("auto", "on", "off")  # auto: fp16 AMP on CUDA only


class TrainError(InputError, RuntimeError):
    """A run that cannot start; the message names the problem and the fix."""


@dataclass
class TrainConfig:
    """Everything a run needs; saved in ``train_state.json`` and reused on resume."""

    data: list = field(default_factory=list)  # DualTalk-layout training folders
    val: str | None = None  # DualTalk-layout validation folder (loss computed on it)
    out: str = ""
    preset: str = "robot"
    # a checkpoint folder whose config (with ``overrides`` on top), weights and motion scale
    # start the run (fine-tuning); the optimizer and the schedule start fresh
    init: str | None = None
    overrides: dict = field(default_factory=dict)  # TIMARConfig fields (``--set key=value``)
    turns: int | None = None  # window turns S; None = the model's window_turns
    stride_turns: int | None = None  # turns between window starts; None = S (no overlap)
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
    def from_dict(cls, d: dict) -> TrainConfig:
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


def resolve_config(
    given: dict[str, Any],
    model_overrides: dict[str, Any] | None = None,
    resume: str | Path | None = None,
) -> TrainConfig:
    """The config of a run: ``given`` (TrainConfig fields the user set) over the saved config of
    the run ``resume``, or over the defaults with ``model_overrides`` (TIMARConfig fields) for a
    new run. A length given as --steps clears --epochs of a resumed run and vice versa."""
    from timar_ros.training.state import load_state

    given = dict(given)
    if given.get("init") and "preset" in given:
        raise TrainError(
            "--preset and --init both choose the model: with --init the checkpoint's config is "
            "the model (change fields of it with --set KEY=VALUE)"
        )
    if resume:
        if model_overrides or "preset" in given or "init" in given:
            raise TrainError("--set/--preset/--init cannot change the model of a resumed run")
        meta, _ = load_state(resume)
        try:
            base = TrainConfig.from_dict(meta["train_config"]).to_dict()
        except ValueError as exc:
            raise TrainError(
                f"{resume}: the saved train_config cannot be resumed by this "
                f"version: {exc}; edit train_state.json (rename or remove the key) "
                "or start a new run"
            ) from exc
        base["out"] = str(resume)
    else:
        base = TrainConfig().to_dict()
        base["overrides"] = dict(model_overrides or {})
    base.update(given)
    if "steps" in given:
        base["epochs"] = None
    if "epochs" in given:
        base["steps"] = None
    return TrainConfig.from_dict(base)
