"""Training state for exact resume, without pickle: tensors in ``train_state.safetensors``,
everything else in ``train_state.json``.

Tensors: ``model.<name>`` (raw weights), ``ema.<name>``, ``optim.<param index>.<name>``
(AdamW ``step``/``exp_avg``/``exp_avg_sq``) and the RNG states ``rng.cpu.<rank>`` /
``rng.cuda.<rank>`` (uint8). JSON: the step, the optimizer's param groups (hyperparameters and
parameter indices) and non-tensor per-parameter state, the AMP grad-scaler state, the train
and model configs and the world size the RNG states belong to.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from timar_ros.errors import InputError

STATE_TENSORS = "train_state.safetensors"
STATE_JSON = "train_state.json"


class TrainStateError(InputError, RuntimeError):
    """A training state that cannot be resumed; the message names the file and the fix."""


def flatten_optimizer(opt_sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """torch optimizer ``state_dict()`` -> (tensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt_sd["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{name}"] = v.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[name] = v
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in opt_sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("optim."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for idx, st in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(st)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def save_state(
    out_dir: str | Path,
    *,
    model_sd: dict,
    ema_sd: dict,
    optimizer_sd: dict,
    rng_cpu: list[torch.Tensor],
    rng_cuda: list[torch.Tensor] | None,
    meta: dict,
) -> Path:
    """Write the two state files atomically (temp files, then rename)."""
    from safetensors.torch import save_file

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model_sd.items()}
    tensors.update({f"ema.{k}": v.detach().contiguous().cpu() for k, v in ema_sd.items()})
    opt_t, opt_meta = flatten_optimizer(optimizer_sd)
    tensors.update(opt_t)
    for r, s in enumerate(rng_cpu):
        tensors[f"rng.cpu.{r}"] = s.contiguous()
    for r, s in enumerate(rng_cuda or []):
        tensors[f"rng.cuda.{r}"] = s.contiguous()
    meta = dict(meta, optimizer=opt_meta)
    tmp_t, tmp_j = d / (STATE_TENSORS + ".tmp"), d / (STATE_JSON + ".tmp")
    save_file(tensors, str(tmp_t), metadata={"format": "pt", "producer": "timar_ros train"})
    tmp_j.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    tmp_t.replace(d / STATE_TENSORS)
    tmp_j.replace(d / STATE_JSON)
    return d


def load_state(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """-> (meta JSON, tensors) of a training state folder."""
    from safetensors.torch import load_file

    d = Path(path)
    if d.is_file():
        d = d.parent
    fj, ft = d / STATE_JSON, d / STATE_TENSORS
    for f in (fj, ft):
        if not f.is_file():
            raise TrainStateError(
                f"{f}: missing; --resume needs a folder written by `timar train` "
                f"(with {STATE_JSON} and {STATE_TENSORS})"
            )
    try:
        meta = json.loads(fj.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainStateError(f"{fj}: not valid JSON ({exc})") from exc
    try:
        tensors = load_file(str(ft), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise TrainStateError(
            f"{ft}: cannot read ({exc}); the file is truncated or corrupt"
        ) from exc
    return meta, tensors


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix removed."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
