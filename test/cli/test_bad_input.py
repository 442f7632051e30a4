"""Bad input at every entry point (the README's reliability table): every `timar` subcommand and
every node's start-up, fed the files users really have when something went wrong: missing,
empty, truncated or corrupt WAVs, checkpoints, ONNX exports, bags, YAML configs, retarget
configs and DualTalk npz files, configs with wrong shapes and types, unwritable output folders.

Each case ends with exit code 2 (bad input) or 1 (the run failed), one line on stderr naming the
file, the problem and the fix, no traceback, and nothing half-written left as if complete. Input
that can be repaired is repaired with a warning saying what was done (the WAV formats people
have: 8/16/24/32-bit and float PCM, mono/stereo/5.1, 44.1 kHz, an MP3 renamed .wav, a truncated
file). Ctrl-C in the middle stops with exit code 130 and leaves no partial output."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from helpers.ros import REPO, ros_env
from timar_ros.cli import main
from timar_ros.motion import FPS, SAMPLE_RATE

BUNDLED = REPO / "checkpoints" / "robot"


# ----------------------------------------------------------------------------- the bad files
def _noise(seconds, rate=SAMPLE_RATE, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    x = (0.2 * rng.standard_normal((int(seconds * rate), channels))).clip(-1, 1)
    return x if channels > 1 else x[:, 0]


def _dualtalk(root: Path, frames=60, wav=None):
    """A one-clip DualTalk folder; ``wav(path, seconds)`` writes each speaker's audio."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for k in (1, 2):
        if wav is None:
            sf.write(root / f"c_speaker{k}.wav", _noise(frames / FPS, seed=k), SAMPLE_RATE)
        else:
            wav(root / f"c_speaker{k}.wav", frames / FPS)
        np.savez(
            root / f"c_speaker{k}.npz",
            exp=rng.normal(size=(frames, 50)).astype(np.float32),
            pose=rng.normal(scale=0.1, size=(frames, 6)).astype(np.float32),
        )
    return root


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Every bad (or odd) input once, by name."""
    d = tmp_path_factory.mktemp("bad")
    f = {}
    f["file"] = d / "a_file"
    f["file"].write_text("not a folder")
    f["unwritable"] = f["file"] / "out"  # a path under a regular file: cannot be created
    f["missing"] = d / "no_such_thing"
    # WAVs
    sf.write(d / "ok.wav", _noise(2.0), SAMPLE_RATE)
    f["ok_wav"] = d / "ok.wav"
    f["empty_wav"] = d / "empty.wav"
    f["empty_wav"].write_bytes(b"")
    sf.write(d / "silent.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    f["zero_wav"] = d / "silent.wav"
    f["corrupt_wav"] = d / "corrupt.wav"
    f["corrupt_wav"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64))
    sf.write(d / "long.wav", _noise(32.0), SAMPLE_RATE, subtype="PCM_16")
    f["truncated_wav"] = d / "truncated.wav"
    f["truncated_wav"].write_bytes((d / "long.wav").read_bytes()[: 44 + int(0.9 * SAMPLE_RATE) * 2])
    sf.write(d / "speech.mp3", _noise(2.0), SAMPLE_RATE, format="MP3")
    f["mp3_wav"] = d / "mp3.wav"
    f["mp3_wav"].write_bytes((d / "speech.mp3").read_bytes())
    # conversations for the demo
    for name, data in (("zero", f["zero_wav"]), ("corrupt", f["corrupt_wav"])):
        c = d / f"conv_{name}"
        c.mkdir()
        for k in (1, 2):
            shutil.copy(data, c / f"demo_speaker{k}.wav")
        f[f"conv_{name}"] = c

    # checkpoints
    def ckpt(name, change):
        c = d / name
        shutil.copytree(BUNDLED, c, ignore=shutil.ignore_patterns("onnx"))
        change(c)
        f[name] = c

    ckpt(
        "ckpt_truncated",
        lambda c: (c / "model.safetensors").write_bytes(
            (c / "model.safetensors").read_bytes()[:100_000]
        ),
    )
    ckpt("ckpt_corrupt", lambda c: (c / "model.safetensors").write_bytes(b"\x00" * 4096))
    ckpt("ckpt_json", lambda c: (c / "config.json").write_text("{not json"))
    ckpt(
        "ckpt_typed",
        lambda c: (c / "config.json").write_text(
            json.dumps({**json.loads((c / "config.json").read_text()), "d_model": "large"})
        ),
    )
    f["ckpt_empty"] = d / "ckpt_empty"
    f["ckpt_empty"].mkdir()

    def corrupt_export(c):
        (c / "onnx").mkdir()
        (c / "onnx" / "manifest.json").write_text('{"format_version": 2,')

    ckpt("ckpt_bad_onnx", corrupt_export)
    # bags
    f["bag_empty"] = d / "bag_empty"
    f["bag_empty"].mkdir()
    f["bag_corrupt"] = d / "bag_corrupt"
    f["bag_corrupt"].mkdir()
    (f["bag_corrupt"] / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9\n")
    # YAML
    f["yaml_corrupt"] = d / "corrupt.yaml"
    f["yaml_corrupt"].write_text("turns: [1, 2\n")
    f["synth_typed"] = d / "synth_typed.yaml"
    f["synth_typed"].write_text("turns: {gap_mean_s: [0.3, 0.1]}\nnot_a_section: 1\n")
    retarget = yaml.safe_load((REPO / "config" / "retarget_default.yaml").read_text())
    retarget["expression"]["matrix"] = [[0.0] * 49]
    f["retarget_shape"] = d / "retarget_shape.yaml"
    f["retarget_shape"].write_text(yaml.safe_dump(retarget))
    retarget = yaml.safe_load((REPO / "config" / "retarget_default.yaml").read_text())
    retarget["joints"][1].update(min=0.5, max=-0.5)
    f["retarget_inverted"] = d / "retarget_inverted.yaml"
    f["retarget_inverted"].write_text(yaml.safe_dump(retarget))
    f["params_corrupt"] = d / "params.yaml"
    f["params_corrupt"].write_text("oops: [\n")
    # DualTalk folders and motion files
    f["dt_ok"] = _dualtalk(d / "dt_ok")
    f["dt_npz_corrupt"] = _dualtalk(d / "dt_npz_corrupt")
    (f["dt_npz_corrupt"] / "c_speaker2.npz").write_bytes(b"PK\x03\x04 broken zip")
    f["dt_npz_shape"] = _dualtalk(d / "dt_npz_shape")
    np.savez(f["dt_npz_shape"] / "c_speaker1.npz", exp=np.zeros((60, 49)), pose=np.zeros((60, 6)))
    f["dt_wav_corrupt"] = _dualtalk(d / "dt_wav_corrupt")
    shutil.copy(f["corrupt_wav"], f["dt_wav_corrupt"] / "c_speaker1.wav")
    f["npy_corrupt"] = d / "motion.npy"
    f["npy_corrupt"].write_bytes(b"\x93NUMPY garbage")
    np.save(d / "motion_shape.npy", np.zeros((10, 55), np.float32))
    f["npy_shape"] = d / "motion_shape.npy"
    np.save(d / "motion_ok.npy", np.zeros((20, 56), np.float32))
    f["npy_ok"] = d / "motion_ok.npy"
    np.savez(d / "pairs_bad.npz", expression=np.zeros((5, 50)))
    f["pairs_bad"] = d / "pairs_bad.npz"
    f["d"] = d
    return f


# ----------------------------------------------------------------------------- `timar` commands
RETARGET = str(REPO / "config" / "retarget_default.yaml")

# (id, argv with {name} from the fixture, exit code, texts the one error line must hold)
CLI_CASES = [
    (
        "demo: conversation with no audio",
        ["demo", "--conversation", "{conv_zero}", "--out", "{d}/o"],
        2,
        ["demo_speaker1.wav", "holds no audio (0 samples)", "use a WAV file"],
    ),
    (
        "demo: corrupt WAV",
        ["demo", "--conversation", "{conv_corrupt}", "--out", "{d}/o"],
        2,
        ["demo_speaker1.wav", "not a readable audio file"],
    ),
    (
        "demo: missing conversation",
        ["demo", "--conversation", "{missing}", "--out", "{d}/o"],
        2,
        ["no_such_thing", "demo conversation file missing"],
    ),
    (
        "demo: truncated checkpoint",
        ["demo", "--checkpoint", "{ckpt_truncated}", "--out", "{d}/o"],
        2,
        ["model.safetensors", "truncated", "re-create it"],
    ),
    (
        "demo: corrupt config.json",
        ["demo", "--checkpoint", "{ckpt_json}", "--out", "{d}/o"],
        2,
        ["config.json", "not valid JSON"],
    ),
    (
        "demo: config with a wrong type",
        ["demo", "--checkpoint", "{ckpt_typed}", "--out", "{d}/o"],
        2,
        ["config.json", "d_model must be int", "'large'"],
    ),
    (
        "demo: empty checkpoint folder",
        ["demo", "--checkpoint", "{ckpt_empty}", "--out", "{d}/o"],
        2,
        ["ckpt_empty", "needs model.safetensors and config.json", "timar init-checkpoint"],
    ),
    (
        "demo: unwritable output",
        ["demo", "--out", "{unwritable}"],
        2,
        ["a_file", "Not a directory"],
    ),
    (
        "export: corrupt weights",
        ["export", "{ckpt_corrupt}"],
        2,
        ["model.safetensors", "re-create it"],
    ),
    (
        "export: unwritable output",
        ["export", str(BUNDLED), "{unwritable}"],
        2,
        ["a_file", "Not a directory"],
    ),
    (
        "init-checkpoint: unknown --set key",
        ["init-checkpoint", "{d}/init", "--set", "d_modle=64"],
        2,
        ["unknown keys ['d_modle']"],
    ),
    (
        "init-checkpoint: wrong --set type",
        ["init-checkpoint", "{d}/init", "--set", "d_model=big"],
        2,
        ["d_model must be int, got 'big'"],
    ),
    (
        "init-checkpoint: bad --set",
        ["init-checkpoint", "{d}/init", "--set", "d_model"],
        2,
        ["--set expects KEY=VALUE"],
    ),
    (
        "train: missing data",
        ["train", "--data", "{missing}", "--out", "{d}/run", "--steps", "1"],
        2,
        ["no_such_thing", "not found"],
    ),
    (
        "train: corrupt npz",
        ["train", "--data", "{dt_npz_corrupt}", "--out", "{d}/run", "--steps", "1"],
        2,
        ["c_speaker2.npz", "cannot read the .npz", "a DualTalk .npz holds exp [T, 50]"],
    ),
    (
        "train: npz of the wrong shape",
        ["train", "--data", "{dt_npz_shape}", "--out", "{d}/run", "--steps", "1"],
        2,
        ["c_speaker1.npz", "exp must be [T, 50]"],
    ),
    (
        "train: corrupt WAV",
        ["train", "--data", "{dt_wav_corrupt}", "--out", "{d}/run", "--steps", "1"],
        2,
        ["c_speaker1.wav", "not a readable audio file"],
    ),
    (
        "train: resume of a non-run",
        ["train", "--resume", "{ckpt_empty}", "--steps", "2"],
        2,
        ["train_state.json", "missing", "--resume needs a folder written by `timar train`"],
    ),
    (
        "evaluate: corrupt checkpoint",
        ["evaluate", "--checkpoint", "{ckpt_json}", "--data", "{dt_ok}"],
        2,
        ["config.json", "not valid JSON"],
    ),
    (
        "evaluate: corrupt npz",
        ["evaluate", "--checkpoint", str(BUNDLED), "--data", "{dt_npz_corrupt}", "--out", "{d}/ev"],
        2,
        ["c_speaker2.npz", "cannot read the .npz"],
    ),
    (
        "metrics: corrupt prediction",
        ["metrics", "{d}/preds", "{dt_ok}"],
        2,
        ["c_speaker1.npy", "cannot read the prediction"],
    ),
    (
        "metrics: unwritable --json",
        ["metrics", "{d}/preds_ok", "{dt_ok}", "--json", "{unwritable}/m.json"],
        2,
        ["a_file", "Not a directory"],
    ),
    (
        "synth: corrupt YAML",
        ["synth", "{d}/syn", "--config", "{yaml_corrupt}"],
        2,
        ["corrupt.yaml", "not a usable synthetic config", "config/synthetic.yaml"],
    ),
    (
        "synth: unknown and misshapen keys",
        ["synth", "{d}/syn", "--config", "{synth_typed}"],
        2,
        ["synth_typed.yaml", "unknown keys ['not_a_section']"],
    ),
    (
        "synth: unwritable output",
        ["synth", "{unwritable}", "-n", "1"],
        2,
        ["a_file", "Not a directory"],
    ),
    (
        "bag from-dualtalk: corrupt npz",
        ["bag", "from-dualtalk", "{dt_npz_corrupt}", "{d}/bags"],
        2,
        ["c_speaker2.npz", "cannot read the .npz"],
    ),
    (
        "bag from-dualtalk: unwritable",
        ["bag", "from-dualtalk", "{dt_ok}", "{unwritable}"],
        2,
        ["a_file"],
    ),
    (
        "bag info: empty folder",
        ["bag", "info", "{bag_empty}"],
        2,
        ["bag_empty", "no metadata.yaml"],
    ),
    (
        "bag info: corrupt metadata",
        ["bag", "info", "{bag_corrupt}"],
        2,
        ["bag_corrupt", "truncated or corrupt"],
    ),
    (
        "bag evaluate: corrupt bag",
        ["bag", "evaluate", "{bag_corrupt}", "--out", "{d}/be"],
        2,
        ["bag_corrupt", "truncated or corrupt"],
    ),
    (
        "bag evaluate: bad checkpoint",
        ["bag", "evaluate", "{d}/bag_ok", "--checkpoint", "{ckpt_truncated}", "--out", "{d}/be"],
        2,
        ["model.safetensors", "truncated"],
    ),
    (
        "bag play: corrupt bag",
        ["bag", "play", "{bag_corrupt}"],
        2,
        ["bag_corrupt", "truncated or corrupt"],
    ),
    (
        "bag record: unwritable",
        ["bag", "record", "{unwritable}"],
        2,
        ["a_file", "cannot create bag"],
    ),
    (
        "render: corrupt .npy",
        ["render", "{npy_corrupt}", "{d}/r.png"],
        2,
        ["motion.npy", "cannot read"],
    ),
    (
        "render: motion of the wrong shape",
        ["render", "{npy_shape}", "{d}/r.png"],
        2,
        ["motion_shape.npy", "[T, 56]"],
    ),
    ("render: not a bag", ["render", "{ok_wav}", "{d}/r.png"], 2, ["ok.wav", "neither a .npy"]),
    (
        "render: corrupt audio",
        ["render", "{npy_ok}", "{d}/r.png", "--audio", "{corrupt_wav}", "{ok_wav}"],
        2,
        ["corrupt.wav", "not a readable audio file"],
    ),
    ("render: unwritable output", ["render", "{npy_ok}", "{unwritable}/r.png"], 2, ["a_file"]),
    (
        "render: bad --size",
        ["render", "{npy_ok}", "{d}/r.png", "--size", "big"],
        2,
        ["--size", "WxH"],
    ),
    (
        "calibrate: pairs without actuators",
        ["calibrate", "{pairs_bad}", "--config", RETARGET, "--out", "{d}/c.yaml"],
        2,
        ["pairs_bad.npz", "missing arrays", "actuators [N, J]"],
    ),
    (
        "calibrate: retarget config with inverted limits",
        ["calibrate", "{d}/pairs_ok.npz", "--config", "{retarget_inverted}", "--out", "{d}/c.yaml"],
        2,
        ["retarget_inverted.yaml", "joints[1] (neck_pitch): inverted or empty limits"],
    ),
    (
        "soak: bad checkpoint",
        ["soak", "--minutes", "0.1", "--checkpoint", "{ckpt_truncated}", "--json", "{d}/s.json"],
        2,
        ["model.safetensors", "truncated"],
    ),
    (
        "soak: zero minutes",
        ["soak", "--minutes", "0", "--json", "{d}/s.json"],
        2,
        ["--minutes and --rate must be > 0"],
    ),
    (
        "bench: bad checkpoint",
        ["bench", "--checkpoint", "{ckpt_json}", "--repeats", "1"],
        2,
        ["config.json", "not valid JSON"],
    ),
]


@pytest.fixture(scope="module")
def bad_all(bad):
    """The inputs some cases need beyond the bad files: predictions and a good bag."""
    d = bad["d"]
    (d / "preds").mkdir()
    bad["npy_corrupt_pred"] = d / "preds" / "c_speaker1.npy"
    bad["npy_corrupt_pred"].write_bytes(b"garbage")
    (d / "preds_ok").mkdir()
    for k in (1, 2):
        np.save(d / "preds_ok" / f"c_speaker{k}.npy", np.zeros((60, 56), np.float32))
    assert (
        main(["bag", "from-dualtalk", str(bad["dt_ok"]), str(d / "bags_ok"), "--agent", "speaker2"])
        == 0
    )
    shutil.move(d / "bags_ok" / "c_speaker2", d / "bag_ok")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 50))
    np.savez(
        d / "pairs_ok.npz",
        expression=x,
        actuators=x[:, :2] * 0.1,
        joints=np.array(["brow_left", "brow_right"]),
    )
    return bad


def _err_lines(err: str, label: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"timar {label}: error:")]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_every_command_names_the_bad_input_in_one_line(case, bad_all, capsys):
    name, argv, code, texts = case
    args = [a.format(**bad_all) for a in argv]
    label = " ".join(args[:2]) if args[0] == "bag" else args[0]
    outputs = [Path(a) for a in args if a.startswith(str(bad_all["d"])) and not Path(a).exists()]
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse: a malformed option (usage line + one error line)
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == code, (rc, err)
    lines = _err_lines(err, label)
    assert len(lines) == 1, err
    for text in texts:
        assert text in lines[0], (text, lines[0])
    assert "Traceback" not in err
    for out in outputs:  # nothing half-written left as if complete
        assert not out.exists() or not any(out.rglob("*")) if out.is_dir() else not out.exists(), (
            out
        )
        assert not list(out.parent.glob(f".{out.name}*.partial")), out


def test_debug_shows_the_traceback(bad_all, capsys):
    with pytest.raises(Exception, match="truncated"):
        main(["--debug", "export", str(bad_all["ckpt_truncated"])])


# ----------------------------------------------------------------------------- repairs
def _wav_writer(subtype=None, rate=SAMPLE_RATE, channels=1, fmt=None):
    def write(path, seconds):
        x = _noise(seconds, rate, channels)
        if fmt == "MP3":
            tmp = path.with_suffix(".mp3")
            sf.write(tmp, x, rate, format="MP3")
            tmp.rename(path)  # an MP3 renamed .wav
        else:
            sf.write(path, x, rate, subtype=subtype)

    return write


WAV_FORMATS = [
    ("8-bit", _wav_writer("PCM_U8"), None),
    ("24-bit", _wav_writer("PCM_24"), None),
    ("32-bit", _wav_writer("PCM_32"), None),
    ("float", _wav_writer("FLOAT"), None),
    ("stereo 44.1 kHz", _wav_writer("PCM_16", 44100, 2), None),
    ("5.1 48 kHz", _wav_writer("PCM_24", 48000, 6), None),
    ("mp3 renamed .wav", _wav_writer(fmt="MP3"), "holds MPEG-1/2 Audio data, not WAV"),
]


@pytest.mark.parametrize("case", WAV_FORMATS, ids=[c[0] for c in WAV_FORMATS])
def test_the_wav_formats_people_have_are_read_and_said_when_repaired(case, tmp_path, capsys):
    """DualTalk -> bag with each format: converted to 16 kHz mono, the speech where it was; a
    repair is said in one warning."""
    from timar_ros import bags as B

    name, writer, warning = case
    src = _dualtalk(tmp_path / "dt", frames=50, wav=writer)
    assert (
        main(["bag", "from-dualtalk", str(src), str(tmp_path / "bags"), "--agent", "speaker1"]) == 0
    )
    err = capsys.readouterr().err
    audio, rate, _ = B.read_audio(tmp_path / "bags" / "c_speaker1", "/timar/agent/audio")
    assert rate == SAMPLE_RATE and abs(len(audio) - 2.0 * SAMPLE_RATE) < 0.06 * SAMPLE_RATE
    assert 0.02 < np.std(audio) < 0.5  # the noise came through (5.1 averages six channels)
    if warning:
        assert "timar bag from-dualtalk: warning:" in err and warning in err, err
    else:
        assert "warning" not in err, err


def test_a_truncated_wav_is_used_as_far_as_it_goes_with_a_warning(bad, tmp_path, capsys):
    assert (
        main(
            [
                "render",
                str(bad["npy_ok"]),
                str(tmp_path / "r.png"),
                "--audio",
                str(bad["truncated_wav"]),
                str(bad["ok_wav"]),
                "--frames",
                "2",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "truncated.wav: truncated: its header promises 32.0 s but the file holds 0.9 s" in err, (
        err
    )


@pytest.mark.slow
def test_the_demo_plays_a_truncated_file_and_says_it_is_truncated(bad, tiny_checkpoint, tmp_path):
    conv = tmp_path / "conv"
    conv.mkdir()
    shutil.copy(bad["truncated_wav"], conv / "demo_speaker1.wav")
    sf.write(conv / "demo_speaker2.wav", _noise(2.0, seed=3), SAMPLE_RATE)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "timar_ros.cli",
            "demo",
            "--conversation",
            str(conv),
            "--checkpoint",
            str(tiny_checkpoint),
            "--backend",
            "torch",
            "--out",
            str(tmp_path / "out"),
            "--playback-rate",
            "4",
            "--sim",
            "none",
        ],
        cwd=tmp_path,
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (
        "demo_speaker1.wav: truncated: its header promises 32.0 s but the file holds 0.9 s"
        in r.stderr
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["turns"] >= 2 and summary["padded_audio_s"] > 0  # the rest is said as padding
    assert "sim" not in summary and not (tmp_path / "out" / "sim_head.mp4").exists()  # --sim none


# ----------------------------------------------------------------------------- nodes
# (id, node, --ros-args, texts of the one 'cannot start' line)
NODE_CASES = [
    (
        "policy: missing checkpoint",
        "conversation_policy",
        ["-p", "checkpoint:={missing}"],
        ["no checkpoint at", "no_such_thing", "timar init-checkpoint"],
    ),
    (
        "policy: truncated checkpoint",
        "conversation_policy",
        ["-p", "checkpoint:={ckpt_truncated}"],
        ["model.safetensors: truncated"],
    ),
    (
        "policy: corrupt ONNX export",
        "conversation_policy",
        ["-p", "checkpoint:={ckpt_bad_onnx}", "-p", "backend:=onnx"],
        ["manifest.json", "unreadable ONNX manifest", "timar export"],
    ),
    (
        "policy: corrupt params file",
        "conversation_policy",
        ["--params-file", "{params_corrupt}"],
        ["Couldn't parse params file", "params.yaml", "check the --ros-args"],
    ),
    (
        "retargeter: misshapen retarget config",
        "head_retargeter",
        ["-p", "retarget_config:={retarget_shape}"],
        ["retarget_shape.yaml", "expression.matrix"],
    ),
    (
        "retargeter: corrupt YAML",
        "head_retargeter",
        ["-p", "retarget_config:={yaml_corrupt}"],
        ["corrupt.yaml", "not valid YAML"],
    ),
    (
        "player: empty WAV",
        "audio_file_player",
        ["-p", "user_wav:={empty_wav}"],
        ["empty.wav", "the file is empty"],
    ),
    (
        "player: WAV without audio",
        "audio_file_player",
        ["-p", "user_wav:={zero_wav}"],
        ["silent.wav", "holds no audio"],
    ),
    (
        "player: corrupt WAV",
        "audio_file_player",
        ["-p", "user_wav:={corrupt_wav}"],
        ["corrupt.wav", "not a readable"],
    ),
    (
        "player: missing WAV",
        "audio_file_player",
        ["-p", "user_wav:={missing}"],
        ["no_such_thing", "not found"],
    ),
    (
        "bag player: not a bag",
        "bag_player",
        ["-p", "bag:={bag_empty}"],
        ["bag_empty", "no metadata.yaml"],
    ),
    (
        "bag recorder: unwritable",
        "bag_recorder",
        ["-p", "output:={unwritable}"],
        ["a_file", "cannot create bag"],
    ),
]


@pytest.mark.parametrize("case", NODE_CASES, ids=[c[0] for c in NODE_CASES])
def test_every_node_refuses_bad_input_at_start_up_in_one_line(case, bad):
    name, node, ros_args, texts = case
    args = [a.format(**bad) for a in ros_args]
    r = subprocess.run(
        [sys.executable, "-m", f"timar_ros.nodes.{node}", "--ros-args", *args],
        env=ros_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith(f"{node}: cannot start:")]
    assert len(lines) == 1, r.stderr
    for text in texts:
        assert text in lines[0], (text, lines[0])
    assert "Traceback" not in r.stderr


# ----------------------------------------------------------------------------- Ctrl-C
def _interrupt(args, cwd, ready):
    """Start `timar ARGS`, send SIGINT (as Ctrl-C does) once ``ready()``; (rc, stderr)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "timar_ros.cli", *args],
        cwd=cwd,
        env=ros_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None and not ready():
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()[1]  # still running when interrupted
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


