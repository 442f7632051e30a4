"""`timar render`: PNG contact sheets of the right size whose pixels follow the motion, MP4 via
ffmpeg when present, and the PNG fallback when it is not."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from timar_ros import bags as B
from timar_ros import motion as M
from timar_ros.cli import main
from timar_ros.viz import render as R


def _motion(T=50):
    t = np.arange(T) / 25
    m = np.zeros((T, 56), np.float32)
    m[:, 54] = 0.5 * np.sin(2 * np.pi * t / 2)  # yaw
    m[:, 50] = np.clip(0.25 * np.sin(2 * np.pi * t), 0, None)  # jaw
    return m


def test_geometry_follows_jaw_yaw_and_expression():
    z = np.zeros(M.MOTION_DIM, np.float32)
    g0 = R.face_geometry(z)
    jaw = z.copy()
    jaw[50] = 0.3
    gj = R.face_geometry(jaw)
    assert np.nanmin(gj["mouth"][:, 1]) < np.nanmin(g0["mouth"][:, 1]) - 0.2  # lower lip drops
    assert np.allclose(gj["eye_l"], g0["eye_l"])  # the eyes do not move with the jaw
    yaw = z.copy()
    yaw[54] = 0.5  # about y (up)
    gy = R.face_geometry(yaw)
    assert abs(np.nanmean(gy["nose"][:, 0]) - np.nanmean(g0["nose"][:, 0])) > 0.1
    away = z.copy()
    away[54] = np.pi  # facing away: the features are hidden
    assert np.isnan(R.face_geometry(away)["eye_l"]).all()
    brow = z.copy()
    brow[R.EXPR_BROW_RAISE] = 3.0
    assert np.nanmean(R.face_geometry(brow)["brow_l"][:, 1]) > np.nanmean(g0["brow_l"][:, 1]) + 0.05


def test_frames_differ_in_the_mouth_when_the_jaw_opens():
    m = np.zeros((2, 56), np.float32)
    m[1, 50] = 0.3
    W, H = 240, 300
    r = R.FaceRenderer(R.RenderInput(m), W, H)
    closed, opened = r.draw(0), r.draw(1)
    assert closed.shape == (H, W, 3) and closed.dtype == np.uint8
    diff = np.any(closed != opened, axis=2)
    assert diff.sum() > 200
    # The mouth region: the mouth and chin polylines of both frames, in pixels, padded.
    pts = np.vstack([R.face_geometry(f)[k] for f in m for k in ("mouth", "chin")])
    px = r.ax.transData.transform(pts)  # display coords, origin bottom-left
    x0, x1 = px[:, 0].min() - 4, px[:, 0].max() + 4
    y0, y1 = H - px[:, 1].max() - 4, H - px[:, 1].min() + 4
    ys, xs = np.nonzero(diff)
    # The title (frame number) and the strip's time cursor change too; look between them.
    title_y = H - r.ax.transData.transform([[0, 1.33]])[0, 1] + 12  # two lines
    strip_top = H - r.strip.get_window_extent().y1
    face = (ys > title_y + 20) & (ys < strip_top - 2)
    inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
    assert inside[face].all(), "pixels outside the mouth region changed when only the jaw moved"
    assert inside.sum() > 200


def test_png_contact_sheet_size(tmp_path):
    np.save(tmp_path / "m.npy", _motion())
    out = tmp_path / "sheet.png"
    assert (
        main(
            [
                "render",
                str(tmp_path / "m.npy"),
                str(out),
                "--frames",
                "5",
                "--cols",
                "3",
                "--size",
                "200x250",
            ]
        )
        == 0
    )
    from matplotlib.image import imread

    img = imread(out)
    assert img.shape[:2] == (2 * 250, 3 * 200)
    tiles = [
        img[y * 250 : (y + 1) * 250, x * 200 : (x + 1) * 200] for y in range(2) for x in range(3)
    ]
    assert not np.array_equal(tiles[0], tiles[1])  # the head moved
    assert (tiles[5] == 1.0).all()  # the unused sixth tile stays white


def test_render_a_bag_with_audio_strip(tmp_path):
    T = 50
    m = _motion(T)
    user = np.zeros(T * 640, np.float32)
    user[: T * 320] = 0.3 * np.sin(np.arange(T * 320) * 0.1)
    with B.BagWriter(tmp_path / "bag") as w:
        for k in range(2):
            w.write(
                "/timar/ground_truth/head_motion",
                B.head_motion_msg(B.to_ns(1 + k), 0.04, m[25 * k : 25 * (k + 1)]),
            )
        for i in range(0, len(user), 1600):
            w.write(
                "/timar/user/audio",
                B.audio_chunk_msg(B.to_ns(1 + i / 16000), user[i : i + 1600], 16000),
            )
    inp = R.load_bag(tmp_path / "bag")  # falls back to the ground-truth topic
    assert (
        inp.motion.shape == (T, 56)
        and np.array_equal(inp.motion, m)
        and inp.fps == pytest.approx(25)
    )
    assert inp.user_audio is not None and inp.agent_audio is None and inp.user_offset_s == 0
    env, vad = R.voice_envelope(inp.user_audio, 16000, 25, T)
    assert vad[: T // 2 - 1].all() and not vad[T // 2 + 1 :].any()
    assert main(["render", str(tmp_path / "bag"), str(tmp_path / "b.png"), "--frames", "2"]) == 0
    assert (
        main(["render", str(tmp_path / "bag"), str(tmp_path / "x.png"), "--topic", "/timar/nope"])
        == 2
    )


def test_mp4_falls_back_to_png_without_ffmpeg(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "m.npy", _motion(20))
    monkeypatch.setattr(R, "find_ffmpeg", lambda: None)
    assert main(["render", str(tmp_path / "m.npy"), str(tmp_path / "v.mp4"), "--frames", "2"]) == 0
    assert (tmp_path / "v.png").exists() and not (tmp_path / "v.mp4").exists()
    assert "ffmpeg not found" in capsys.readouterr().err


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install ffmpeg)"
)
def test_mp4_with_audio(tmp_path):
    np.save(tmp_path / "m.npy", _motion(50))
    for name in ("u", "a"):
        sf.write(
            tmp_path / f"{name}.wav",
            (0.1 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32),
            16000,
        )
    out = tmp_path / "v.mp4"
    assert (
        main(
            [
                "render",
                str(tmp_path / "m.npy"),
                str(out),
                "--audio",
                str(tmp_path / "u.wav"),
                str(tmp_path / "a.wav"),
                "--fps",
                "10",
                "--size",
                "160x200",
            ]
        )
        == 0
    )
    assert out.stat().st_size > 1000
    if shutil.which("ffprobe"):
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_type,width,height,nb_read_frames",
                "-of",
                "csv=p=0",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert "video,160,200,20" in probe and "audio" in probe


CHATTY_FFMPEG = """#!{python}
# Stands in for an ffmpeg that writes a lot to stderr before it reads its input.
import sys
if "-encoders" in sys.argv:
    sys.exit(0)
