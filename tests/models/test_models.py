"""Models on tiny tensors: shapes, masks, losses, and one Lightning fast_dev_run per system."""

import lightning.pytorch as L
import numpy as np
import torch

from models.fit.data import EncoderDataModule, ImpressionDataModule, ItemTensors
from models.fit.systems import MultimodalEncoderSystem, RankerSystem
from models.nn.config import EncoderConfig, RankerConfig
from models.nn.descriptors import DESCRIPTORS
from models.nn.losses import info_nce


def _items(n: int = 12) -> ItemTensors:
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(n, 3, dtype=torch.bool)
    mask[::3, 1] = False  # some items without audio
    return ItemTensors(
        video_ids=[f"v{i}" for i in range(n)],
        frames=torch.randint(0, 255, (n, 4, 3, 16, 16), dtype=torch.uint8, generator=g),
        mel=torch.randn(n, 40, 16, generator=g).half(),
        text=torch.randn(n, 384, generator=g),
        mask=mask,
    )


def _impressions(n: int, n_items: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    clicked = rng.random(n) < 0.3
    history = rng.integers(-1, n_items, size=(n, 5))
    return {
        "candidate": rng.integers(0, n_items, n),
        "candidate_id": rng.integers(0, 64, n),
        "user_id": rng.integers(0, 64, n),
        "taste": rng.normal(size=(n, 16)).astype(np.float32),
        "item_features": rng.random((n, 3)).astype(np.float32),
        "history": history,
        "history_ids": np.where(history >= 0, rng.integers(1, 64, (n, 5)), 0),
        "position": rng.integers(0, 10, n),
        "clicked": clicked,
        "watch_s": np.where(clicked, rng.random(n) * 5, 0).astype(np.float32),
        "converted": clicked & (rng.random(n) < 0.2),
    }


def _trainer() -> L.Trainer:
    return L.Trainer(
        fast_dev_run=2,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def test_encoder_fuses_with_missing_modalities() -> None:
    encoder = EncoderConfig(dim=16, frame_width=4, audio_width=4).build().eval()
    items = _items()
    out = encoder(items.batch(torch.arange(len(items))))
    assert out.shape == (12, 16)
    joint = 16 - len(DESCRIPTORS)
    # The learned part is unit-norm; the measured descriptors follow it.
    assert torch.allclose(out[:, :joint].norm(dim=1), torch.ones(12), atol=1e-5)
    only_text = items.batch(torch.arange(3))
    only_text["mask"] = torch.tensor([[False, False, True]] * 3)
    text_out = encoder(only_text)
    assert torch.isfinite(text_out).all()
    # Without frames or sound nothing was measured: a text query compares on the joint space alone.
    assert torch.equal(text_out[:, joint:], torch.zeros(3, len(DESCRIPTORS)))


def test_info_nce_prefers_aligned_pairs_and_ignores_invalid_rows() -> None:
    a = torch.eye(4)
    assert info_nce(a, a) < info_nce(a, a.flip(0))
    assert info_nce(a, a, valid=torch.tensor([True, False, False, False])) == 0


def test_encoder_system_trains_one_step() -> None:
    items = _items()
    neighbours = np.array([[(i + 1) % 12, -1] for i in range(12)])
    system = MultimodalEncoderSystem(EncoderConfig(dim=16, frame_width=4, audio_width=4).build())
    _trainer().fit(system, EncoderDataModule(items, neighbours, batch_size=8))


def test_ranker_system_trains_one_step_and_scores_without_position() -> None:
    rng = np.random.default_rng(0)
    ranker = RankerConfig(content_dim=16, hidden=16, id_buckets=64, user_buckets=64).build()
    system = RankerSystem(ranker, torch.randn(20, 16))
    _trainer().fit(system, ImpressionDataModule(_impressions(64, 20, rng), _impressions(32, 20, rng), batch_size=16))
    batch = {k: torch.as_tensor(v) for k, v in _impressions(8, 20, rng).items()}
    system.eval()
    out = system(batch, use_position=False)
    assert ((out.p_conversion >= 0) & (out.p_conversion <= out.p_click)).all()
    assert (out.expected_watch_s >= 0).all()
