"""Per-modality encoders (frames, log-mel audio, frozen-text projection) and their masked fusion."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.nn.descriptors import DESCRIPTORS, SignalDescriptors


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1),
        nn.BatchNorm2d(c_out),
        nn.GELU(),
    )


class FrameEncoder(nn.Module):
    """A small CNN per frame, then self-attention across the sampled frames and attention pooling.

    Temporal attention (not a mean) lets motion between frames carry signal.
    """

    def __init__(self, dim: int = 64, width: int = 24, depth: int = 3, max_frames: int = 32) -> None:
        super().__init__()
        channels = [width * 2**i for i in range(depth)]
        # A 4x4 patchify stem: frames are small and many (items x frames), so the first
        # full-resolution convolution would dominate training time on a CPU.
        stem = nn.Sequential(nn.Conv2d(3, channels[0], kernel_size=4, stride=4), nn.BatchNorm2d(channels[0]), nn.GELU())
        self.cnn = nn.Sequential(stem, *[_conv_block(a, b) for a, b in zip(channels, channels[1:])])
        self.proj = nn.Linear(channels[-1], dim)
        self.position = nn.Parameter(torch.zeros(max_frames, dim))
        self.temporal = nn.TransformerEncoderLayer(
            d_model=dim, nhead=4, dim_feedforward=dim * 2, dropout=0.0, batch_first=True
        )
        self.pool_query = nn.Parameter(torch.randn(dim) / dim**0.5)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, 3, H, W) uint8 or float in [0, 1] → (B, dim)."""
        b, t = frames.shape[:2]
        pixels = frames.float()
        if frames.dtype == torch.uint8:
            pixels = pixels / 255.0
        x = self.cnn(pixels.flatten(0, 1) - 0.5).mean(dim=(2, 3))
        x = self.proj(x).view(b, t, -1) + self.position[:t]
        x = self.temporal(x)
        weights = torch.softmax(x @ self.pool_query, dim=1)
        return (weights.unsqueeze(-1) * x).sum(dim=1)


class BackboneFrameEncoder(nn.Module):
    """Temporal pooling + projection over frozen pretrained per-frame features (``vidrec.media.backbone``).

    The backbone already recognises objects and scenes, so only the projection into the joint space and
    the attention across frames are trained; the features are cached, so a training step costs no CNN."""

    def __init__(self, dim: int = 64, feature_dim: int = 1280, max_frames: int = 32) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(feature_dim)
        self.proj = nn.Sequential(nn.Linear(feature_dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))
        self.position = nn.Parameter(torch.zeros(max_frames, dim))
        self.temporal = nn.TransformerEncoderLayer(
            d_model=dim, nhead=4, dim_feedforward=dim * 2, dropout=0.0, batch_first=True
        )
        self.pool_query = nn.Parameter(torch.randn(dim) / dim**0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: (B, T, feature_dim) → (B, dim)."""
        t = features.shape[1]
        x = self.proj(self.norm(features.float())) + self.position[:t]
        x = self.temporal(x)
        weights = torch.softmax(x @ self.pool_query, dim=1)
        return (weights.unsqueeze(-1) * x).sum(dim=1)


VISUAL_ENCODERS = ("scratch", "backbone")


class AudioEncoder(nn.Module):
    """A CNN over the log-mel spectrogram (frames × mel bins)."""

    def __init__(self, dim: int = 64, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        channels = [1] + [width * 2**i for i in range(depth)]
        self.cnn = nn.Sequential(*[_conv_block(a, b) for a, b in zip(channels, channels[1:])])
        self.proj = nn.Linear(channels[-1], dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, F, M) → (B, dim). Standardised per clip so loudness does not dominate."""
        x = mel.float().unsqueeze(1)
        x = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-4)
        return self.proj(self.cnn(x).mean(dim=(2, 3)))


