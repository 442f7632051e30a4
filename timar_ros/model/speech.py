"""Speech encoders behind one interface:
``encoder(audio [N, samples_per_turn]) -> [N, F, out_dim]``.

Each turn's audio chunk is encoded on its own (as in the reference, which encodes every 1-s
chunk independently), so encoding is streaming-safe: the features of a turn depend only on its
own chunk (and, with ``audio_norm="running"``, on the loudness heard before it).

* :class:`BuiltinSpeechEncoder`: log-mel spectrogram (25 ms Hann window, 10 ms hop, DFT and mel
  matrices as fixed buffers applied with conv1d/matmul, so it exports to ONNX) -> per-chunk
  normalisation (the chunk's mean and std of log-mel are removed and appended as two channels, so
  loudness is kept) -> three 1-D convolutions (4F -> 2F -> F frames) -> Linear.
* :class:`Wav2Vec2SpeechEncoder`: ``transformers`` Wav2Vec2Model from a local directory
  (``local_files_only``; nothing is downloaded). As in the reference: CNN features interpolated
  (linear, aligned corners) to F frames before the transformer, last hidden state. The waveform
  comes normalised as ``TIMARConfig.audio_norm`` says (:mod:`timar_ros.data.audio_norm`: the
  policy normalises each stream, the training data each file); the reference's processor uses
  whole-file statistics ("file"), which is not causal. Frozen by default.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..motion import SAMPLE_RATE, SAMPLES_PER_FRAME

N_FFT = 400
HOP = 160  # 4 mel frames per 25-fps motion frame


def mel_filterbank(
    n_mels: int,
    n_fft: int = N_FFT,
    sr: int = SAMPLE_RATE,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """[n_fft//2+1, n_mels] HTK-scale triangular filters (area not normalised)."""
    fmax = fmax or sr / 2

    def hz2mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel2hz(m):
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    pts = mel2hz(np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2))
    fb = np.zeros((len(freqs), n_mels))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[:, m] = np.maximum(0.0, np.minimum(up, down))
    return fb.astype(np.float32)


def dft_kernels(n_fft: int = N_FFT) -> np.ndarray:
    """[2 * (n_fft//2+1), 1, n_fft]: Hann-windowed cos and -sin rows (real, imaginary)."""
    n = np.arange(n_fft)
    win = 0.5 - 0.5 * np.cos(2 * math.pi * n / n_fft)  # periodic Hann
    k = np.arange(n_fft // 2 + 1)[:, None]
    ang = 2 * math.pi * k * n[None] / n_fft
    return np.concatenate([np.cos(ang) * win, -np.sin(ang) * win])[:, None].astype(np.float32)


class LogMel(nn.Module):
    """audio [N, S] -> log-mel [N, n_mels, S // HOP] with zero padding inside the chunk.

    Framing is reshape + slice + concat (3 hops of 160 = 480 samples per frame, the window's last
    80 taps are zero) and the DFT is one matmul: cheap on a CPU and plain ONNX ops."""

    def __init__(self, n_mels: int):
        super().__init__()
        k = dft_kernels()[:, 0].T  # [400, 2 * bins]
        k = np.concatenate([k, np.zeros((3 * HOP - N_FFT, k.shape[1]), np.float32)])
        self.register_buffer("dft", torch.from_numpy(k), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(n_mels)), persistent=False)
        self.n_bins = N_FFT // 2 + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        N, S = audio.shape
        pad = (N_FFT - HOP) // 2
        n = S // HOP  # frames
        x = F.pad(audio, (pad, pad + 3 * HOP - N_FFT)).view(N, n + 2, HOP)
        frames = torch.cat([x[:, 0:n], x[:, 1 : n + 1], x[:, 2 : n + 2]], dim=2)  # [N, n, 480]
        spec = torch.matmul(frames, self.dft)  # [N, n, 2 * bins]
        re, im = spec[..., : self.n_bins], spec[..., self.n_bins :]
        mel = torch.matmul(re * re + im * im, self.mel)  # [N, n, M]
        return torch.log(mel + 1e-5).transpose(1, 2)


