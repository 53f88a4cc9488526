"""Training discipline: an interrupted fit resumes from last.ckpt and ends where an uninterrupted one does;
the two-tower retrieval model trains and serves user and item vectors."""

from pathlib import Path

import lightning.pytorch as L
import numpy as np
import pytest
import torch

from models.fit.data import ClickDataModule, EpochShuffle, ImpressionDataModule
from models.fit.loop import TrainConfig, fit
from models.fit.systems import RankerSystem, RetrievalSystem
from models.nn.config import RankerConfig, RetrievalConfig
from models.nn.retrieval import RetrievalScorer, sampled_softmax_loss, sampling_log_q
from tests.models.test_models import _impressions

N_ITEMS = 20


class Interrupted(RuntimeError):
    pass


class InterruptAt(L.Callback):
    """Raises part-way through an epoch, like a killed job (the epoch's checkpoint is never written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise Interrupted(f"stopped at step {trainer.global_step}")


def _ranker_run(directory: Path, callbacks=None, epochs: int = 3, accelerator: str = "cpu"):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train, val = _impressions(256, N_ITEMS, rng), _impressions(64, N_ITEMS, rng)
    system = RankerSystem(
        RankerConfig(content_dim=16, hidden=16, id_buckets=64, user_buckets=64).build(),
        torch.randn(N_ITEMS, 16, generator=torch.Generator().manual_seed(1)),
    )
    data = ImpressionDataModule(train, val, batch_size=64)
    config = TrainConfig(checkpoint_dir=directory, max_epochs=epochs, patience=10, accelerator=accelerator)
    return system, fit(system, data, config, callbacks=callbacks)


def test_interrupted_training_resumes_to_the_same_result(tmp_path: Path) -> None:
    reference, ref_result = _ranker_run(tmp_path / "uninterrupted")
    # 4 batches per epoch: stop in the middle of the second epoch, after last.ckpt of the first.
    with pytest.raises(Interrupted):
        _ranker_run(tmp_path / "interrupted", callbacks=[InterruptAt(step=6)])
    assert (tmp_path / "interrupted" / "last.ckpt").exists()
    resumed, result = _ranker_run(tmp_path / "interrupted")
    assert result.epochs == ref_result.epochs == 3
    # It continued from the first epoch's checkpoint rather than starting over.
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert [row["epoch"] for row in ref_result.history] == [0, 1, 2]
    final = {k: v for k, v in ref_result.history[-1].items() if k.endswith("loss")}
    again = {k: v for k, v in result.history[-1].items() if k.endswith("loss")}
    assert final.keys() == again.keys() and "val_loss" in final
    for key in final:
        assert again[key] == pytest.approx(final[key], rel=1e-5), key
    for name, weight in reference.state_dict().items():
        assert torch.allclose(weight, resumed.state_dict()[name], atol=1e-5), name


def test_epoch_shuffle_depends_only_on_seed_and_epoch() -> None:
    a, b = EpochShuffle(50, seed=3), EpochShuffle(50, seed=3)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(50))
    b.set_epoch(1)
    assert list(a) == list(b)


def test_sampled_softmax_corrects_popularity_and_ignores_duplicate_items() -> None:
    user = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    rows = torch.tensor([0, 1, 1, 2])
    plain = sampled_softmax_loss(user, user, rows, torch.zeros(4))
    # Row 1 and 2 hold the same item: neither is the other's negative, so aligned pairs stay finite and low.
    assert torch.isfinite(plain)
    log_q = torch.from_numpy(sampling_log_q(np.array([0, 1, 1, 1, 2]), 3, batch_size=4))
    assert log_q[1] > log_q[0]  # the popular item is more likely to be an in-batch negative
    assert sampled_softmax_loss(user, user, rows, log_q[rows]) != plain


def test_retrieval_trains_and_serves_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    embeddings = torch.nn.functional.normalize(torch.randn(N_ITEMS, 16), dim=-1)
    buckets = np.where(np.arange(N_ITEMS) < 15, np.arange(N_ITEMS) + 1, 0)  # the last 5 items are cold

    def clicks(n: int) -> dict[str, np.ndarray]:
        items = rng.integers(0, N_ITEMS, n)
        log_q = sampling_log_q(items, N_ITEMS, 32)
        return {
            "history": rng.integers(-1, N_ITEMS, (n, 6)),
            "item": items,
            "item_id": buckets[items],
            "log_q": log_q[items],
        }

    config = RetrievalConfig(content_dim=16, dim=8, id_buckets=32, history_length=6)
    system = RetrievalSystem(config.build(), embeddings)
    result = fit(
        system,
        ClickDataModule(clicks(128), clicks(64), batch_size=32),
        TrainConfig(checkpoint_dir=tmp_path, max_epochs=2, accelerator="cpu"),
    )
    assert result.epochs == 2 and np.isfinite(result.history[-1]["train_loss"])
    scorer = RetrievalScorer(system.model, embeddings.numpy(), buckets)
    items = scorer.item_vectors()
    assert items.shape == (N_ITEMS, 8)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)
    users = scorer.user_vectors(np.array([[-1] * 6, [3, 4, -1, -1, 5, 6]]))
    assert users.shape == (2, 8) and np.isfinite(users).all()
    assert scorer.user_vector([], 6).shape == (8,)  # a new user still gets a query vector


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_uses_the_gpu_with_bf16_when_present(tmp_path: Path) -> None:
    system, result = _ranker_run(tmp_path, epochs=1, accelerator="auto")
    assert result.device.startswith("cuda")
    assert result.precision == ("bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true")
    assert np.isfinite(result.history[-1]["val_loss"])


def test_a_retrained_model_does_not_depend_on_what_the_process_did_before(tmp_path: Path) -> None:
    """The same data and TrainConfig give the same weights even when earlier work in the process drew
    from the global random generators: the modules' initial weights are seeded too, so re-running the
    pipeline on the same data retrains the same candidate."""
    from models.fit.trainers import RankerTraining, train_ranker

    rng = np.random.default_rng(0)
    train, val = _impressions(256, N_ITEMS, rng), _impressions(64, N_ITEMS, rng)
    embeddings = np.random.default_rng(1).normal(size=(N_ITEMS, 16)).astype(np.float32)
    config = RankerConfig(content_dim=16, hidden=16, id_buckets=64, user_buckets=64)
    weights = []
    for earlier in (1, 2):
        torch.manual_seed(earlier)  # what the process did before: other assets, other tests
        np.random.seed(earlier)
        ranker, _ = train_ranker(
            train,
            val,
            embeddings,
            config,
            RankerTraining(),
            TrainConfig(checkpoint_dir=tmp_path / str(earlier), max_epochs=1, accelerator="cpu"),
        )
        weights.append(ranker.state_dict())
    for name, weight in weights[0].items():
        assert torch.equal(weight, weights[1][name]), name