@pytest.mark.slow
def test_ctrl_c_in_the_middle_leaves_no_partial_output(tmp_path, tiny_checkpoint):
    # The demo, while the pipeline runs: no output folder, and no temporary one left.
    out = tmp_path / "demo"
    rc, err = _interrupt(
        ["demo", "--out", str(out), "--checkpoint", str(tiny_checkpoint), "--backend", "torch"],
        tmp_path,
        lambda: (tmp_path / ".demo.partial" / "bag").exists(),
    )
    assert rc == 130 and "timar demo: interrupted" in err, err
    assert not out.exists() and not list(tmp_path.glob(".demo*")), list(tmp_path.iterdir())
    # Synthetic data, while it writes: every file there is complete.
    syn = tmp_path / "syn"
    rc, err = _interrupt(
        ["synth", str(syn), "-n", "400", "--tts", "off"],
        tmp_path,
        lambda: len(list(syn.glob("*.npz"))) >= 4,
    )
    assert rc == 130 and "timar synth: interrupted" in err, err
    assert not list(syn.glob(".*partial")), list(syn.iterdir())
    for f in syn.glob("*.npz"):
        with np.load(f) as z:
            assert z["exp"].shape[1] == 50
    for f in syn.glob("*.wav"):
        assert sf.info(str(f)).frames > 0
    # Training, between steps: the state is saved, and the run resumes from it.
    data = _dualtalk(tmp_path / "dt", frames=100)
    run = tmp_path / "run"
    t0 = []
    rc, err = _interrupt(
        [
            "train",
            "--data",
            str(data),
            "--out",
            str(run),
            "--preset",
            "tiny",
            "--turns",
            "2",
            "--batch-size",
            "1",
            "--steps",
            "100000",
            "--save-every",
            "100000",
            "--no-progress",
        ],
        tmp_path,
        lambda: run.exists() and (t0.append(time.monotonic()) or time.monotonic() - t0[0] > 2.0),
    )
    assert rc == 130 and "the state is saved" in err, err
    step = json.loads((run / "train_state.json").read_text())["step"]
    assert step > 0
    assert main(["train", "--resume", str(run), "--steps", str(step + 1), "--no-progress"]) == 0
