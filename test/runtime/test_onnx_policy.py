"""`timar export` + the onnxruntime StreamingPolicy backend against the torch backend.

Parity tolerance: 5e-5 absolute on the motion. Measured: at most 1.7e-5 for this tiny model,
whose motion values reach ~6 (about 3e-6 relative, float32 rounding), with no drift over 40
turns; 1.6e-6 for the robot preset (values up to ~1.5). Conversations are longer than the
window (W = 3) and the receptive field (num_blocks * (W - 1) = 4 turns).
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from helpers.model import conversation, one_thread_module, stream  # noqa: F401
from timar_ros.cli import main as timar_main
from timar_ros.runtime import CheckpointError, StreamingPolicy
from timar_ros.runtime.checkpoint import make_random_checkpoint

TOL = 5e-5
REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = make_random_checkpoint(
        "tiny", tmp_path_factory.mktemp("ck") / "tiny", seed=1, perturb=0.2, window_turns=3
    )
    assert timar_main(["export", str(d)]) == 0  # default OUT_DIR: CKPT/onnx
    return d


def _pair(ckpt, **kw):
    return (
        StreamingPolicy.from_checkpoint(ckpt, backend="torch", seed=7, **kw),
        StreamingPolicy.from_checkpoint(ckpt, backend="onnx", seed=7, **kw),
    )


def test_manifest(ckpt):
    m = json.loads((ckpt / "onnx" / "manifest.json").read_text())
    assert set(m["graphs"]) == {
        "embed_motion",
        "embed_null",
        "embed_tick_motion",
        "embed_tick_null",
        "backbone_step",
        "sample",
        "sample_cfg",
    }
    assert m["model_id"].startswith("tiny-") and m["opset"] >= 17
    bb = m["graphs"]["backbone_step"]
    assert bb["inputs"]["valid"]["shape"] == [2] and bb["inputs"]["valid"]["dtype"] == "bool"
    # one cache input per layer, [1, heads, (W-1) turns of tokens, head_dim]
    layers = [n for n in m["cache"] if n.startswith("cache_k0_")]
    assert layers and [n for n in m["cache"] if n.startswith("cache_v0_")]
    assert bb["inputs"][layers[0]]["shape"][2] == 2 * m["tokens_per_turn"]
    assert all(len(g["sha256"]) == 64 for g in m["graphs"].values())
    assert not list((ckpt / "onnx").glob("*.data"))  # single-file graphs


@pytest.mark.parametrize("n_turns", [5, 13])
@pytest.mark.parametrize("motion", [True, False])
def test_parity_with_torch_beyond_the_window(ckpt, n_turns, motion):
    torch_pol, onnx_pol = _pair(ckpt)
    assert onnx_pol.backend == "onnx" and onnx_pol.model_id == torch_pol.model_id
    ua, aa, um = conversation(torch_pol.model, n_turns, seed=n_turns, motion=motion)
    a, b = stream(torch_pol, ua, aa, um), stream(onnx_pol, ua, aa, um)
    assert b.shape == (n_turns * 25, 56) and b.dtype == np.float32
    assert np.abs(a - b).max() < TOL
    assert np.abs(a).max() > 0.05  # motion is not trivially zero
    assert onnx_pol.history_turns == torch_pol.history_turns == 2
    assert onnx_pol.turn_index == n_turns
    # run_offline: a fresh stream, state untouched
    off = onnx_pol.run_offline(ua, aa, um)
    assert np.abs(off - b).max() < TOL and onnx_pol.turn_index == n_turns
    # ... and the stream goes on where it was (ring buffer untouched by run_offline)
    nxt = [
        p.step(ua[:16000], aa[:16000], None if um is None else um[:25])
        for p in (torch_pol, onnx_pol)
    ]
    assert np.abs(nxt[0] - nxt[1]).max() < TOL


@pytest.mark.parametrize("motion", [False, True])
def test_ticks_parity_with_torch(ckpt, motion):
    """Streaming inside the turn on both backends, same noise: equal within 1e-4; the history
    they commit gives the next 1-s step the same output too."""
    from timar_ros.runtime.ticks import TickSchedule

    pt, po = _pair(ckpt, temperature=1.3)
    ua, aa, um = conversation(pt.model, 6, seed=3, motion=motion)
    for sched in (TickSchedule(pt.frames_per_turn, 3, 1), TickSchedule(pt.frames_per_turn, 1)):
        a, b = pt.run_ticks(ua, aa, sched, um), po.run_ticks(ua, aa, sched, um)
        assert a.shape == (len(ua) // pt.samples_per_turn * pt.frames_per_turn, 56)
        assert np.abs(a - b).max() < 1e-4
    spt, F = pt.samples_per_turn, pt.frames_per_turn
    for p in (pt, po):
        for t in range(4):
            u, a_ = ua[t * spt : (t + 1) * spt], aa[t * spt : (t + 1) * spt]
            m = None if um is None else um[t * F : (t + 1) * F]
            for tk in TickSchedule(F, 4).ticks():
                p.tick(u, a_, (tk.heard, F), tk.frames, m)
            p.end_turn(u, a_, m)
    u, a_ = ua[4 * spt : 5 * spt], aa[4 * spt : 5 * spt]
    m = None if um is None else um[4 * F : 5 * F]
    assert np.abs(pt.step(u, a_, m) - po.step(u, a_, m)).max() < TOL


@pytest.mark.parametrize("context_turns", [None, 1])
def test_guidance_parity_with_torch(ckpt, context_turns):
    """Classifier-free guidance on both backends, same noise: the 1-s mode beyond the window
    (and over a crop of the history), and ticks inside the turn; guidance changes the motion."""
    from timar_ros.runtime.ticks import TickSchedule

    kw = {} if context_turns is None else {"context_turns": context_turns}
    pt, po = _pair(ckpt, guidance_scale=2.5, **kw)
    ua, aa, um = conversation(pt.model, 6, seed=5, motion=True)
    a, b = stream(pt, ua, aa, um), stream(po, ua, aa, um)
    assert np.abs(a - b).max() < TOL
    plain = stream(StreamingPolicy.from_checkpoint(ckpt, backend="onnx", seed=7, **kw), ua, aa, um)
    assert np.abs(plain - b).max() > 1e-2
    if context_turns is None:
        sched = TickSchedule(pt.frames_per_turn, 3, 1)
        a, b = pt.run_ticks(ua, aa, sched, um), po.run_ticks(ua, aa, sched, um)
        assert np.abs(a - b).max() < 1e-4


class _Counted:
    """An onnxruntime session whose runs are counted (the real session does the work)."""

    def __init__(self, sess):
        self.sess, self.runs = sess, 0

    def run(self, *a, **kw):
        self.runs += 1
        return self.sess.run(*a, **kw)


def _tick_turns(policy, ua, aa, um, heard_agent_all: bool):
    """Turns of 3-frame ticks, the robot's audio known for the whole turn or heard as it comes
    -> [N*F, 56]."""
    from timar_ros.runtime.ticks import TickSchedule

    spt, F = policy.samples_per_turn, policy.frames_per_turn
    out = []
    for t in range(len(ua) // spt):
        u, a_ = ua[t * spt : (t + 1) * spt], aa[t * spt : (t + 1) * spt]
        m = um[t * F : (t + 1) * F]
        for tk in TickSchedule(F, 3).ticks():
            agent = F if heard_agent_all else tk.heard
            out.append(policy.tick(u, a_, (tk.heard, agent), tk.frames, m))
        policy.end_turn(u, a_, m)
    return np.concatenate(out, 0)


def test_guidance_every_second_tick_reuses_the_unconditional_pass(ckpt):
    """guidance_every=2: the unconditional backbone pass runs at a turn's first tick and every
    second after it. Both backends agree; where its input cannot change between ticks (the
    robot's audio known for the whole turn, the shown prefix hidden) the motion is that of
    guidance at every tick; where it does (the robot heard as it speaks), only the ticks that
    reuse it differ, and the backbone runs fewer times."""
    from timar_ros.runtime.ticks import TickSchedule

    kw = {"guidance_scale": 2.5}
    model = StreamingPolicy.from_checkpoint(ckpt).model
    ua, aa, um = conversation(model, 4, seed=8)
    F = model.config.frames_per_turn
    n = len(TickSchedule(F, 3).ticks())
    for show in (False, True):
        every = StreamingPolicy.from_checkpoint(
            ckpt, backend="onnx", seed=7, show_prefix=show, **kw
        )
        pt, po = _pair(ckpt, guidance_every=2, show_prefix=show, **kw)
        assert pt.guidance_every == po.guidance_every == 2
        po._sess["backbone_step"] = counted = _Counted(po._sess["backbone_step"])
        for heard_all in (True, False):
            base = _tick_turns(every, ua, aa, um, heard_all)
            a, b = _tick_turns(pt, ua, aa, um, heard_all), _tick_turns(po, ua, aa, um, heard_all)
            assert np.abs(a - b).max() < 1e-4
            first = np.arange(len(base)) % F < 3  # each turn's first tick (3 frames)
            assert first.sum() < len(base)
            assert np.abs(base[first] - b[first]).max() < 1e-5
            if heard_all and not show:
                assert np.abs(base - b).max() < 1e-5
            else:
                assert np.abs(base[~first] - b[~first]).max() > 1e-4
        # per turn: the pass with the partner at every tick, without it at every second, the
        # commit; 4 turns, twice
        assert counted.runs == 2 * 4 * (n + (n + 1) // 2 + 1)
    with pytest.raises(ValueError, match="guidance_every must be a whole number"):
        StreamingPolicy.from_checkpoint(ckpt, backend="onnx", guidance_every=0)


def test_guidance_of_the_pose_in_the_first_steps_is_exported(tmp_path):
    """A checkpoint that guides only the head rotation in its first 2 sampling steps: the export
    builds them into sample_cfg, and the backends agree."""
    d = make_random_checkpoint(
        "tiny",
        tmp_path / "tiny",
        seed=1,
        perturb=0.2,
        window_turns=3,
        guidance_scale=2.5,
        guidance_groups="pose",
        guidance_steps=2,
    )
    assert timar_main(["export", str(d)]) == 0
    pt, po = _pair(d)
    assert po.guidance_scale == 2.5
    ua, aa, um = conversation(pt.model, 4, seed=6, motion=True)
    a, b = stream(pt, ua, aa, um), stream(po, ua, aa, um)
    assert np.abs(a - b).max() < TOL
    every = StreamingPolicy.from_checkpoint(d, backend="torch", seed=7, guidance_scale=2.5)
    every.model.config = every.model.config.replace(guidance_groups="all", guidance_steps=0)
    assert np.abs(stream(every, ua, aa, um) - a).max() > 1e-3


def test_context_turns_and_temperature(ckpt):
    torch_pol, onnx_pol = _pair(ckpt, context_turns=1, temperature=0.7)
    ua, aa, um = conversation(torch_pol.model, 8, seed=3)
    a, b = stream(torch_pol, ua, aa, um), stream(onnx_pol, ua, aa, um)
    assert np.abs(a - b).max() < TOL and onnx_pol.history_turns == 1
    full = StreamingPolicy.from_checkpoint(ckpt, backend="onnx", seed=7, temperature=0.7)
    assert np.abs(stream(full, ua, aa, um) - b).max() > 1e-4  # the context limit matters


def test_correlated_noise_same_on_both_backends(ckpt):
    """noise_tau_s > 0: both backends draw the same correlated noise, streaming == offline,
    and the motion is smoother frame to frame than with independent noise."""
    torch_pol, onnx_pol = _pair(ckpt, noise_tau_s=1.0)
    ua, aa, um = conversation(torch_pol.model, 6, seed=4)
    a, b = stream(torch_pol, ua, aa, um), stream(onnx_pol, ua, aa, um)
    assert np.abs(a - b).max() < TOL
    assert np.abs(torch_pol.run_offline(ua, aa, um) - a).max() < TOL

    # the part of the motion the noise decides (two seeds apart) is smoother frame to frame
    def noise_part(**kw):
        a, b = (
            stream(StreamingPolicy.from_checkpoint(ckpt, backend="onnx", seed=s, **kw), ua, aa, um)
            for s in (7, 8)
        )
        return np.abs(np.diff(a - b, 2, axis=0)).mean()

    assert noise_part(noise_tau_s=1.0) < 0.8 * noise_part()  # a random head: weaker than trained
    with pytest.raises(ValueError, match="noise_tau_s"):
        StreamingPolicy.from_checkpoint(ckpt, backend="onnx", noise_tau_s=-1.0)


def test_export_folder_alone_and_options(ckpt, tmp_path):
    shutil.copytree(ckpt / "onnx", tmp_path / "deploy")  # deployment without the torch weights
    pol = StreamingPolicy.from_checkpoint(tmp_path / "deploy", backend="onnx", threads=1)
    assert pol.frames_per_turn == 25 and pol.threads == 1
    with pytest.raises(ValueError, match="KV cache"):
        StreamingPolicy.from_checkpoint(ckpt, backend="onnx", kv_cache=False)
    with pytest.raises(ValueError, match="--num-sampling-steps 3"):
        StreamingPolicy.from_checkpoint(ckpt, backend="onnx", num_sampling_steps=3)
    with pytest.raises(ValueError, match="context_turns"):
        StreamingPolicy.from_checkpoint(ckpt, backend="onnx", context_turns=3)


def _copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_checksum_mismatch_is_a_clear_error(ckpt, tmp_path):
    d = _copy_checkpoint(ckpt, tmp_path / "tiny")
    with open(d / "onnx" / "sample.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(CheckpointError, match=r"sample\.onnx: sha256 does not match.*timar export"):
        StreamingPolicy.from_checkpoint(d, backend="onnx")


def test_stale_export_and_missing_export(ckpt, tmp_path):
    other = make_random_checkpoint("tiny", tmp_path / "tiny", seed=2, window_turns=3)
    with pytest.raises(CheckpointError, match="no ONNX export.*timar export"):
        StreamingPolicy.from_checkpoint(other, backend="onnx")
    shutil.copytree(ckpt / "onnx", other / "onnx")  # an export of different weights
    with pytest.raises(CheckpointError, match="stale.*timar export"):
        StreamingPolicy.from_checkpoint(other, backend="onnx")


CHILD = """
import sys
import numpy as np
from timar_ros.runtime import StreamingPolicy
pol = StreamingPolicy.from_checkpoint(sys.argv[1], backend="onnx", seed=7)
z = np.zeros(pol.samples_per_turn, np.float32)
out = [pol.step(z, z) for _ in range(5)]
assert np.isfinite(np.stack(out)).all()
# the node's backend=auto path on a robot without torch
from timar_ros.resources import node_defaults
from timar_ros.robot.policy_setup import load_policy
pol, backend, note = load_policy({**node_defaults("conversation_policy"), "checkpoint": sys.argv[1],
                                  "backend": "auto"})
assert (backend, note) == ("onnx", None) and pol.backend == "onnx", (backend, note)
mods = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH_MODULES", mods)
assert not mods, mods
"""


def test_onnx_backend_never_imports_torch(ckpt):
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(ckpt)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert "TORCH_MODULES []" in r.stdout


def test_export_status_and_ensure_export(ckpt, tmp_path):
    from timar_ros.runtime.export import ensure_export
    from timar_ros.runtime.onnx_format import export_status

    assert export_status(ckpt) == "current"
    assert ensure_export(ckpt, log=lambda *a: None) == ckpt / "onnx"  # nothing re-exported
    other = make_random_checkpoint("tiny", tmp_path / "tiny", seed=3, window_turns=3)
    assert export_status(other) == "missing"
    shutil.copytree(ckpt / "onnx", other / "onnx")
    assert export_status(other) == "stale"


def test_auto_backend_takes_only_a_current_export(ckpt, tmp_path):
    """conversation_policy's backend=auto: onnx for a current export, torch (and why) otherwise."""
    from timar_ros.resources import node_defaults
    from timar_ros.robot.policy_setup import load_policy

    params = {**node_defaults("conversation_policy"), "backend": "auto"}
    pol, backend, note = load_policy({**params, "checkpoint": str(ckpt)})
    assert (backend, note, pol.backend) == ("onnx", None, "onnx")
    assert pol.threads == params["onnx_threads"] == 1  # the robot's default: 30 % of a core
    assert load_policy({**params, "checkpoint": str(ckpt), "onnx_threads": 2})[0].threads == 2
    other = make_random_checkpoint("tiny", tmp_path / "tiny", seed=4, window_turns=3)
    pol, backend, note = load_policy({**params, "checkpoint": str(other)})
    assert (backend, note, pol.backend) == ("torch", None, "torch")  # no export: torch, quietly
    shutil.copytree(ckpt / "onnx", other / "onnx")  # an export of other weights
    pol, backend, note = load_policy({**params, "checkpoint": str(other)})
    assert backend == pol.backend == "torch"
    assert "another model" in note and f"timar export {other}" in note
