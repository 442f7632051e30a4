"""The ONNX export's format: file names, version, manifest checks and whether a checkpoint's
export is current. The one home of these facts, for the exporter (torch) and the runtime and
robot set-up (torch-free: this module imports only the standard library)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from timar_ros.runtime.checkpoint import CONFIG, WEIGHTS, CheckpointError

# 2: ring-buffer cache with pre-rotated keys; 3: tick graphs, any-length sample; 4: guidance
# (x_uncond from the embed graphs, sample_cfg); 5: the backbone's key mask additive (no NaN
# guard: 9 % faster, the same outputs) and the cache one input per layer (not copied apart)
FORMAT_VERSION = 5
MANIFEST = "manifest.json"
DEFAULT_SUBDIR = "onnx"  # CHECKPOINT/onnx: where backend=auto looks
OPSET = 18
GRAPHS = (
    "embed_motion",
    "embed_null",
    "embed_tick_motion",
    "embed_tick_null",
    "backbone_step",
    "sample",
    "sample_cfg",
)
FIX = "run `timar export {ckpt}` to (re-)create it"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_export(path) -> tuple[Path, Path | None]:
    """(export folder, checkpoint folder or None) for a checkpoint folder (export in its
    ``onnx/`` subfolder) or an export folder itself (deployment without the torch weights)."""
    p = Path(path)
    if p.is_file() and p.name in (MANIFEST, CONFIG, WEIGHTS):
        p = p.parent
    if (p / MANIFEST).is_file():
        ck = p.parent if (p.parent / WEIGHTS).is_file() and (p.parent / CONFIG).is_file() else None
        return p, ck
    if (p / CONFIG).is_file():
        if (p / DEFAULT_SUBDIR / MANIFEST).is_file():
            return p / DEFAULT_SUBDIR, p
        raise CheckpointError(
            f"{p}: no ONNX export ({p / 'onnx' / MANIFEST} is missing); "
            + FIX.format(ckpt=p)
            + ", or use backend='torch'"
        )
    raise CheckpointError(
        f"{p}: neither a checkpoint folder nor an ONNX export folder (no {CONFIG} or {MANIFEST})"
    )


def read_manifest(export_dir: Path, checkpoint: Path | None = None) -> dict:
    """Parse and check ``manifest.json`` (format, graphs listed); raises CheckpointError."""
    f = export_dir / MANIFEST
    fix = FIX.format(ckpt=checkpoint or "CHECKPOINT")
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{f}: unreadable ONNX manifest ({exc}); {fix}") from exc
    if not isinstance(m, dict) or m.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{f}: manifest format {m.get('format_version') if isinstance(m, dict) else '?'}"
            f" is not {FORMAT_VERSION} (an export by another version); {fix}"
        )
    missing = [g for g in GRAPHS if g not in m.get("graphs", {})]
    if missing:
        raise CheckpointError(f"{f}: graphs {missing} missing from the manifest; {fix}")
    return m


def export_status(checkpoint: str | Path) -> str:
    """ "current", "missing" or "stale" (the export in ``checkpoint/onnx`` is of other weights,
    another config or another format version)."""
    from timar_ros.runtime.checkpoint import checkpoint_dir, load_checkpoint_config, model_id

    ck = checkpoint_dir(checkpoint)
    f = ck / DEFAULT_SUBDIR / MANIFEST
    if not f.is_file():
        return "missing"
    try:
        m = json.loads(f.read_text(encoding="utf-8"))
        ok = (
            m.get("format_version") == FORMAT_VERSION
            and m.get("model_id") == model_id(ck)
            and m.get("config") == load_checkpoint_config(ck).to_dict()
        )
    except (OSError, ValueError, AttributeError):
        ok = False
    return "current" if ok else "stale"