class TextProjection(nn.Module):
    """Trainable projection of frozen sentence embeddings (the encoder itself stays frozen).

    The embeddings are standardised per dimension first (``fit_scale``). MiniLM's unit vectors share a
    large common direction (on Last.fm artist names the mean vector has norm 0.42 while each dimension
    varies by 0.046), so unscaled the projection saw nearly the same input for every item: all
    text-only items embedded close together and the encoder's validation loss stayed at chance. The
    statistics are buffers, so a saved ``state_dict`` carries them; weights saved before they existed
    load with identity scaling (their old behaviour)."""

    def __init__(self, text_dim: int = 384, dim: int = 64) -> None:
        super().__init__()
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_std", torch.ones(text_dim))
        self.proj = nn.Sequential(nn.Linear(text_dim, dim * 2), nn.GELU(), nn.Linear(dim * 2, dim))

    @torch.no_grad()
    def fit_scale(self, text: torch.Tensor) -> None:
        """Per-dimension mean and std of the catalogue's present (non-empty) text embeddings; fewer than
        two rows leave the identity."""
        text = torch.as_tensor(text, dtype=torch.float32)
        if len(text) < 2:
            return
        self.text_mean.copy_(text.mean(dim=0))
        self.text_std.copy_(text.std(dim=0).nan_to_num(1.0).clamp(min=1e-4))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name in ("text_mean", "text_std"):
            state_dict.setdefault(prefix + name, getattr(self, name).detach().clone().fill_(name == "text_std"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.proj((text.float() - self.text_mean) / self.text_std)


MODALITIES = ("visual", "audio", "text")


class ModalityFusion(nn.Module):
    """Fuses per-modality vectors with a presence mask; modality dropout while training.

    Dropout hides whole modalities so the fused embedding stays useful when one is missing
    (no audio track, empty text) — the common case for real uploads.
    """

    def __init__(self, dim: int = 64, modality_dropout: float = 0.2) -> None:
        super().__init__()
        self.modality_dropout = modality_dropout
        self.type_embedding = nn.Parameter(torch.zeros(len(MODALITIES), dim))
        self.score = nn.Linear(dim, 1)
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, parts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """parts: (B, 3, dim); mask: (B, 3) bool, True where present → (B, dim) L2-normalised."""
        mask = mask.bool()
        if self.training and self.modality_dropout > 0:
            drop = torch.rand(mask.shape, device=mask.device) < self.modality_dropout
            kept = mask & ~drop
            # Never drop every modality of an item: fall back to its original mask.
            mask = torch.where(kept.any(dim=1, keepdim=True), kept, mask)
        x = parts + self.type_embedding
        logits = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)
        fused = self.out((weights.unsqueeze(-1) * x).sum(dim=1))
        return F.normalize(fused, dim=-1)


class MultimodalItemEncoder(nn.Module):
    """Item content → one ``dim``-wide embedding, from whichever of frames, audio and text are present.

    With ``descriptors`` the last ``len(DESCRIPTORS)`` dimensions are measured signal descriptors
    (``models.nn.descriptors``) and the first ones the learned, L2-normalised joint space that the
    cross-modal and behavioural losses train (``fused``); a text-only query has zero descriptors, so
    it compares with videos on the joint space alone.
    """

    def __init__(
        self,
        dim: int = 64,
        text_dim: int = 384,
        frame_width: int = 24,
        frame_depth: int = 3,
        audio_width: int = 16,
        audio_depth: int = 3,
        modality_dropout: float = 0.2,
        descriptors: bool = False,
        mel_hop_ms: float = 10.0,
        visual: str = "scratch",
    ) -> None:
        super().__init__()
        if visual not in VISUAL_ENCODERS:
            raise ValueError(f"visual must be one of {VISUAL_ENCODERS}, got {visual!r}")
        self.descriptors = SignalDescriptors(mel_hop_ms) if descriptors else None
        self.output_dim = dim
        joint = dim - len(DESCRIPTORS) if descriptors else dim
        # "backbone": pretrained frame features (batch["frame_features"]); "scratch": the small CNN on
        # 32x32 frames, kept as the ablation and for models saved before the backbone existed.
        self.visual_input = "frame_features" if visual == "backbone" else "frames"
        self.visual = (
            BackboneFrameEncoder(joint) if visual == "backbone" else FrameEncoder(joint, frame_width, frame_depth)
        )
        self.audio = AudioEncoder(joint, audio_width, audio_depth)
        self.text = TextProjection(text_dim, joint)
        self.fusion = ModalityFusion(joint, modality_dropout)

    def modality_vectors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 3, joint): visual, audio, text vectors before fusion."""
        visual = self.visual(batch[self.visual_input])
        return torch.stack([visual, self.audio(batch["mel"]), self.text(batch["text"])], dim=1)

    def fused(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, joint): the learned, L2-normalised joint embedding."""
        return self.fusion(self.modality_vectors(batch), batch["mask"])

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        fused = self.fused(batch)
        if self.descriptors is None:
            return fused
        return torch.cat([fused, self.descriptors(batch)], dim=1)
