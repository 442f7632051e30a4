"""Data: WAV I/O, the DualTalk layout (training windows, test iteration, noised copies) and the
synthetic conversation generator. Submodules are imported on use (torch only for training)."""

from timar_ros.data.audio import AudioError, load_wav, resample, write_wav
from timar_ros.data.dualtalk_files import (
    clip_names,
    load_motion,
    partner_stem,
    save_motion,
    speaker_stems,
)

__all__ = [
    "AudioError",
    "load_wav",
    "resample",
    "write_wav",
    "clip_names",
    "load_motion",
    "partner_stem",
    "save_motion",
    "speaker_stems",
]
