"""Checkpoints: ``<dir>/model.safetensors`` + ``<dir>/config.json`` (+ optional
``model_card.md`` / ``model_card.json``).

Loading never unpickles: weights are read with ``safetensors`` only. A missing, truncated or
mismatched checkpoint raises :class:`CheckpointError` naming the file, the problem and the fix.
The config and header checks import only numpy/json (usable by the torch-free runtime); torch is
imported inside the functions that build a model.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from timar_ros.errors import InputError
from timar_ros.files import write_json, write_text_atomic

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"
BUNDLED = "robot"  # checkpoints/robot: the model the nodes and `make demo` run by default

_FIX = "re-create it (`timar init-checkpoint --preset robot DIR`, or `timar train`)"


class CheckpointError(InputError, RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


def is_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a checkpoint's two files (not whether they are valid)."""
    folder = Path(folder)
    return (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file()


def bundled_checkpoint(name: str = BUNDLED) -> Path:
    """The folder of a checkpoint shipped with the package (``checkpoints/<name>``); it may be
    missing (see :func:`is_checkpoint`)."""
    from timar_ros.resources import share_dir

    return share_dir() / "checkpoints" / name


def checkpoint_or_random(
    path: str | Path | None, preset_name: str, scratch: str | Path
) -> tuple[Path, str]:
    """The checkpoint a measurement (bench, soak) runs, and a note saying which: ``path`` when
    given, else the bundled ``checkpoints/<preset_name>``, else a random init of the preset
    written into ``scratch`` (same size and speed, meaningless motion)."""
    if path:
        return Path(path), f"given: {path}"
    bundled = bundled_checkpoint(preset_name)
    if is_checkpoint(bundled):
        return bundled, f"bundled checkpoints/{preset_name}"
    return (
        make_random_checkpoint(preset_name, Path(scratch) / f"{preset_name}-random"),
        f"checkpoints/{preset_name} not found: a randomly initialised {preset_name!r} checkpoint "
        "(same size and speed, meaningless motion)",
    )


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder for ``path`` (the folder itself, or one of its files)."""
    p = Path(path)
    if p.is_file() and p.name in (WEIGHTS, CONFIG, CARD_MD, CARD_JSON):
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint directory not found; {_FIX}")
    if not p.is_dir():
        raise CheckpointError(
            f"{p}: expected a checkpoint directory holding {WEIGHTS} and {CONFIG}"
        )
    return p


def load_checkpoint_config(path: str | Path):
    """The :class:`TIMARConfig` of a checkpoint (torch-free)."""
    from ..model.config import TIMARConfig

    f = checkpoint_dir(path) / CONFIG
    if not f.is_file():
        raise CheckpointError(f"{f}: missing; every checkpoint needs its {CONFIG}; {_FIX}")
    try:
        d = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{f}: not valid JSON ({exc}); {_FIX}") from exc
    if not isinstance(d, dict):
        raise CheckpointError(f"{f}: expected a JSON object of TIMARConfig fields")
    try:
        return TIMARConfig.from_dict(d)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{f}: invalid TIMAR config: {exc}") from exc


def read_header(path: str | Path) -> dict[str, Any]:
    """Parse and check a safetensors header (tensor names, dtypes, shapes, offsets) without
    loading data; detects truncated and corrupt files."""
    f = Path(path)
    if not f.is_file():
        raise CheckpointError(f"{f}: missing weights file; {_FIX}")
    size = f.stat().st_size
    with f.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{f}: truncated ({size} bytes, not a safetensors file); {_FIX}")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            raise CheckpointError(
                f"{f}: truncated or not a safetensors file (header of {n} bytes "
                f"in a {size}-byte file); {_FIX}"
            )
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{f}: corrupt safetensors header ({exc}); {_FIX}") from exc
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise CheckpointError(
            f"{f}: truncated: tensors need {8 + n + end} bytes, the file has {size}; {_FIX}"
        )
    return header


def weights_sha256(path: str | Path) -> str:
    """sha256 of the weights' content: the tensor table (names, dtypes, shapes, offsets; the
    free-form metadata is left out, its key order is not stable) and the tensor bytes."""
    f = Path(path)
    header = read_header(f)
    table = {k: v for k, v in header.items() if k != "__metadata__"}
    h = hashlib.sha256(json.dumps(table, sort_keys=True).encode())
    with f.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        fh.seek(8 + n)
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_id(path: str | Path) -> str:
    """``<checkpoint folder name>-<first 8 hex of the weights' sha256>``."""
    d = checkpoint_dir(path)
    return f"{d.name}-{weights_sha256(d / WEIGHTS)[:8]}"


def read_model_card(path: str | Path) -> dict | str | None:
    d = checkpoint_dir(path)
    if (d / CARD_JSON).is_file():
        return json.loads((d / CARD_JSON).read_text(encoding="utf-8"))
    if (d / CARD_MD).is_file():
        return (d / CARD_MD).read_text(encoding="utf-8")
    return None


