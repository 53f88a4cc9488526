"""The SASRec retrieval model: causal and padding-invariant user tower, a finite vector for a new user,
content standardisation that travels with the weights, and a small fit that retrieves far better than chance."""

from pathlib import Path

import numpy as np
import torch

from models.fit.loop import TrainConfig, seed_everything
from models.fit.retrieval_step import recall_at_k
from models.fit.trainers import RetrievalTraining, item_tables, train_retrieval
from models.nn.config import RetrievalConfig
from models.nn.retrieval import RetrievalScorer
from models.serving.weights import load_retrieval, save_weights

CONFIG = RetrievalConfig(content_dim=16, dim=16, id_buckets=64, history_length=6)


def _model(config: RetrievalConfig = CONFIG):
    torch.manual_seed(0)
    return config.build().eval()


def _embeddings(n: int = 20, dim: int = 16) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)


def test_a_later_click_does_not_change_an_earlier_position() -> None:
    model, emb = _model(), torch.from_numpy(_embeddings())
    rows = torch.tensor([[1, 2, 3, 4, 5, 6]])
    changed = torch.tensor([[1, 2, 3, 4, 5, 9]])
    mask = torch.ones_like(rows, dtype=torch.bool)
    with torch.no_grad():
        before = model.user.sequence(emb[rows], rows, mask)
        after = model.user.sequence(emb[changed], changed, mask)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert (before[:, 5] - after[:, 5]).abs().max() > 1e-3  # the changed position itself does move


def test_padding_length_and_padded_content_do_not_matter() -> None:
    scorer = RetrievalScorer(_model(), _embeddings(), np.arange(20))
    short = scorer.user_vectors(np.array([[-1, -1, -1, 7, 8, 9]]))
    config = RetrievalConfig(content_dim=16, dim=16, id_buckets=64, history_length=10)
    # Same weights, history window 6 vs 10: positions count back from the latest click.
    same = _model(config)
    same.user.position.data[-6:] = scorer.model.user.position.data
    state = {k: v for k, v in scorer.model.state_dict().items() if k != "user.position"}
    same.load_state_dict({**state, "user.position": same.user.position.data}, strict=True)
    wide = RetrievalScorer(same, _embeddings(), np.arange(20)).user_vectors(np.array([[-1] * 7 + [7, 8, 9]]))
    np.testing.assert_allclose(short, wide, atol=1e-5)
    # A padded slot's row is never read, whatever item row 0 (what padding is clamped to) holds.
    other = _embeddings()
    other[0] += 100.0
    moved = RetrievalScorer(scorer.model, other, np.arange(20)).user_vectors(np.array([[-1, -1, -1, 7, 8, 9]]))
    np.testing.assert_allclose(short, moved, atol=1e-5)


def test_an_empty_history_gets_the_learned_new_user_vector() -> None:
    scorer = RetrievalScorer(_model(), _embeddings(), np.arange(20))
    users = scorer.user_vectors(np.array([[-1] * 6, [-1] * 5 + [3]]))
    assert np.isfinite(users).all()
    np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, atol=1e-5)
    expected = torch.nn.functional.normalize(scorer.model.user.empty.detach(), dim=0).numpy()
    np.testing.assert_allclose(users[0], expected, atol=1e-6)
    assert not np.allclose(users[0], users[1])
    np.testing.assert_allclose(scorer.user_vector([], 6), users[0], atol=1e-6)
    assert scorer.user_vectors(np.zeros((1, 0), dtype=np.int64)).shape == (1, 16)  # a zero-length window


def test_a_hashed_user_id_moves_the_vector_only_when_the_model_has_one() -> None:
    emb, history = _embeddings(), np.array([[-1, -1, 4, 5, 6, 7]] * 2)
    plain = RetrievalScorer(_model(), emb, np.arange(20))
    np.testing.assert_allclose(
        plain.user_vectors(history, np.array([0, 5]))[0], plain.user_vectors(history, np.array([0, 5]))[1]
    )
    with_ids = RetrievalScorer(
        _model(RetrievalConfig(content_dim=16, dim=16, id_buckets=64, history_length=6, user_buckets=32)),
        emb,
        np.arange(20),
    )
    vectors = with_ids.user_vectors(history, np.array([0, 5]))
    assert not np.allclose(vectors[0], vectors[1])
    np.testing.assert_allclose(vectors[0], with_ids.user_vectors(history)[0], atol=1e-6)  # bucket 0 = no id


def _sequences(n_users: int, rng: np.random.Generator, n_items: int = 40, length: int = 8):
    """Users walk item rows i, i+1, i+2 … inside one of four clusters of ten; content says the cluster."""
    rows = []
    for _ in range(n_users):
        cluster, start = rng.integers(0, 4), rng.integers(0, 10)
        rows.append([cluster * 10 + (start + t) % 10 for t in range(length)])
    return np.array(rows)


