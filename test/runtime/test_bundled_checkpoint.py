"""The bundled model (checkpoints/robot) loads with both backends and does what its card says:
float16 weights whose rounding moves the outputs by no more than the card states, the onnx
backend equal to torch, a jaw that opens with the robot's own speech (8 s of the bundled demo
conversation), and on the whole demo conversation motion as smooth as its rule targets (jitter
ratio) with a head that moves while the robot listens. A broken or retrained-badly bundled model
fails here."""

import json

import numpy as np
import pytest
import soundfile as sf
from safetensors import safe_open

from timar_ros.data.dualtalk_files import load_motion
from timar_ros.eval.behaviour import GROUPS, listening_mask
from timar_ros.motion import SAMPLE_RATE
from timar_ros.resources import share_dir
from timar_ros.runtime import StreamingPolicy
from timar_ros.runtime.checkpoint import CARD_JSON, WEIGHTS, float16_output_change, load_checkpoint
from timar_ros.runtime.export import ensure_export
from timar_ros.runtime.torch_policy import TorchStreamingPolicy

BUNDLED = share_dir() / "checkpoints" / "robot"
DEMO = share_dir() / "data" / "demo_conversation"
TURNS = 8  # 0.5-3.1 s the partner speaks, 3.6-8.0 s the robot
SEAM_MAX = 1.5  # jitter at tick or turn seams over elsewhere, any group (streamed)


@pytest.fixture(scope="module")
def demo():
    user, sr = sf.read(DEMO / "demo_speaker1.wav", dtype="float32")
    robot, _ = sf.read(DEMO / "demo_speaker2.wav", dtype="float32")
    assert sr == SAMPLE_RATE
    n = TURNS * SAMPLE_RATE
    return user[:n], robot[:n]


@pytest.fixture(scope="module")
def card():
    return json.loads((BUNDLED / CARD_JSON).read_text())


def run(policy, demo):
    user, robot = demo
    policy.reset()
    spt = policy.samples_per_turn
    return np.concatenate(
        [
            policy.step(user[k * spt : (k + 1) * spt], robot[k * spt : (k + 1) * spt], None)
            for k in range(TURNS)
        ]
    )


def test_weights_are_float16_and_rounding_moves_outputs_within_the_card(card, demo):
    with safe_open(str(BUNDLED / WEIGHTS), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"F16"}, dtypes
    assert card["storage"]["dtype"] == "float16"
    model, _ = load_checkpoint(BUNDLED)
    assert {p.dtype for p in model.parameters()} == {__import__("torch").float32}
    change = float16_output_change(
        lambda m: TorchStreamingPolicy(m, seed=0), model, lambda p: run(p, demo)
    )
    assert change <= card["storage"]["max_output_change"], change


@pytest.mark.slow
def test_both_backends_agree_and_the_jaw_follows_the_robots_speech(demo):
    # the export `make demo` makes and keeps (made here if no test made it before)
    assert ensure_export(BUNDLED, log=lambda *a: None) is not None
    ckpt = BUNDLED
    motions = {
        b: run(StreamingPolicy.from_checkpoint(ckpt, backend=b, seed=0), demo)
        for b in ("torch", "onnx")
    }
    assert np.abs(motions["torch"] - motions["onnx"]).max() < 1e-4
    robot = demo[1]
    envelope = np.sqrt(np.mean(robot.reshape(-1, SAMPLE_RATE // 25) ** 2, axis=1))  # per frame
    for backend, m in motions.items():
        jaw = m[:, 50]
        assert np.corrcoef(jaw, envelope)[0, 1] > 0.5, backend
        speaking, silent = jaw[100:190].mean(), jaw[15:75].mean()  # robot 4.0-7.6 s vs 0.6-3.0 s
        assert speaking > 3 * max(silent, 0.01), (backend, speaking, silent)


@pytest.mark.slow
@pytest.mark.parametrize("tick_s", [1.0, 0.12])
def test_motion_on_the_whole_demo_is_smooth_and_the_head_moves_while_listening(tick_s):
    """Three seeds on the 32-s demo conversation (no partner motion, as on a robot without a
    camera), in the 1-s mode and streamed in 0.12-s ticks as the robot runs it: the jitter ratio
    (mean |second difference| against the rule targets) is <= 1.5 in every group, the jaw follows
    the targets, the head moves while the robot listens; streamed, the motion is no rougher
    where blocks meet (tick and turn seams) than elsewhere beyond SEAM_MAX."""
    from timar_ros.eval.boundaries import boundary_jitter
    from timar_ros.runtime.ticks import TickSchedule

    user, _ = sf.read(DEMO / "demo_speaker1.wav", dtype="float32")
    robot, _ = sf.read(DEMO / "demo_speaker2.wav", dtype="float32")
    gt = load_motion(DEMO / "demo_speaker2.npz")
    n = len(user) // SAMPLE_RATE
    user, robot, gt = user[: n * SAMPLE_RATE], robot[: n * SAMPLE_RATE], gt[: n * 25]
    env = np.sqrt(np.mean(robot.reshape(-1, SAMPLE_RATE // 25) ** 2, axis=1))
    listening = listening_mask(env > 0.3 * env.max(), settle_s=0.5)
    jit_gt = np.abs(np.diff(gt, 2, axis=0)).mean(0)
    schedule = TickSchedule.from_seconds(25, tick_s)
    for seed in range(3):
        pol = StreamingPolicy.from_checkpoint(BUNDLED, backend="torch", seed=seed)
        m = (
            pol.run_ticks(user, robot, schedule)
            if schedule.streaming
            else pol.run_offline(user, robot, None)
        )
        if schedule.streaming:
            seams = boundary_jitter([m], 25, schedule.tick_frames)
            worst = max(
                seams[g][k] for g in seams for k in ("turn_over_elsewhere", "tick_over_elsewhere")
            )
            assert worst <= SEAM_MAX, (seed, seams)
        jit = np.abs(np.diff(m, 2, axis=0)).mean(0)
        ratios = {g: jit[sl].sum() / jit_gt[sl].sum() for g, sl in GROUPS.items()}
        assert max(ratios.values()) <= 1.5, (seed, ratios)
        assert np.corrcoef(m[:, 50], gt[:, 50])[0, 1] > 0.7, seed
        rot_std = m[listening, 53:56].std(0)
        assert rot_std.max() > 0.01, (seed, rot_std)  # > 0.6 deg on some axis
