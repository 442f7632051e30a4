"""Synthetic two-person conversations with rule-generated FLAME-layout head motion.

**This is a test bench, not a claim about humans.** The rules below are simple, known and
parametric so that a model trained on the output can be checked against them (does the jaw
follow the speech? does the listener react after the partner pauses? does it use history?).
Magnitudes are kept in plausible FLAME ranges (radians: nods 0.05-0.15, jaw opening 0..0.3;
expression coefficients within about +-2), but no parameter is fitted to human data, and the
expression indices used for "mouth", "smile" and "blink" are conventions of this bench, not
statements about FLAME's basis.

Pipeline (all parameters in :class:`SyntheticConfig`, loadable from YAML):

1. **Timeline** (:func:`plan_conversation`): the floor alternates between two speakers (with a
   small chance of keeping it); a turn is 1..n phrases separated by short pauses; the gap
   between turns is Gaussian, or negative (an overlap) with ``overlap_prob``; the listener puts
   short backchannels ("mm-hm") into the speaker's phrase pauses with a probability that grows
   with engagement.
2. **Audio**: a procedural speech-like synthesiser (:class:`ProceduralVoice`): a sawtooth glottal
   source on a pitch contour (declination, slow drift, stress), vowel formants (three resonators,
   per-syllable vowel), a syllable envelope at ``syllable_rate_hz`` (~4-5 Hz), noise bursts for
   consonant onsets, a low noise floor. Speakers differ in pitch, rate and vocal-tract scale.
   Optionally real TTS from Debian ``flite`` voices (:class:`FliteVoice`), when on PATH.
3. **Motion** (:func:`render_motion`), from the two audio tracks only (so TTS and procedural audio
   get the same rules), at 25 fps:

   - speech envelope: frame RMS in dB mapped to [0, 1] (``range_db`` below the track's 95th
     percentile is 0), smoothed;
   - speaker: jaw opening = ``jaw_max_rad * env(t - lag)^jaw_gamma``; mouth expression
     coefficients ``exp[i] += mouth_exp[i] * env(t - lag)``; a small head pitch bob with the
     envelope;
   - listener: the partner's voice activity is found from its envelope; a *pause* is a silence
     of at least ``min_pause_s`` after at least ``min_speech_s`` of speech. At each pause, if the
     listener is not itself holding the floor, it reacts with probability
     ``react_prob * g(e)`` after a lag ~ N(``lag_mean_s``, ``lag_std_s``): a **nod** (pitch) or
     a **tilt** (roll, random side): a stochastic, multi-modal choice with ``choice_weights``;
     amplitude ~ U(range) * g(e);
   - engagement ``e`` of each listener starts in ``engagement_init`` and after each completed
     partner turn (a pause >= ``turn_end_s``) moves ``e += engagement_rate * (1 - e)``;
     ``g(e) = engagement_floor + (1 - engagement_floor) * e``; while listening, a smile-ish
     coefficient ``exp[smile_index] += smile_gain * e``. History therefore matters: the size
     and rate of reactions depend on how many turns have passed;
   - idle: Ornstein-Uhlenbeck head rotation and expression noise, a per-speaker expression
     offset, blink-ish bumps on ``exp[blink_index]`` at ``blink_rate_hz``.

It writes the DualTalk layout (:func:`write_conversation`, :func:`generate_dataset`).

Modules: ``config`` (every parameter), ``voices`` (procedural and flite audio), ``timeline``
(turn-taking), ``rules`` (the motion rules), ``writer`` (a conversation, the DualTalk layout).
"""

from timar_ros.data.synthetic.config import (
    AudioConfig,
    MotionConfig,
    ReactionConfig,
    SyntheticConfig,
    TTSConfig,
    TurnTakingConfig,
    VoiceConfig,
)
from timar_ros.data.synthetic.rules import (
    engagement_after,
    render_motion,
    speech_envelope,
    voice_activity,
)
from timar_ros.data.synthetic.timeline import find_pauses, plan_conversation
from timar_ros.data.synthetic.voices import FliteVoice, ProceduralVoice, flite_available
from timar_ros.data.synthetic.writer import (
    Conversation,
    generate_conversation,
    generate_dataset,
    write_conversation,
)

__all__ = [
    "VoiceConfig",
    "TurnTakingConfig",
    "AudioConfig",
    "MotionConfig",
    "ReactionConfig",
    "TTSConfig",
    "SyntheticConfig",
    "Conversation",
    "ProceduralVoice",
    "FliteVoice",
    "flite_available",
    "speech_envelope",
    "voice_activity",
    "find_pauses",
    "render_motion",
    "plan_conversation",
    "generate_conversation",
    "write_conversation",
    "generate_dataset",
    "engagement_after",
]
