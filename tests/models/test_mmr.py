"""MMR re-ranking: λ=1 is the plain ranking (through the served path too), lower λ trades relevance for
dissimilarity as worked out by hand; the diversity metrics against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.serving.bundle import load_bundle, write_bundle
from models.serving.mmr import mmr_order
from tests.model_fixtures import tiny_contents, untrained_models
from vidrec.evaluation.diversity import category_coverage, intra_list_diversity, mean_categories_per_list


def test_lambda_one_is_the_plain_ranking() -> None:
    rng = np.random.default_rng(0)
    scores, vectors = rng.normal(size=50), rng.normal(size=(50, 8))
    plain = np.argsort(-scores, kind="stable")[:10]
    assert mmr_order(scores, vectors, 10, 1.0).tolist() == plain.tolist()
    # The greedy loop itself, a hair below 1, agrees too (distinct scores).
    assert mmr_order(scores, vectors, 10, 1.0 - 1e-12).tolist() == plain.tolist()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mmr_order(scores, vectors, 10, 1.5)


def test_lower_lambda_picks_the_dissimilar_item_worked_by_hand() -> None:
    # Items 0 and 1 are the same vector with the top scores; item 2 is orthogonal and scores lowest.
    scores = np.array([1.0, 0.9, 0.0])
    vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # After 0: gain(1) = λ·0.9 − (1−λ)·1, gain(2) = λ·0 − (1−λ)·0 = 0. At λ=0.5: −0.05 < 0, so 2 is next.
    assert mmr_order(scores, vectors, 3, 0.5).tolist() == [0, 2, 1]
    assert mmr_order(scores, vectors, 3, 0.6).tolist() == [0, 1, 2]  # 0.6·0.9 − 0.4 = 0.14 > 0


def test_served_path_at_lambda_one_equals_the_plain_ranking(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", tiny_contents(untrained_models(tmp_path / "m"), n=30, histories={"u": ["v1"]}))
    path = load_bundle(tmp_path / "b").served_path()
    plain = path.recommend([1, 4], 0, 10)
    assert path.recommend([1, 4], 0, 10, mmr_lambda=1.0).rows.tolist() == plain.rows.tolist()
    expected = plain.candidates[np.argsort(-path.score([1, 4], 0, plain.candidates).score, kind="stable")[:10]]
    assert plain.rows.tolist() == expected.tolist()
    diverse = path.recommend([1, 4], 0, 10, mmr_lambda=0.2)
    assert intra_list_diversity(diverse.rows[None], path.embeddings) >= intra_list_diversity(
        plain.rows[None], path.embeddings
    )
    assert len(diverse.rows) == 10 and diverse.rows[0] == plain.rows[0]  # MMR keeps the most relevant first


def test_diversity_metrics_by_hand() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    # List [0, 1]: 1 − cos = 1; list [0, 2]: 0; list [1, −1] has one item and is left out.
    assert intra_list_diversity(np.array([[0, 1], [0, 2], [1, -1]]), vectors) == pytest.approx(0.5)
    categories = np.array(["a", "b", "a", "c"])
    assert category_coverage(np.array([[0, 2], [1, -1]]), categories) == pytest.approx(2 / 3)
    assert mean_categories_per_list(np.array([[0, 2], [0, 1]]), categories) == pytest.approx(1.5)
