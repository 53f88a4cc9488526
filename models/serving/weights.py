"""Weights as ``state_dict`` files plus the config to rebuild the modules; never pickled modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.nn.config import EncoderConfig, RankerConfig, RetrievalConfig


@dataclass
class TrainedModel:
    """What a training asset hands downstream: where the weights are and how to rebuild them."""

    kind: str  # "encoder" | "ranker" | "retrieval"
    weights_path: str
    config: dict
    history: list[dict[str, float]] = field(default_factory=list)
    fit: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def save_weights(module: nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), path)
    return path


def load_encoder(weights: Path, config: dict) -> nn.Module:
    # Configs saved before signal descriptors existed have no such key: rebuild them without.
    encoder = EncoderConfig(**{"descriptors": False, **config}).build()
    encoder.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return encoder.eval()


def load_ranker(weights: Path, config: dict) -> nn.Module:
    ranker = RankerConfig(**{"commerce": False, **config}).build()  # saved before commerce inputs: without
    state = torch.load(weights, map_location="cpu", weights_only=True)
    # Rankers saved before content standardisation existed lack its buffers: identity scaling.
    for name in ("content_mean", "content_std"):
        state.setdefault(name, getattr(ranker, name))
    ranker.load_state_dict(state)
    return ranker.eval()


def load_retrieval(weights: Path, config: dict) -> nn.Module:
    model = RetrievalConfig(**config).build()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()
