"""The per-request ranker path (history encoded once, broadcast over candidates) gives the same numbers
as the per-candidate path (``Ranker.forward`` with the history repeated for every candidate)."""

import numpy as np
import pytest
import torch

from models.nn.ranker import BlendWeights, Ranker
from models.serving.scoring import RankerScorer

N_ITEMS, CONTENT_DIM, HISTORY = 400, 16, 12


def _scorer(use_taste: bool, seed: int = 0) -> RankerScorer:
    torch.manual_seed(seed)
    ranker = Ranker(content_dim=CONTENT_DIM, hidden=24, id_buckets=64, user_buckets=32, use_taste=use_taste)
    with torch.no_grad():  # untrained weights are near zero in places; make every term matter
        ranker.position_bias.weight.normal_(std=0.1)
        if use_taste:
            ranker.taste_in[0].running_mean.normal_(std=0.3)
            ranker.taste_in[0].running_var.uniform_(0.5, 2.0)
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(N_ITEMS, CONTENT_DIM)).astype(np.float32)
    buckets = rng.integers(0, 64, N_ITEMS)
    features = rng.normal(size=(N_ITEMS, 3)).astype(np.float32)
    return RankerScorer(ranker, embeddings, buckets, features, BlendWeights(watch_scale_s=2.0))


def _old_path(
    scorer: RankerScorer, history: list[int], candidates: np.ndarray, bucket: int, taste: np.ndarray | None
) -> list[np.ndarray]:
    """The pre-change ``score_user``: the padded history line repeated per candidate through ``forward``."""
    row = np.full(HISTORY, -1, dtype=np.int64)
    if history:
        row[-len(history[-HISTORY:]) :] = history[-HISTORY:]
    n = len(candidates)
    out = scorer.score(
        np.broadcast_to(row, (n, HISTORY)),
        candidates,
        user_ids=np.full(n, bucket, dtype=np.int64),
        taste=None if taste is None else np.broadcast_to(taste, (n, len(taste))),
    )
    return [out.p_click, out.expected_watch_s, out.p_conversion, out.score]


@pytest.mark.parametrize("use_taste", [False, True])
@pytest.mark.parametrize(
    "history",
    [[], [5], list(range(3, 40, 3)), list(range(100, 130))],
    ids=["empty", "one", "full", "longer-than-window"],
)
def test_broadcast_path_matches_per_candidate_forward(use_taste: bool, history: list[int]) -> None:
    scorer = _scorer(use_taste)
    rng = np.random.default_rng(1)
    candidates = rng.integers(0, N_ITEMS, 257)
    taste = rng.normal(size=CONTENT_DIM).astype(np.float32) if use_taste else None
    for bucket in (0, 7):
        old = _old_path(scorer, history, candidates, bucket, taste)
        # a small batch size exercises the chunking of candidates as well
        new = scorer.score_user(history, HISTORY, candidates, user_bucket=bucket, taste=taste, batch_size=100)
        for name, a, b in zip(
            ("p_click", "watch", "p_conversion", "score"),
            old,
            (new.p_click, new.expected_watch_s, new.p_conversion, new.score),
        ):
            assert b.shape == a.shape, name
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-5, err_msg=name)
        assert np.ptp(new.score) > 1e-3  # the comparison is not between constants


def test_ranker_outputs_match_on_raw_logits() -> None:
    """Closer than the blended scores: the three logits themselves, straight from the module."""
    scorer = _scorer(False, seed=3)
    ranker = scorer.ranker
    hist_rows = torch.tensor([-1, -1, 4, 9, 17, 33, 2, 8, 1, 0, 50, 60])
    mask = hist_rows >= 0
    safe = hist_rows.clamp(min=0)
    cand = torch.arange(0, 300)
    with torch.inference_mode():
        state = ranker.encode_user(scorer.embeddings[safe], scorer.ids[safe] * mask, mask, user_id=3)
        new = ranker.score_candidates(state, scorer.embeddings[cand], scorer.ids[cand], scorer.features[cand])
        n = len(cand)
        old = ranker(
            candidate=scorer.embeddings[cand],
            candidate_id=scorer.ids[cand],
            item_features=scorer.features[cand],
            history=scorer.embeddings[safe].expand(n, -1, -1),
            history_ids=(scorer.ids[safe] * mask).expand(n, -1),
            history_mask=mask.expand(n, -1),
            user_id=torch.full((n,), 3),
        )
    for a, b in ((old.click_logit, new.click_logit), (old.cvr_logit, new.cvr_logit), (old.log_watch, new.log_watch)):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