def save_checkpoint(model, out_dir: str | Path, model_card: dict | str | None = None) -> Path:
    """Write ``model`` (a TIMAR) as safetensors + config.json (+ model card) into ``out_dir``."""
    from safetensors.torch import save_file

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in model.checkpoint_state_dict().items()}
    tmp = d / (WEIGHTS + ".tmp")
    save_file(sd, str(tmp), metadata={"format": "pt", "producer": "timar_ros"})
    tmp.replace(d / WEIGHTS)
    (d / WEIGHTS).chmod(0o644)
    model.config.save(d / CONFIG)
    if isinstance(model_card, dict):
        write_json(d / CARD_JSON, model_card)
    elif isinstance(model_card, str):
        write_text_atomic(d / CARD_MD, model_card)
    return d


def load_checkpoint(path: str | Path, device: str = "cpu", config_overrides: dict | None = None):
    """-> (TIMAR model in eval mode on ``device``, model_id). Safetensors only, strict keys."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..model.timar import TIMAR

    d = checkpoint_dir(path)
    config = load_checkpoint_config(d)
    if config_overrides:
        config = config.replace(**config_overrides)
    w2v = Path(config.wav2vec2_path)
    if config.speech_encoder == "wav2vec2" and not w2v.is_absolute() and (d / w2v).is_dir():
        # a wav2vec2 folder that travels with the checkpoint (e.g. OUT_DIR/wav2vec2)
        config = config.replace(wav2vec2_path=str(d / w2v))
    wf = d / WEIGHTS
    read_header(wf)
    try:
        sd = load_file(str(wf), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{wf}: cannot read safetensors weights ({exc}); {_FIX}") from exc
    try:
        model = TIMAR(config)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{d / CONFIG}: cannot build the model: {exc}") from exc
    expected = model.checkpoint_state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    wrong = sorted(
        k for k in set(sd) & set(expected) if tuple(sd[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if wrong:
            parts.append(
                "shape mismatch for "
                + ", ".join(
                    f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k].shape)}" for k in wrong[:3]
                )
            )
        raise CheckpointError(
            f"{wf}: weights do not match {d / CONFIG}: "
            + "; ".join(parts)
            + "; the two files must come from the same save"
        )
    model.load_state_dict(sd, strict=False)
    with torch.no_grad():
        for k, v in sd.items():
            if not torch.isfinite(v).all():
                raise CheckpointError(f"{wf}: tensor {k} holds NaN/Inf values")
    model.eval().to(device)
    return model, f"{d.name}-{weights_sha256(wf)[:8]}"


def float16_output_change(policy_factory, model, run, draws: int = 3, seed: int = 0) -> float:
    """How far float16 storage can move a model's outputs: the largest |change| of ``run``'s
    output over ``draws`` models whose weights are moved uniformly within half a float16 step
    (the box that holds every float32 model rounding to these weights, the original included).

    Args:
        policy_factory: model -> a fresh policy (the same noise seed each time).
        model: a TIMAR whose weights are float16 values (e.g. a float16 checkpoint loaded).
        run: policy -> output array (e.g. motion [T, 56] of a fixed input).
    Returns the max abs difference to the unperturbed output (motion units).
    """
    import numpy as np
    import torch

    base = run(policy_factory(model))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    try:
        for _ in range(draws):
            with torch.no_grad():
                for v in model.state_dict().values():
                    if v.is_floating_point():
                        mag = v.abs().float().clamp_min(2.0**-14)  # float16 normal range
                        step = 2.0 ** (torch.floor(torch.log2(mag)) - 10)  # 10 mantissa bits
                        v.add_((torch.rand(v.shape, generator=g) - 0.5) * step)
            worst = max(worst, float(np.abs(run(policy_factory(model)) - base).max()))
            model.load_state_dict(saved)
    finally:
        model.load_state_dict(saved)
    return worst


def make_random_checkpoint(
    preset_name: str, out_dir: str | Path, seed: int = 0, perturb: float = 0.02, **overrides
) -> Path:
    """Build ``TIMAR(preset(preset_name, **overrides))`` with torch seed ``seed``, perturb the
    zero-initialised head weights by N(0, perturb) (so motion depends on the inputs) and save."""
    import torch

    from timar_ros.model.config import preset
    from timar_ros.model.timar import TIMAR, perturb_zero_init

    torch.manual_seed(seed)
    model = TIMAR(preset(preset_name, **overrides))
    if perturb > 0:
        perturb_zero_init(model, perturb, seed)
    card = {
        "name": Path(out_dir).name,
        "preset": preset_name,
        "trained": False,
        "description": "randomly initialised weights (tests and benchmarks only; produces "
        "meaningless motion)",
        "seed": seed,
        "head_perturbation_std": perturb,
        "trainable_parameters": model.num_parameters(),
    }
    return save_checkpoint(model, out_dir, model_card=card)
