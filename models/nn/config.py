"""Architecture configs: saved next to weights so a model is rebuilt without pickled modules."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.nn.encoders import MultimodalItemEncoder
from models.nn.ranker import Ranker
from models.nn.retrieval import TwoTower


@dataclass(frozen=True)
class EncoderConfig:
    dim: int = 64
    text_dim: int = 384
    frame_width: int = 16
    frame_depth: int = 3
    audio_width: int = 8
    audio_depth: int = 3
    modality_dropout: float = 0.2
    # Measured picture/sound descriptors as the embedding's last dimensions (models.nn.descriptors);
    # False rebuilds models saved before they existed.
    descriptors: bool = True
    mel_hop_ms: float = 10.0  # vidrec.media.features.FeatureConfig.hop_ms (a test keeps them equal)
    # "backbone": temporal pooling + projection over frozen EfficientNet-Lite0 frame features;
    # "scratch": the small CNN on 32x32 frames (the ablation, and models saved before the backbone).
    visual: str = "scratch"

    def build(self) -> MultimodalItemEncoder:
        return MultimodalItemEncoder(**asdict(self))


@dataclass(frozen=True)
class RankerConfig:
    content_dim: int = 64
    hidden: int = 64
    id_buckets: int = 4096
    max_position: int = 64
    item_features: int = 3
    user_buckets: int = 4096
    # The user's taste vector (vidrec.engagement.taste_before_sessions) as a ranker input.
    use_taste: bool = False
    history_length: int = 20
    # Brand and category embeddings (hashed into code_buckets, 0 = none) and the live-now flag
    # (models.nn.ranker.Ranker); rankers saved before them load with False (models.serving.weights).
    commerce: bool = True
    code_buckets: int = 256

    def build(self) -> Ranker:
        kwargs = asdict(self)
        kwargs.pop("history_length")
        return Ranker(**kwargs)


@dataclass(frozen=True)
class RetrievalConfig:
    content_dim: int = 64
    dim: int = 64
    # Hashed item ids: 4096 buckets put lastfm-2k's 17,632 artists ~4 to a bucket, so warm items could
    # not be told apart by id. 2**17 leaves ~13% of them sharing one. Where the bundle's one id column is
    # hashed with the ranker's count (models.fit.retrieval_step.fit_retrieval), the pipeline builds the
    # retrieval model with that count instead.
    id_buckets: int = 1 << 17
    history_length: int = 20
    # The SASRec user tower (models.nn.retrieval.UserTower).
    heads: int = 2
    layers: int = 2
    dropout: float = 0.2
    # Hashed user ids added to the user vector; 0 = none (history alone, the same for known and new users).
    user_buckets: int = 0
    share_item_embedding: bool = True

    def build(self) -> TwoTower:
        return TwoTower(
            self.content_dim,
            self.dim,
            self.id_buckets,
            max_history=max(self.history_length, 1),
            heads=self.heads,
            layers=self.layers,
            dropout=self.dropout,
            user_buckets=self.user_buckets,
            share_item_embedding=self.share_item_embedding,
        )
