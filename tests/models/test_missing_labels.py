"""Labels a source never recorded (watch time, conversion, position) are masked, never filled in:
the ranker's watch and conversion losses ignore those rows, the click loss does not."""

import numpy as np
import pandas as pd
import pytest
import torch

from models.fit.systems import RankerSystem
from models.fit.trainers import blend_weights, impression_arrays
from models.nn.config import RankerConfig
from models.nn.ranker import SERVING_POSITION

N, N_ITEMS = 16, 20


def _system() -> RankerSystem:
    torch.manual_seed(0)
    system = RankerSystem(
        RankerConfig(content_dim=16, hidden=16, id_buckets=64, user_buckets=64).build(),
        torch.randn(N_ITEMS, 16, generator=torch.Generator().manual_seed(1)),
    )
    return system.eval()  # no id dropout: the same batch gives the same outputs


def _batch() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    clicked = np.arange(N) % 2 == 0
    history = rng.integers(-1, N_ITEMS, size=(N, 5))
    arrays = {
        "candidate": rng.integers(0, N_ITEMS, N),
        "candidate_id": rng.integers(0, 64, N),
        "user_id": rng.integers(0, 64, N),
        "item_features": rng.random((N, 3)).astype(np.float32),
        "history": history,
        "history_ids": np.where(history >= 0, rng.integers(1, 64, (N, 5)), 0),
        "position": rng.integers(0, 10, N),
        "clicked": clicked,
        "watch_s": np.where(clicked, 1 + rng.random(N) * 5, 0).astype(np.float32),
        "converted": clicked & (np.arange(N) % 4 == 0),
    }
    return {k: torch.as_tensor(v) for k, v in arrays.items()}


def _rows(batch: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in batch.items()}


def _values(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: loss.item() for name, loss in losses.items()}


def test_rows_without_labels_add_no_watch_or_conversion_loss() -> None:
    system, batch = _system(), _batch()
    unlabelled = torch.arange(N) >= N // 2
    masked = {
        **batch,
        "has_watch_label": ~unlabelled,
        "has_conversion_label": ~unlabelled,
        # placeholders the loss must never read: any value gives the same result
        "watch_s": torch.where(unlabelled, torch.tensor(999.0), batch["watch_s"]),
        "converted": torch.where(unlabelled, torch.tensor(True), batch["converted"]),
    }
    full, with_masks = _values(system.losses(batch)), _values(system.losses(masked))
    labelled_only = _values(system.losses(_rows(batch, slice(0, N // 2))))

    assert with_masks["click_loss"] == pytest.approx(full["click_loss"])  # every row still counts
    # The watch and conversion losses are those of the labelled rows alone.
    assert with_masks["watch_loss"] == pytest.approx(labelled_only["watch_loss"])
    assert with_masks["conversion_loss"] == pytest.approx(labelled_only["conversion_loss"])
    assert with_masks["watch_loss"] != pytest.approx(full["watch_loss"])  # the mask did something


def test_unlabelled_rows_get_no_gradient_from_the_watch_and_conversion_heads() -> None:
    system, batch = _system(), _batch()
    unlabelled = torch.arange(N) >= N // 2
    features = batch["item_features"].clone().requires_grad_(True)
    masked = {**batch, "item_features": features, "has_watch_label": ~unlabelled, "has_conversion_label": ~unlabelled}
    losses = system.losses(masked)
    (grad,) = torch.autograd.grad(losses["watch_loss"] + losses["conversion_loss"], features)
    assert torch.count_nonzero(grad[unlabelled]) == 0
    assert torch.count_nonzero(grad[~unlabelled]) > 0
    (click_grad,) = torch.autograd.grad(system.losses(masked)["click_loss"], features)
    assert torch.count_nonzero(click_grad[unlabelled]) > 0  # the click loss still learns from them


def test_a_batch_without_any_label_trains_the_click_head_only() -> None:
    system, batch = _system(), _batch()
    none = torch.zeros(N, dtype=torch.bool)
    losses = system.losses({**batch, "has_watch_label": none, "has_conversion_label": none})
    assert losses["watch_loss"].item() == 0.0 and losses["conversion_loss"].item() == 0.0
    assert losses["loss"].item() == pytest.approx(losses["click_loss"].item())
    losses["loss"].backward()
    assert system.ranker.watch_head.weight.grad is None or not system.ranker.watch_head.weight.grad.any()
    assert system.ranker.click_head.weight.grad.any()


def _impressions(with_labels: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
            "user_key": "u1",
            "video_id": ["a", "b", "a"],
            "session_id": ["s1", "s2", "s3"],
            "clicked": True,
            "position": pd.array([3, 1, 2] if with_labels else [pd.NA] * 3, dtype="Int64"),
            "watch_s": [4.0, 2.0, 6.0] if with_labels else np.nan,
            "converted": pd.array([True, False, False] if with_labels else [pd.NA] * 3, dtype="boolean"),
        }
    )
    return frame


def test_impression_arrays_mask_null_labels_and_use_the_serving_position() -> None:
    impressions = _impressions(with_labels=False)
    arrays = impression_arrays(
        impressions, impressions, {"a": 0, "b": 1}, np.array([0, 5]), np.zeros((2, 3), np.float32), history_length=4
    )
    assert (arrays["position"] == SERVING_POSITION).all() and arrays["position"].dtype == np.int64
    assert not arrays["has_watch_label"].any() and not arrays["has_conversion_label"].any()
    assert np.isfinite(arrays["watch_s"]).all() and arrays["converted"].dtype == bool
    labelled = impression_arrays(
        _impressions(with_labels=True),
        impressions,
        {"a": 0, "b": 1},
        np.array([0, 5]),
        np.zeros((2, 3), np.float32),
        history_length=4,
    )
    assert labelled["has_watch_label"].all() and labelled["has_conversion_label"].all()
    assert list(labelled["position"]) == [3, 1, 2] and list(labelled["watch_s"]) == [4.0, 2.0, 6.0]


def test_blend_gives_heads_without_labels_no_weight() -> None:
    assert blend_weights(_impressions(with_labels=False)).watch == 0.0
    assert blend_weights(_impressions(with_labels=False)).conversion == 0.0
    labelled = blend_weights(_impressions(with_labels=True))
    assert (labelled.watch, labelled.conversion, labelled.watch_scale_s) == (1.0, 1.0, 4.0)
