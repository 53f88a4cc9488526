"""Explanations are faithful to the ranker: the reported attention weights reproduce the interest vector
the scores are computed from, and the named history item is the one with the largest weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.serving.bundle import load_bundle, write_bundle
from models.serving.explain import PRIOR_REASON, attention_weights, explain
from tests.model_fixtures import tiny_contents, untrained_models


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("explain")
    write_bundle(directory / "b", tiny_contents(untrained_models(directory / "m", seed=3), n=16, histories={}))
    return load_bundle(directory / "b").served_path().scorer


def test_the_weights_are_the_ones_the_ranker_uses(scorer) -> None:  # type: ignore[no-untyped-def]
    history, candidates = [3, 7, 1, 12], np.array([0, 2, 5, 9, 14])
    state = scorer.user_state(history, 20)
    weights = attention_weights(scorer, state, candidates)
    assert weights.shape == (5, 4) and np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        cand = torch.as_tensor(candidates)
        # The candidate vector scoring uses: content + id + the category code (commerce inputs).
        assert scorer.codes is not None and (scorer.codes[:, 1] != 0).all()
        target = scorer.ranker.target_vector(scorer.embeddings[cand], scorer.ids[cand], scorer.codes_of(cand), None)
        interest = scorer.ranker.attention.attend_one(state.history, state.prepared, state.mask, target).numpy()
    assert np.allclose(weights @ state.history.numpy(), interest, atol=1e-5)
    # And not trivially: the weights differ between candidates.
    assert not np.allclose(weights[0], weights[1])


def test_the_named_item_has_the_largest_weight(scorer) -> None:  # type: ignore[no-untyped-def]
    history, candidates = [3, 7, 1, 12], np.array([0, 2, 5, 9, 14])
    titles = [f"title {i}" for i in range(16)]
    categories = ["music" if i % 2 else "tech" for i in range(16)]
    reasons = explain(scorer, history, 20, candidates, titles, categories)
    weights = attention_weights(scorer, scorer.user_state(history, 20), candidates)
    for reason, w, row in zip(reasons, weights, candidates):
        assert reason.kind == "history" and reason.history_row == history[int(np.argmax(w))]
        assert reason.weight == pytest.approx(float(w.max()))
        assert titles[reason.history_row] in reason.text
        assert reason.same_category == (categories[reason.history_row] == categories[row])
    assert all(r.text == PRIOR_REASON for r in explain(scorer, [], 20, candidates, titles, categories))
