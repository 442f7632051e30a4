"""From conversation_policy's parameters to a running policy and pipeline, without ROS.

One place for it, so the node, `timar bag evaluate` (offline and live) and the demo load the same
checkpoint with the same backend and settings. ``p`` is the node's parameter dict (the defaults
are in config/timar.yaml, section conversation_policy).
"""

from __future__ import annotations

from pathlib import Path

from timar_ros.runtime.base import BACKENDS as _RUNTIME_BACKENDS

BACKENDS = ("auto", *_RUNTIME_BACKENDS)  # the backend parameter: auto = onnx when exported


def resolve_checkpoint(path: str, how_to_set: str = "set the 'checkpoint' parameter") -> Path:
    """The checkpoint folder to load: ``path``, or the bundled model when empty.

    Raises FileNotFoundError naming the folder and the fix (``how_to_set`` says how the caller's
    user points at another checkpoint)."""
    from timar_ros.runtime.checkpoint import CONFIG, WEIGHTS, bundled_checkpoint, is_checkpoint

    folder = Path(path) if path else bundled_checkpoint()
    if not is_checkpoint(folder):
        raise FileNotFoundError(
            f"no checkpoint at '{folder}' (needs {WEIGHTS} and {CONFIG}): {how_to_set} "
            "to a trained model, or make one with `timar init-checkpoint` or `timar train`"
        )
    return folder


def choose_backend(folder: Path, backend: str) -> tuple[str, str | None]:
    """``backend`` ("auto", "torch" or "onnx") -> (the backend to load, a note for the log or None).

    "auto" takes onnx only when ``folder/onnx`` holds an export of these very weights; a stale
    export (other weights, config or format) would fail or, worse, run another model."""
    if backend not in BACKENDS:
        raise ValueError(
            f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}"
        )
    if backend != "auto":
        return backend, None
    from timar_ros.runtime.onnx_format import export_status  # torch-free

    status = export_status(folder)
    if status == "current":
        return "onnx", None
    if status == "stale":
        return "torch", (
            f"the ONNX export in {folder / 'onnx'} is of another model or format: using "
            f"torch; run `timar export {folder}` for the faster onnx backend"
        )
    return "torch", None


def load_policy(p: dict, how_to_set: str = "set the 'checkpoint' parameter"):
    """The StreamingPolicy the parameters ask for: (policy, backend name, note or None)."""
    from timar_ros.runtime import StreamingPolicy

    folder = resolve_checkpoint(p["checkpoint"], how_to_set)
    backend, note = choose_backend(folder, p["backend"])
    options = {"num_sampling_steps": int(p["num_sampling_steps"])}
    if int(p["context_turns"]) >= 0:
        options["context_turns"] = int(p["context_turns"])
    for name in ("noise_tau_s", "noise_hold_exp", "temperature", "guidance_scale"):
        # -1: the checkpoint's
        if name in p and float(p[name]) >= 0:
            options[name] = float(p[name])
    if int(p.get("guidance_every", -1)) >= 0:  # -1: the checkpoint's
        options["guidance_every"] = int(p["guidance_every"])
    if p.get("audio_norm"):  # '': the checkpoint's
        options["audio_norm"] = str(p["audio_norm"])
    if backend == "onnx" and int(p.get("onnx_threads", 0)) > 0:  # 0: the backend's default
        options["threads"] = int(p["onnx_threads"])
    policy = StreamingPolicy.from_checkpoint(
        folder,
        backend=backend,
        device=p["device"],
        seed=int(p["seed"]),
        kv_cache=bool(p["kv_cache"]),
        **options,
    )
    return policy, backend, note