class BuiltinSpeechEncoder(nn.Module):
    def __init__(
        self, frames_per_turn: int, n_mels: int = 64, channels: int = 128, out_dim: int = 128
    ):
        super().__init__()
        self.frames_per_turn = frames_per_turn
        self.out_dim = out_dim
        self.logmel = LogMel(n_mels)
        self.convs = nn.Sequential(
            nn.Conv1d(n_mels + 2, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(channels, channels, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.out = nn.Linear(channels, out_dim)

    def forward(self, audio: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """audio [N, F * 640] (16 kHz mono float) -> [N, F, out_dim].

        ``known`` [N] int (frames): a turn in progress, of which only the first ``known`` frames
        have been heard. The samples after them are zeroed, the log-mel statistics come from the
        heard frames only and the unheard frames' normalised log-mel is 0 (the mean), so the
        features of the heard frames depend on nothing after them except through the zeros.
        None: the whole turn (the 1-s mode's encoding, unchanged)."""
        if known is not None:
            audio = audio * (
                torch.arange(audio.shape[1], device=audio.device)[None]
                < (known * SAMPLES_PER_FRAME)[:, None]
            ).to(audio.dtype)
        lm = self.logmel(audio)  # [N, M, 4F]
        if known is None:
            mean = lm.mean(dim=(1, 2), keepdim=True)
            std = lm.std(dim=(1, 2), keepdim=True, unbiased=False)
            norm = (lm - mean) / (std + 1e-3)
        else:
            heard = (
                torch.arange(lm.shape[2], device=lm.device)[None]
                < (known * (SAMPLES_PER_FRAME // HOP))[:, None]
            ).to(lm.dtype)[:, None]  # [N, 1, 4F]
            count = (heard.sum(2, keepdim=True) * lm.shape[1]).clamp_min(1.0)
            mean = (lm * heard).sum(dim=(1, 2), keepdim=True) / count
            var = ((lm - mean) * heard).pow(2).sum(dim=(1, 2), keepdim=True) / count
            std = var.sqrt()
            norm = (lm - mean) / (std + 1e-3) * heard
        ex = torch.cat([mean / 10.0, std / 10.0], dim=1).expand(-1, -1, lm.shape[2])
        h = self.convs(torch.cat([norm, ex], dim=1))  # [N, C, F]
        return self.out(h.transpose(1, 2))


class Wav2Vec2SpeechEncoder(nn.Module):
    def __init__(self, frames_per_turn: int, path: str, finetune: bool = False):
        super().__init__()
        try:
            from transformers import Wav2Vec2Model
        except ImportError as exc:  # pragma: no cover - optional dependency
            raise ImportError(
                "speech_encoder='wav2vec2' needs `transformers` (pip install transformers)"
            ) from exc
        try:
            self.w2v = Wav2Vec2Model.from_pretrained(path, local_files_only=True)
        except OSError as exc:
            raise FileNotFoundError(
                f"wav2vec2_path={path!r}: no local Wav2Vec2 model there (config.json + weights); "
                "download it once elsewhere and point wav2vec2_path at the directory"
            ) from exc
        self.frames_per_turn = frames_per_turn
        self.finetune = finetune
        self.out_dim = self.w2v.config.hidden_size
        if not finetune:
            self.w2v.requires_grad_(False)
            self.w2v.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if not self.finetune:
            self.w2v.eval()  # frozen: always eval (no dropout), as in the reference
        return self

    def forward(self, audio: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """audio [N, F * 640], normalised as the config's ``audio_norm`` says (by the policy or
        the training data) -> last hidden state [N, F, hidden]. ``known`` [N] int: heard
        frames of a turn in progress; the samples after them are zeroed (the transformer is
        bidirectional over the turn, so every frame's features depend on the zeros)."""
        if known is not None:
            audio = audio * (
                torch.arange(audio.shape[1], device=audio.device)[None]
                < (known * SAMPLES_PER_FRAME)[:, None]
            ).to(audio.dtype)
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            feats = self.w2v.feature_extractor(audio)  # [N, 512, frames]
            feats = F.interpolate(
                feats, size=self.frames_per_turn, mode="linear", align_corners=True
            ).transpose(1, 2)
            hidden = self.w2v.feature_projection(feats)
            if isinstance(hidden, tuple):
                hidden = hidden[0]
            out = self.w2v.encoder(hidden).last_hidden_state
        return out


def build_speech_encoder(config) -> nn.Module:
    if config.speech_encoder == "builtin":
        return BuiltinSpeechEncoder(
            config.frames_per_turn, config.n_mels, config.speech_channels, config.speech_dim
        )
    return Wav2Vec2SpeechEncoder(
        config.frames_per_turn, config.wav2vec2_path, config.wav2vec2_finetune
    )


assert SAMPLES_PER_FRAME == 4 * HOP
