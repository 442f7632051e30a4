"""What bag evaluation reads and produces, shared by its offline and live modes and its report:
the bag's inputs (:class:`BagInputs`, :func:`read_inputs`), per-turn records (:class:`TurnRecord`,
:class:`EvalRun`) and the turns read back from a recorded bag (:func:`turns_from_recording`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from timar_ros import bags as B
from timar_ros import topics


@dataclass
class BagInputs:
    """What a bag gives the evaluation. ``events`` are (log_time_ns, kind, record) in log-time
    order, kind ``"user"``/``"agent"`` (AudioRecord) or ``"motion"`` (MotionRecord)."""

    path: Path
    name: str
    namespace: str
    events: list
    gt: np.ndarray | None  # [T, 56] ground-truth agent motion
    gt_start_s: float | None
    anchor: np.ndarray | None  # [T, 56] the partner's motion (DualTalk anchor)
    audio_start_s: float
    audio_end_s: float
    topics: dict

    def expected_turns(self, turn_s: float) -> int:
        """Turns a segmenter starting at the first chunk emits for all of the audio."""
        return int(math.ceil((self.audio_end_s - self.audio_start_s) / turn_s - 1e-9))


def detect_namespace(types: dict) -> str:
    """The namespace of the bag's ``user/audio`` topic ('' = root). BagError when absent."""
    suffix = "/" + topics.USER_AUDIO
    found = [t for t in types if t.endswith(suffix) or t == topics.USER_AUDIO]
    if not found:
        have = ", ".join(sorted(types)) or "no topics"
        raise B.BagError(
            f"no <namespace>/{topics.USER_AUDIO} topic in the bag (it has: {have}); "
            "evaluation needs both speakers' audio. Convert DualTalk data with "
            "`timar bag from-dualtalk`, or record user/audio and agent/audio"
        )
    if len(found) > 1:
        raise B.BagError(f"several user audio topics ({', '.join(found)}): pass --namespace")
    return found[0][: -len(suffix)].strip("/")


def read_inputs(bag, namespace: str | None = None) -> BagInputs:
    """Read the audio, partner motion and ground truth of a bag (see :class:`BagInputs`)."""
    with B.BagReader(bag) as r:
        types = {k: v.msgtype for k, v in r.topics.items()}
        ns = detect_namespace(types) if namespace is None else namespace.strip("/")
        name_of = lambda rel: topics.resolve(rel, ns)  # noqa: E731
        ua, aa = name_of(topics.USER_AUDIO), name_of(topics.AGENT_AUDIO)
        um, gt_t = name_of(topics.USER_MOTION), name_of(topics.GROUND_TRUTH_MOTION)
        for t in (ua, aa):
            r.check_topic(t, B.AUDIO_CHUNK)  # clear error naming the bag and what it has
        wanted = [ua, aa] + ([um] if um in types else [])
        kinds = {ua: "user", aa: "agent", um: "motion"}
        events = [
            (t_ns, kinds[topic], B.to_record(msg)) for topic, _, t_ns, msg in r.messages(wanted)
        ]
        gt_recs = r.records(gt_t, B.HEAD_MOTION) if gt_t in types else []
        custom = r.custom_data
        path = r.path
    audio = [rec for _, k, rec in events if k != "motion"]
    if not audio:
        raise B.BagError(f"{path}: the audio topics {ua} and {aa} have no messages")
    start = min(a.stamp_s for a in audio)
    end = max(a.stamp_s + len(a.samples) / max(a.channels, 1) / a.sample_rate for a in audio)
    gt = gt_start = anchor = None
    if gt_recs:
        gt, _, g0 = B.concat_motion(gt_recs, path=path)
        gt_start = g0 * 1e-9
    mrecs = [rec for _, k, rec in events if k == "motion"]
    if mrecs:
        anchor, _, _ = B.concat_motion(mrecs, path=path)
    if "timar.clip" in custom and "timar.agent" in custom:  # the DualTalk file name of the agent
        name = f"{custom['timar.clip']}_{custom['timar.agent']}"
    else:
        name = path.name
    return BagInputs(path, name, ns, events, gt, gt_start, anchor, start, end, types)


@dataclass
class TurnRecord:
    index: int
    start_s: float  # turn start on the audio clock
    motion: np.ndarray | None  # [F, 56]; None = skipped (policy error) or not received
    latency_ms: float = float("nan")
    deadline_missed: bool = False
    user_padded_s: float = 0.0
    agent_padded_s: float = 0.0
    error: str | None = None
    user_speaking: bool | None = None  # the policy's flags (None: not known)
    agent_speaking: bool | None = None

    @property
    def padded(self) -> bool:
        return self.user_padded_s > 0 or self.agent_padded_s > 0

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "motion"}
        d["produced"] = self.motion is not None
        d["latency_ms"] = None if not math.isfinite(self.latency_ms) else round(self.latency_ms, 3)
        return d


@dataclass
class EvalRun:
    mode: str
    turns: list  # TurnRecord, by index
    model_id: str
    backend: str
    wall_s: float
    extra: dict = field(default_factory=dict)


def turns_from_recording(path, namespace: str) -> list[TurnRecord]:
    """Turn records from a recorded bag's HeadMotion and ConversationState (live mode).

    The turn start is the ConversationState stamp; a turn with a state but no HeadMotion was
    skipped (its state's ``skipped_turns`` counts it)."""
    hm, cs = (
        topics.resolve(topics.HEAD_MOTION, namespace),
        topics.resolve(topics.CONVERSATION_STATE, namespace),
    )
    with B.BagReader(path) as r:
        have = r.topics
        blocks = r.records(hm, B.HEAD_MOTION) if hm in have else []
        states = r.records(cs, B.CONVERSATION_STATE) if cs in have else []
    # a turn streamed inside the turn comes as blocks (one per tick): the turn's motion is its
    # blocks in frame order
    by_turn: dict[int, list] = {}
    for m in blocks:
        by_turn.setdefault(m.turn_index, []).append(m)
    motions = {
        k: np.concatenate([b.motion for b in sorted(v, key=lambda b: b.first_frame)], 0)
        for k, v in by_turn.items()
    }
    if not states:
        raise B.BagError(
            f"{path}: the recording has no {cs} messages: the policy produced no "
            "turn (see its log: checkpoint, audio topics, namespace)"
        )
    out, prev_skipped = [], 0
    for s in sorted(states, key=lambda d: d["turn_index"]):
        m = motions.get(s["turn_index"])
        skipped = int(s["skipped_turns"]) > prev_skipped
        prev_skipped = int(s["skipped_turns"])
        out.append(
            TurnRecord(
                int(s["turn_index"]),
                s["stamp_ns"] * 1e-9,
                m,
                float(s["policy_latency_ms"]),
                bool(s["deadline_missed"]),
                float(s["user_padded_s"]),
                float(s["agent_padded_s"]),
                "skipped by the policy (see its log)"
                if skipped
                else (None if m is not None else "HeadMotion not recorded"),
                bool(s["user_speaking"]),
                bool(s["agent_speaking"]),
            )
        )
    return out