sys.stderr.write("frame= ... speed=1x\\n" * 100000)  # ~2 MB: far more than a pipe holds
sys.stderr.flush()
data = sys.stdin.buffer.read()
open(sys.argv[-1], "wb").write(str(len(data)).encode())
sys.exit(int("-fail" in sys.argv[0]))
"""


@pytest.mark.timeout(120)
def test_a_chatty_ffmpeg_neither_deadlocks_nor_leaves_a_partial_file(tmp_path):
    import sys

    for name in ("ffmpeg", "ffmpeg-fail"):
        exe = tmp_path / name
        exe.write_text(CHATTY_FFMPEG.format(python=sys.executable))
        exe.chmod(0o755)
    inp = R.RenderInput(motion=_motion(20), fps=25.0)
    out = R.render_mp4(
        inp, tmp_path / "v.mp4", width=64, height=80, audio=False, ffmpeg=str(tmp_path / "ffmpeg")
    )
    assert int(out.read_bytes()) == 20 * 64 * 80 * 3  # every frame reached the encoder
    with pytest.raises(R.RenderError, match="ffmpeg failed writing"):
        R.render_mp4(
            inp,
            tmp_path / "w.mp4",
            width=64,
            height=80,
            audio=False,
            ffmpeg=str(tmp_path / "ffmpeg-fail"),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ffmpeg", "ffmpeg-fail", "v.mp4"]
