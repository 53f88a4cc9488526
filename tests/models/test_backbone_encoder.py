"""The encoder's pretrained-backbone visual branch: cached features in, temporal pooling + projection trained."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bentos.content import ContentEmbedder
from models.fit.data import backbone_features
from models.nn.config import EncoderConfig
from models.serving.weights import load_encoder
from vidrec.media.backbone import FEATURE_DIM
from vidrec.media.features import FeatureConfig
from vidrec.media.shards import Shard


def _batch(n: int, t: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "frames": torch.zeros(n, t, 3, 32, 32, dtype=torch.uint8),
        "frame_features": torch.rand(n, t, FEATURE_DIM, generator=g).half(),
        "mel": torch.randn(n, 198, 40, generator=g).half(),
        "text": torch.randn(n, 384, generator=g),
        "mask": torch.ones(n, 3, dtype=torch.bool),
    }


def test_backbone_branch_reads_features_and_trains_only_its_head() -> None:
    encoder = EncoderConfig(visual="backbone").build()
    batch = _batch(4)
    out = encoder(batch)
    assert out.shape == (4, 64) and torch.isfinite(out).all()
    out.sum().backward()
    assert encoder.visual.proj[0].weight.grad is not None and encoder.visual.proj[0].weight.grad.abs().sum() > 0
    # The raw frames are not read: changing them changes nothing.
    changed = {**batch, "frames": torch.full_like(batch["frames"], 255)}
    torch.testing.assert_close(encoder.eval()(batch), encoder(changed))
    with pytest.raises(ValueError, match="visual must be one of"):
        EncoderConfig(visual="resnet").build()


def test_backbone_encoder_round_trips_through_saved_weights(tmp_path: Path) -> None:
    config = EncoderConfig(visual="backbone")
    encoder = config.build().eval()
    torch.save(encoder.state_dict(), tmp_path / "encoder.pt")
    from dataclasses import asdict

    loaded = load_encoder(tmp_path / "encoder.pt", asdict(config)).eval()
    batch = _batch(2)
    torch.testing.assert_close(encoder(batch), loaded(batch))


def test_catalogue_features_load_with_zeros_for_items_without(tmp_path: Path) -> None:
    saved = np.random.default_rng(1).random((8, FEATURE_DIM)).astype(np.float16)
    np.save(tmp_path / "a.npy", saved)
    catalogue = pd.DataFrame({"frame_features_path": [str(tmp_path / "a.npy"), None]})
    loaded = backbone_features(catalogue, n_frames=8)
    assert loaded.shape == (2, 8, FEATURE_DIM) and loaded.dtype == torch.float16
    np.testing.assert_array_equal(loaded[0].numpy(), saved)
    assert not loaded[1].any()
    assert backbone_features(pd.DataFrame({"shard_path": ["x"]}), n_frames=8) is None
    # An all-text catalogue (recognition ran, nothing to recognise): zeros, so a backbone encoder trains on it.
    text_only = backbone_features(pd.DataFrame({"frame_features_path": [None, None, None]}), n_frames=8)
    assert text_only.shape == (3, 8, FEATURE_DIM) and not text_only.any()


def test_upload_without_backbone_features_is_placed_by_sound_and_text() -> None:
    class Sentences:
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 384), np.float32) / 384**0.5

    config = FeatureConfig()
    embedder = ContentEmbedder(EncoderConfig(visual="backbone", modality_dropout=0.0).build(), Sentences(), config)
    shard = Shard(
        frames=np.zeros(config.frames_shape(), np.uint8),
        mel=np.zeros(config.mel_shape(), np.float16),
        has_audio=False,
        plan=None,  # type: ignore[arg-type]
    )
    text_only = embedder.query("a cat")
    assert np.allclose(embedder.video(shard, "a cat"), text_only, atol=1e-5)
    seen = embedder.video(shard, "a cat", np.ones((8, FEATURE_DIM), np.float16))
    assert not np.allclose(seen, text_only, atol=1e-3)
