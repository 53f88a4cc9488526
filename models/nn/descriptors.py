"""Measured signal descriptors: picture noise and motion, soundtrack tempo and flux.

A small strided CNN averages pixel noise away and sees one patch at a time, and three strided 3x3
convolutions over 10 ms mel frames see ~150 ms, far less than a beat period (0.2–1 s). So picture
quality and pace, which viewers respond to, are measured directly here, like the signal-quality
descriptors video platforms compute beside learned features, and appended to the learned
embedding. They have no weights; their standardisation is fitted once on the training catalogue
and saved in the state dict (buffers), so serving applies exactly the training transform.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

VISUAL_DESCRIPTORS = ("noise", "motion")
AUDIO_DESCRIPTORS = ("tempo", "flux")
DESCRIPTORS = VISUAL_DESCRIPTORS + AUDIO_DESCRIPTORS

# The mean absolute response of a 3x3 Laplacian on flat regions is the classic fast noise-level
# estimate (Immerkaer, 1996); the world's and real videos' noise both show up there.
_LAPLACIAN = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)
_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
# Beat periods searched: 0.15 s to 1.1 s (about 55 to 400 beats per minute).
_MIN_PERIOD_S, _MAX_PERIOD_S = 0.15, 1.1
_EPS = 1e-3
# Standardised values are clipped, so one odd file (a still cover has zero motion) cannot dominate.
_CLIP = 4.0


def frame_statistics(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) uint8 or [0, 1] frames → (B, 2): log noise level and log mean change between
    sampled frames."""
    pixels = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    b, t = pixels.shape[:2]
    luma = (pixels.flatten(0, 1) * _LUMA.to(pixels)).sum(dim=1, keepdim=True)  # (B*T, 1, H, W)
    noise = F.conv2d(luma, _LAPLACIAN.to(pixels)).abs().mean(dim=(1, 2, 3)).view(b, t).mean(dim=1)
    luma = luma.view(b, t, -1)
    motion = (luma[:, 1:] - luma[:, :-1]).abs().mean(dim=(1, 2)) if t > 1 else torch.zeros_like(noise)
    return torch.log(torch.stack([noise, motion], dim=1) + _EPS)


def sound_statistics(mel: torch.Tensor, hop_ms: float) -> torch.Tensor:
    """(B, F, M) log-mel → (B, 2): log tempo in Hz (the autocorrelation peak of the loudness envelope
    over beat-sized lags) and log spectral flux, both after per-clip standardisation (loudness-free)."""
    x = mel.float()
    x = (x - x.mean(dim=(1, 2), keepdim=True)) / (x.std(dim=(1, 2), keepdim=True) + 1e-4)
    envelope = x.mean(dim=2)
    envelope = envelope - envelope.mean(dim=1, keepdim=True)
    n = envelope.shape[1]
    spectrum = torch.fft.rfft(envelope, n=2 * n, dim=1)
    autocorrelation = torch.fft.irfft(spectrum.abs() ** 2, n=2 * n, dim=1)[:, :n]
    lo = max(1, round(_MIN_PERIOD_S * 1000 / hop_ms))
    hi = min(n, round(_MAX_PERIOD_S * 1000 / hop_ms) + 1)
    if hi <= lo:  # a clip shorter than one beat: no tempo can be read
        tempo = torch.zeros(x.shape[0], device=x.device)
    else:
        period_s = (lo + autocorrelation[:, lo:hi].argmax(dim=1)).float() * hop_ms / 1000
        tempo = torch.log(1.0 / period_s)
    flux = torch.log((x[:, 1:] - x[:, :-1]).abs().mean(dim=(1, 2)) + _EPS)
    return torch.stack([tempo, flux], dim=1)


class SignalDescriptors(nn.Module):
    """(B, len(DESCRIPTORS)) standardised descriptors; a modality's block is 0 where it is missing."""

    def __init__(self, hop_ms: float = 10.0, scale: float = 0.2) -> None:
        super().__init__()
        self.hop_ms = hop_ms
        # Small next to the unit-norm learned part, so content similarity stays mostly semantic.
        self.scale = scale
        self.register_buffer("mean", torch.zeros(len(DESCRIPTORS)))
        self.register_buffer("std", torch.ones(len(DESCRIPTORS)))

    def raw(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([frame_statistics(batch["frames"]), sound_statistics(batch["mel"], self.hop_ms)], dim=1)

    def presence(self, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3) modality mask → (B, len(DESCRIPTORS)): which descriptors were measured."""
        mask = mask.bool()
        return torch.cat(
            [mask[:, :1].expand(-1, len(VISUAL_DESCRIPTORS)), mask[:, 1:2].expand(-1, len(AUDIO_DESCRIPTORS))], dim=1
        )

    @torch.no_grad()
    def fit(self, batches: list[dict[str, torch.Tensor]]) -> None:
        """Set the standardisation from a catalogue (items where each modality is present)."""
        values = torch.cat([self.raw(b) for b in batches])
        present = torch.cat([self.presence(b["mask"]) for b in batches]).float()
        count = present.sum(dim=0).clamp(min=1.0)
        mean = (values * present).sum(dim=0) / count
        var = (((values - mean) ** 2) * present).sum(dim=0) / count
        self.mean.copy_(mean)
        self.std.copy_(var.sqrt().clamp(min=1e-3))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        z = ((self.raw(batch) - self.mean) / self.std).clamp(-_CLIP, _CLIP)
        return self.scale * z * self.presence(batch["mask"]).float()
