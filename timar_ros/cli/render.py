"""``timar render BAG_OR_NPY OUT.mp4|OUT.png``: draw a motion stream headlessly
(:mod:`timar_ros.viz.render`)."""

from __future__ import annotations

import argparse
import sys

from timar_ros import motion as M
from timar_ros import topics


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be WxH in pixels, e.g. 480x600, got {text!r}"
        ) from None
    return w, h


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from timar_ros.viz.render import DEFAULT_HEIGHT, DEFAULT_WIDTH

    parser.add_argument("input", metavar="BAG_OR_NPY", help="rosbag2 folder or .npy motion [T, 56]")
    parser.add_argument("out", metavar="OUT", help="OUT.mp4 (video) or OUT.png (contact sheet)")
    parser.add_argument(
        "--audio",
        nargs=2,
        metavar=("USER_WAV", "AGENT_WAV"),
        help="audio for the voice strip (.npy input)",
    )
    parser.add_argument(
        "--motion-fps",
        type=float,
        default=M.FPS,
        help="frame rate of a .npy motion (default: %(default)s)",
    )
    parser.add_argument(
        "--topic",
        default=None,
        help="HeadMotion topic of a bag (default: /timar/head_motion, else "
        "/timar/ground_truth/head_motion)",
    )
    parser.add_argument("--user-audio-topic", default=topics.resolve(topics.USER_AUDIO))
    parser.add_argument("--agent-audio-topic", default=topics.resolve(topics.AGENT_AUDIO))
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="video frame rate; lower than the motion's subsamples (default: motion's)",
    )
    parser.add_argument("--no-audio", action="store_true", help="do not mux audio into the MP4")
    parser.add_argument("--frames", type=int, default=12, help="contact sheet: number of frames")
    parser.add_argument(
        "--times",
        type=float,
        nargs="+",
        default=None,
        help="contact sheet: times in seconds (instead of --frames)",
    )
    parser.add_argument("--cols", type=int, default=4, help="contact sheet: columns")
    parser.add_argument(
        "--size",
        type=_size,
        default=f"{DEFAULT_WIDTH}x{DEFAULT_HEIGHT}",
        help="frame size WxH in pixels (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    from timar_ros.viz.render import load_input, render_file

    inp = load_input(
        args.input,
        args.topic,
        tuple(args.audio) if args.audio else None,
        args.motion_fps,
        args.user_audio_topic,
        args.agent_audio_topic,
    )
    w, h = args.size
    out = render_file(
        inp,
        args.out,
        fps=args.fps,
        width=w,
        height=h,
        audio=not args.no_audio,
        times=args.times,
        frames=args.frames,
        cols=args.cols,
        log=lambda text: print(f"timar render: {text}", file=sys.stderr),
    )
    print(f"wrote {out} ({len(inp.motion)} frames, {inp.duration_s:.2f} s)")
    return 0
