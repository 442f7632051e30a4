"""The main job: the whole ROS 2 pipeline, composed in one process, on the bundled conversation.

Nodes (the same classes `ros2 launch` starts as separate processes), in namespace /timar:
audio_file_player (the two speakers' WAV files) -> conversation_policy (bundled checkpoint) ->
head_retargeter (servo commands) and bag_recorder (every topic, MCAP). After playback the head
is left to return to neutral (watchdog), then the bag is analysed: summary.json, plots, a render.

With ``live_audio`` the conversation goes through sound instead of topics, as on a robot: a
user-space PulseAudio (demo/sound_server.py) with two null sinks, the room and the robot's
loudspeaker. The partner's WAV is played into the room, whose monitor the real ``microphone``
node captures; the robot's WAV is sent on ``agent/speech`` as a streaming TTS would send it, and
the real ``voice_player`` node plays it on the loudspeaker ``display_delay_s`` later, publishing
``agent/audio`` stamped when heard (conversation_policy's ``agent_audio_heard``).

With ``echo`` (:class:`RoomEcho`) the loudspeaker is also heard in the room, as on a robot: a
PulseAudio loopback carries what the loudspeaker plays into the room a delay later and some dB
quieter, so the microphone captures the partner and the robot's own voice; the microphone
publishes on ``user/audio_raw`` and the real ``echo_canceller`` node takes the robot's voice out
of it into ``user/audio`` (robot.launch.xml's wiring).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from timar_ros import topics
from timar_ros.resources import share_dir

USER_WAV, AGENT_WAV = "demo_speaker1.wav", "demo_speaker2.wav"  # partner, robot
SIMULATORS = ("none", "mujoco")  # what the servo commands drive (timar demo --sim)
AGENT_TARGETS = "demo_speaker2.npz"  # the robot's rule-based motion targets


@dataclass(frozen=True)
class RoomEcho:
    """The robot's loudspeaker heard by its microphone in the live-audio demo: ``delay_s``
    after it plays (module-loopback's target; the measured delay is in the echo figures),
    ``gain_db`` louder (negative: quieter) than the loudspeaker's signal; echo_canceller's
    ``mode`` (robot/echo.py's MODES)."""

    delay_s: float = 0.05
    gain_db: float = -6.0
    mode: str = "aec"


def run_pipeline(
    out: Path,
    checkpoint: Path,
    user_wav: Path,
    agent_wav: Path,
    backend: str,
    playback_rate: float = 1.0,
    namespace: str = topics.DEFAULT_NAMESPACE,
    log=print,
    live_audio: bool = False,
    sim: str = "none",
    policy_params: dict | None = None,
    echo: RoomEcho | None = None,
) -> dict:
    """Run the composed nodes until playback ends and the head is back at neutral; the bag is
    written to ``out/bag`` (``policy_params``: conversation_policy parameters, e.g. tick_s;
    ``echo``: live audio only, the loudspeaker heard in the room).
    Returns live figures the bag does not hold (policy latencies,
    end-to-end latencies, counters; with ``sim="mujoco"`` the simulated head's figures and,
    under "sim_trace", its trace and head for :mod:`timar_ros.demo.sim_report`)."""
    pp = dict(policy_params or {})
    if live_audio:
        return _run_live_audio(
            out, checkpoint, user_wav, agent_wav, backend, namespace, log, sim, pp, echo
        )
    if echo is not None:
        raise ValueError("the robot's echo needs the live-audio demo (live_audio=True)")
    from timar_ros.nodes.audio_file_player import AudioFilePlayer
    from timar_ros.nodes.compose import RosSession

    with RosSession() as ros:  # the recorder finishes the bag when the session closes
        recorder, policy, retargeter, sim_node, scripted = _add_pipeline(
            ros,
            out,
            namespace,
            checkpoint,
            backend,
            sim,
            log,
            _partner_path(user_wav, playback_rate),
            audio_qos="reliable",
            **pp,
        )
        player = ros.add(
            AudioFilePlayer,
            namespace=namespace,
            user_wav=str(user_wav),
            agent_wav=str(agent_wav),
            playback_rate=playback_rate,
            start_delay_s=0.5,
            wait_for_subscribers=2,
        )  # the policy and the recorder
        settle = policy.pipeline.config.display_delay_s + retargeter.player.neutral_deadline_s + 0.5
        _wait_and_log(policy, log, lambda: player.done, settle, retargeter, scripted)
        return {**_live_figures(policy, retargeter, recorder), **_sim_figures(sim_node)}


def _add_pipeline(
    ros, out, namespace, checkpoint, backend, sim: str, log, partner_path: str, **policy_params
):
    """What both demos run: bag_recorder (into ``out/bag``), scripted_partner (the partner's
    position along ``partner_path``), conversation_policy (with ``policy_params``),
    head_retargeter and, with sim="mujoco", the simulated head it commands:
    sim_head in the root namespace, where a controller manager would be (as
    launch/sim.launch.xml runs it). Returns (recorder, policy, retargeter, sim_head or None,
    scripted_partner)."""
    from timar_ros.nodes.bag_recorder import BagRecorder
    from timar_ros.nodes.conversation_policy import ConversationPolicy
    from timar_ros.nodes.head_retargeter import HeadRetargeter
    from timar_ros.nodes.scripted_partner import ScriptedPartner

    recorder = ros.add(BagRecorder, namespace=namespace, output=str(out / "bag"), overwrite=True)
    # the partner stands to one side and steps to the other half way; the head turns to them
    # (head_retargeter's attention), and they leave when the conversation ends (_wait_and_log)
    scripted = ros.add(ScriptedPartner, namespace=namespace, path=partner_path)
    log(f"  partner: scripted_partner at '{partner_path}' (deg) on {topics.ATTENTION_POINT}")
    policy = ros.add(
        ConversationPolicy,
        namespace=namespace,
        checkpoint=str(checkpoint),
        backend=backend,
        **policy_params,
    )
    if sim == "none":
        return recorder, policy, ros.add(HeadRetargeter, namespace=namespace), None, scripted
    from timar_ros.nodes.sim_head import SimHead

    absolute = "/" + topics.FORWARD_COMMANDS
    sim_node = ros.add(SimHead, keep_trace_s=3600.0)
    retargeter = ros.add(
        HeadRetargeter, namespace=namespace, remap={topics.FORWARD_COMMANDS: absolute}
    )
    log(f"  simulated head: sim_head (MuJoCo) on {absolute}, measured /{topics.JOINT_STATES}")
    return recorder, policy, retargeter, sim_node, scripted


def _partner_path(user_wav: Path, playback_rate: float) -> str:
    """The demo partner's path: steps aside half way through the conversation."""
    import soundfile

    from timar_ros.sim.partner import steps_aside_halfway

    return steps_aside_halfway(soundfile.info(str(user_wav)).duration / playback_rate)


def _canceller_figures(ec) -> dict:
    """echo_canceller's counters and its CPU time per second of microphone audio."""
    from timar_ros.robot.echo import FRAME_S

    audio_s = ec.counters.frames * FRAME_S
    return {
        **ec.counters.as_dict(),
        "cpu_s_per_s": round(ec.cpu_s / audio_s, 4) if audio_s else None,
    }


def _sim_figures(sim_node) -> dict:
    if sim_node is None:
        return {}
    from timar_ros.demo.sim_report import sim_figures

    trace = list(sim_node.trace)
    return {
        "sim": sim_figures(trace, sim_node.head, sim_node.real_time_factor, sim_node.overruns),
        "sim_trace": (trace, sim_node.head),
    }


def _live_figures(policy, retargeter, recorder) -> dict:
    """What the bag does not hold: policy and end-to-end latencies, counters."""
    return {
        "policy_latencies_ms": list(policy.latencies_ms),
        "tick_latencies_ms": list(policy.tick_ms),
        "tick_s": policy.pipeline.schedule.tick_s,
        "seed": policy.policy.seed,
        "display_delay_s": policy.pipeline.config.display_delay_s,
        "e2e_latencies_ms": list(policy.e2e_ms),
        "model_id": policy.policy.model_id,
        "backend": policy.backend,
        "skipped_turns": policy.pipeline.skipped_turns,
        "segmenter": policy.pipeline.segmenter.counters.as_dict(),
        "player": retargeter.player.counters.as_dict(),
        "neutral_deadline_s": retargeter.player.neutral_deadline_s,
        "recorded": dict(recorder.counts),
    }


def _wait_and_log(policy, log, finished, settle: float, retargeter, scripted) -> None:
    """Log the turns until ``finished()``; then the ``scripted`` partner leaves and, ``settle``
    s plus the head's return from the partner later (their target goes stale, a slow return to
    rest), return."""
    gaze = retargeter.player.gaze
    if gaze is not None:
        settle += gaze.attention.config.stale_after_s + gaze.config.rest_shift_s
    shown, done_at = 0, None
    while True:
        time.sleep(0.1)
        while shown < len(policy.latencies_ms) and shown < policy.turns:
            log(f"  turn {shown:3d}: policy step {list(policy.latencies_ms)[shown]:6.1f} ms")
            shown += 1
        if finished() and done_at is None:
            done_at = time.monotonic()
            scripted.leave()
            log(
                f"  playback finished; waiting {settle:.1f} s for the last turn and the "
                "return to neutral"
            )
        if done_at is not None and time.monotonic() - done_at > settle:
            return


def _run_live_audio(
    out, checkpoint, user_wav, agent_wav, backend, namespace, log, sim, policy_params, echo
) -> dict:
    import functools

    from rclpy.node import Node

    from timar_ros.data.audio import load_wav
    from timar_ros.demo.sound_server import SoundServer
    from timar_ros.msg import AudioChunk
    from timar_ros.nodes.compose import RosSession
    from timar_ros.nodes.convert import audio_chunk
    from timar_ros.nodes.microphone import Microphone
    from timar_ros.nodes.voice_player import VoicePlayer

    why = SoundServer.missing()
    if why:
        raise RuntimeError(f"--live-audio needs a sound server: {why}")
    tmp = tempfile.TemporaryDirectory(prefix="timar-sound-")
    server = SoundServer(Path(tmp.name), sinks=("timar_robot", "timar_room")).start()
    server.set_defaults("timar_robot", "timar_room.monitor")  # the loudspeaker; the room's mic
    log("  sound server: PulseAudio, sinks timar_room (partner -> microphone), timar_robot")
    if echo is not None:
        server.loopback("timar_robot.monitor", "timar_room", echo.delay_s, echo.gain_db)
        log(
            f"  the robot's loudspeaker heard in the room: a loopback timar_robot -> timar_room, "
            f"{echo.delay_s * 1e3:.0f} ms later, {echo.gain_db:+.1f} dB; echo_canceller in mode "
            f"{echo.mode}"
        )
    try:
        with RosSession() as ros:
            recorder, policy, retargeter, sim_node, scripted = _add_pipeline(
                ros,
                out,
                namespace,
                checkpoint,
                backend,
                sim,
                log,
                _partner_path(user_wav, 1.0),
                agent_audio_heard=True,
                **policy_params,
            )
            delay = policy.pipeline.config.display_delay_s
            if echo is None:
                mic = ros.add(Microphone, namespace=namespace, device="pulse", autostart=True)
                canceller = None
            else:
                from timar_ros.nodes.echo_canceller import EchoCancellerNode

                mic = ros.add(
                    Microphone,
                    namespace=namespace,
                    device="pulse",
                    autostart=True,
                    remap={topics.USER_AUDIO: topics.MIC_AUDIO},
                )
                canceller = ros.add(EchoCancellerNode, namespace=namespace, mode=echo.mode)
            voice = ros.add(
                VoicePlayer, namespace=namespace, device="pulse", lead_s=-1.0, autostart=True
            )
            tts = ros.add(functools.partial(Node, "demo_tts"), namespace=namespace)
            speech_pub = tts.create_publisher(AudioChunk, topics.AGENT_SPEECH, 100)
            time.sleep(1.5)  # the output stream settles (see test/nodes/test_audio_live.py)
            robot = load_wav(agent_wav, voice._rate)
            step, t0 = voice._rate // 2, time.time()  # 0.5-s chunks, as a streaming TTS sends
            for k, i in enumerate(range(0, len(robot), step)):
                speech_pub.publish(
                    audio_chunk(robot[i : i + step], voice._rate, t0 + i / voice._rate, "tts", k)
                )
            time.sleep(max(0.0, t0 + delay - time.time()))  # the partner talks with the robot
            partner = server.play(user_wav, "timar_room")
            log(
                f"  the robot's voice heard {delay:.2f} s after its TTS, the partner's played "
                "into the room at the same time"
            )
            settle = delay + retargeter.player.neutral_deadline_s + 0.5
            _wait_and_log(
                policy, log, lambda: partner.poll() is not None, settle, retargeter, scripted
            )
            for node in (mic, voice):  # close the sound streams before the server goes
                node.trigger_shutdown()
            return {
                **_live_figures(policy, retargeter, recorder),
                **_sim_figures(sim_node),
                "live_audio": {
                    "microphone_overflows": mic._overflows,
                    "capture_resyncs": mic._capture_clock.resyncs,
                    "voice_underruns": voice.underruns,
                    "voice_device_losses": voice.device_losses,
                    "playback_resyncs": voice._playback.resyncs,
                    **(
                        {}
                        if canceller is None or canceller.canceller is None
                        else {"echo_canceller": _canceller_figures(canceller.canceller)}
                    ),
                },
            }
    finally:
        server.stop()
        tmp.cleanup()


def run_demo(
    out: str | Path = "demo_output",
    checkpoint: str = "",
    conversation: str = "",
    backend: str = "auto",
    playback_rate: float = 1.0,
    log=print,
    live_audio: bool = False,
    sim: str = "none",
    tick_s: float | None = None,
    seed: int | None = None,
    echo: RoomEcho | None = None,
) -> dict:
    """The demo: the pipeline on a conversation folder (default: the bundled one) with a
    checkpoint (default: the bundled one); with ``sim="mujoco"`` into the simulated head;
    with ``live_audio`` and ``echo`` the robot hears its own loudspeaker (summary "echo":
    :func:`timar_ros.eval.echo_live.echo_figures`).
    ``tick_s``, ``seed``: conversation_policy's parameters (None: config/timar.yaml's).
    Everything is written to a temporary folder next to ``out`` and moved into place at the end,
    replacing ``out``: an interrupted or failed demo leaves no half-written output. Returns the
    summary (also ``out/summary.json``)."""
    from timar_ros.demo.report import analyse, render_preview
    from timar_ros.files import write_json
    from timar_ros.robot.policy_setup import resolve_checkpoint

    out = Path(out)
    ckpt = resolve_checkpoint(checkpoint, "pass --checkpoint")
    conv = Path(conversation) if conversation else share_dir() / "data" / "demo_conversation"
    user_wav, agent_wav = conv / USER_WAV, conv / AGENT_WAV
    for f in (user_wav, agent_wav):
        if not f.is_file():
            raise FileNotFoundError(
                f"demo conversation file missing: {f} (a conversation folder holds {USER_WAV} = "
                f"partner and {AGENT_WAV} = robot)"
            )
    # Check the inputs before any node starts: a bad file is one message, not a half-run pipeline.
    from timar_ros.data.audio import read_wav
    from timar_ros.runtime.checkpoint import load_checkpoint

    for f in (user_wav, agent_wav):
        read_wav(f, on_repair=lambda text: None)  # raises if unusable; the player says repairs
    load_checkpoint(ckpt)  # raises on a missing, truncated or mismatched checkpoint
    if echo is not None and not live_audio:
        raise ValueError("--echo needs --live-audio: the echo travels through the sound server")
    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {SIMULATORS}, got {sim!r}")
    if sim == "mujoco":
        from timar_ros.sim.config import SimConfigError
        from timar_ros.sim.head import import_mujoco

        try:
            import_mujoco()  # before any node starts
        except SimConfigError as exc:
            raise SimConfigError(f"{exc}, or run the demo without it: --sim none") from None
    work = out.with_name(f".{out.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    try:
        work.mkdir(parents=True)  # inside: a Ctrl-C as it is made still removes it
        t0 = time.monotonic()
        log(
            f"timar demo: {conv.name} ({USER_WAV} = partner, {AGENT_WAV} = robot) with checkpoint "
            f"{ckpt}"
        )
        if backend == "auto":  # the faster onnxruntime backend, exported on first use
            from timar_ros.runtime.export import ensure_export

            backend = "onnx" if ensure_export(ckpt, log=log) else "torch"
        log(f"policy backend: {backend}")
        live = run_pipeline(
            work,
            ckpt,
            user_wav,
            agent_wav,
            backend=backend,
            playback_rate=playback_rate,
            log=log,
            live_audio=live_audio,
            sim=sim,
            policy_params=_policy_params(tick_s, seed),
            echo=echo,
        )
        sim_trace = live.pop("sim_trace", None)
        log("analysing the recorded bag ...")
        summary = analyse(work, live, ckpt, conv / AGENT_TARGETS)
        if live_audio:
            summary["live_audio"] = live["live_audio"]
        if echo is not None:
            from dataclasses import asdict

            from timar_ros.eval.echo_live import echo_figures

            log("measuring the echo and its cancellation in the recorded bag ...")
            replay = {
                "checkpoint": str(ckpt),
                "backend": backend,
                "agent_audio_heard": True,
                **(_policy_params(tick_s, seed) or {}),
            }
            summary["echo"] = {
                "room": asdict(echo),
                **echo_figures(work / "bag", user_wav, replay, log=log),
                "canceller": live["live_audio"].get("echo_canceller"),
            }
        preview = render_preview(work, log=log)
        if sim_trace is not None:
            summary["sim"] = live["sim"]
            summary["sim"].update(_sim_outputs(work, *sim_trace, live["sim"], log))
        summary["wall_time_s"] = round(time.monotonic() - t0, 1)
        summary["files"] = sorted(
            str(out / p.relative_to(work)) for p in work.rglob("*") if p.is_file()
        )
        summary["files"].append(str(out / "summary.json"))
        summary["preview"] = str(out / preview.relative_to(work))
        if "side_by_side" in summary:
            summary["side_by_side"] = str(out / Path(summary["side_by_side"]).relative_to(work))
        write_json(work / "summary.json", summary)
        shutil.rmtree(out, ignore_errors=True)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _policy_params(tick_s: float | None, seed: int | None) -> dict | None:
    params = {}
    if tick_s is not None:
        params["tick_s"] = float(tick_s)
    if seed is not None:
        params["seed"] = int(seed)
    return params or None


def _sim_outputs(work: Path, trace, head, figures: dict, log) -> dict:
    """The simulated head's plot and video (files named relative to ``work``)."""
    from timar_ros.demo.sim_report import head_with_panel_size, plot_tracking, render_side_by_side
    from timar_ros.sim.head import default_urdf

    log("simulated head: tracking plot and video ...")
    plot = plot_tracking(trace, figures, work / "sim_tracking.png")
    video = render_side_by_side(
        work / "bag",
        trace,
        head_with_panel_size(head.config, default_urdf()),
        work / "sim_head.mp4",
        log=log,
    )
    return {"plot": plot.name, "video": video.name}
