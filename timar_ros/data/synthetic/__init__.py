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
3. **Motion** (:func:`render_motion`, :mod:`timar_ros.data.synthetic.rules`), from the two
   clean audio tracks (so TTS and procedural audio get the same rules), at 25 fps: the jaw and
   mouth follow the own speech; the head follows the own prosody (accent nods, phrase pitch,
   a direction per phrase); the listener nods or tilts a few hundred ms after the partner's
   pauses, the kind set by the conversation's mood (warm or reserved), which only the partner's
   speaking smiles reveal; the listener's smile mimics the partner's of ~2 s earlier; reactions
   grow with the turns heard (engagement); smooth idle motion and blinks. The timing, the
   partner's motion and the history therefore all matter by construction.
4. **Recording**: each track gets a level change and, sometimes, a telephone band and noise.

It writes the DualTalk layout (:func:`write_conversation`, :func:`generate_dataset`).

Modules: ``config`` (every parameter), ``voices`` (procedural and flite audio), ``timeline``
(turn-taking), ``rules`` (the motion rules), ``writer`` (a conversation, the DualTalk layout).
"""

from timar_ros.data.synthetic.config import (
    AudioConfig,
    MimicryConfig,
    MoodConfig,
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
    "MoodConfig",
    "MimicryConfig",
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