def _examples(sequences: np.ndarray, buckets: np.ndarray, log_q: np.ndarray, history: int = 6) -> dict:
    hist, items = [], []
    for seq in sequences:
        for t in range(1, len(seq)):
            past = seq[max(0, t - history) : t]
            hist.append(np.concatenate([np.full(history - len(past), -1), past]))
            items.append(seq[t])
    items = np.array(items)
    return {"history": np.array(hist), "item": items, "item_id": buckets[items], "log_q": log_q[items]}


def test_a_tiny_fit_retrieves_far_better_than_chance_and_reloads_with_its_standardisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n_items = 40
    centres = rng.normal(size=(4, 16))
    # Content on a scale far from unit variance, so the fitted standardisation is not the identity.
    embeddings = (5.0 + 3.0 * (centres[np.arange(n_items) // 10] + 0.5 * rng.normal(size=(n_items, 16)))).astype(
        np.float32
    )
    buckets = np.arange(1, n_items + 1)
    log_q = np.full(n_items, np.log(0.1), dtype=np.float32)
    train = _examples(_sequences(150, rng), buckets, log_q)
    val = _examples(_sequences(30, rng), buckets, log_q)
    model, result = train_retrieval(
        train,
        val,
        embeddings,
        CONFIG,
        RetrievalTraining(lr=5e-3, batch_size=64),
        TrainConfig(checkpoint_dir=tmp_path / "ckpt", max_epochs=6, patience=6, accelerator="cpu"),
    )
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    recall = recall_at_k(RetrievalScorer(model, embeddings, buckets), val["history"], val["item"], k=5)
    assert recall > 0.5  # chance is 5 / 40
    np.testing.assert_allclose(model.item.embedding.content_mean.numpy(), embeddings.mean(axis=0), rtol=1e-5)
    loaded = load_retrieval(save_weights(model, tmp_path / "retrieval.pt"), CONFIG.__dict__)
    torch.testing.assert_close(loaded.user.embedding.content_std, model.user.embedding.content_std)
    np.testing.assert_allclose(
        RetrievalScorer(loaded, embeddings, buckets).user_vectors(val["history"][:5]),
        RetrievalScorer(model, embeddings, buckets).user_vectors(val["history"][:5]),
        atol=1e-6,
    )


def test_item_tables_fill_unclicked_items_with_bucket_zero_and_the_rarest_log_q() -> None:
    part = {"item": np.array([2, 0, 2]), "item_id": np.array([7, 5, 7]), "log_q": np.array([-1.0, -3.0, -1.0])}
    buckets, log_q = item_tables([part], 4)
    np.testing.assert_array_equal(buckets, [5, 0, 7, 0])
    np.testing.assert_allclose(log_q, [-3.0, -3.0, -1.0, -3.0])


def test_an_item_never_clicked_in_training_counts_as_clicked_once_in_log_q() -> None:
    from models.nn.retrieval import sampling_log_q

    log_q = sampling_log_q(np.array([0, 0, 0, 1]), 3, batch_size=8)
    assert log_q[2] == log_q[1] > -10  # not log(1e-12) = -27.6, which swamped the validation loss
    assert log_q[0] > log_q[1]


def test_click_arrays_carry_hashed_user_ids_that_a_user_id_model_trains_on(tmp_path: Path) -> None:
    import pandas as pd

    from models.fit.trainers import click_arrays

    ts = pd.Timestamp("2026-01-01")
    clicks = pd.DataFrame(
        {
            "user_key": ["a", "a", "b", "c"],
            "video_id": ["v0", "v1", "v2", "v3"],
            "ts": [ts + pd.Timedelta(minutes=m) for m in range(4)],
        }
    )
    index = {f"v{i}": i for i in range(4)}
    arrays = click_arrays(clicks, clicks, index, np.arange(1, 5), 3, np.zeros(4, np.float32), {"a": 3, "b": 5})
    np.testing.assert_array_equal(arrays["user_id"], [3, 3, 5, 0])  # c was not in the fit window
    np.testing.assert_array_equal(arrays["history"][1], [-1, -1, 0])
    assert "user_id" not in click_arrays(clicks, clicks, index, np.arange(1, 5), 3, np.zeros(4, np.float32))
    config = RetrievalConfig(content_dim=16, dim=16, id_buckets=64, history_length=3, user_buckets=8)
    train = TrainConfig(checkpoint_dir=tmp_path, max_epochs=2, accelerator="cpu")
    seed_everything(train)  # train_retrieval seeds the same way before building, so this is its initial model
    initial = config.build().user.user_id.weight.detach().clone()
    model, result = train_retrieval(
        arrays, arrays, _embeddings(4), config, RetrievalTraining(batch_size=4, id_dropout=0.0), train
    )
    assert np.isfinite(result.history[-1]["train_loss"])
    trained = model.user.user_id.weight.detach()
    assert (trained[3] - initial[3]).abs().max() > 1e-3  # the bucket of a user with clicks learned
    assert trained[0].abs().sum() == 0  # bucket 0 (unknown user) stays "no id"
