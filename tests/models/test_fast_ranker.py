"""The serving fast paths give the reference numbers: ``FastRanker`` against ``Ranker.score_candidates`` + the
blend on the same inputs, and the served path's exclude_seen (seen rows dropped from deeper searches) and
user-vector cache against a mask built per request and an uncached user tower."""

import numpy as np
import pytest
import torch

from models.nn.config import RankerConfig, RetrievalConfig
from models.nn.ranker import BlendWeights, Ranker
from models.serving.fast_ranker import FastRanker
from models.serving.path import PathSettings, ServedPath
from models.serving.scoring import RankerScorer

N_ITEMS, CONTENT_DIM, HISTORY = 500, 16, 12


def _scorer(use_taste: bool, seed: int = 0, commerce: bool = False) -> RankerScorer:
    torch.manual_seed(seed)
    ranker = Ranker(
        content_dim=CONTENT_DIM, hidden=24, id_buckets=64, user_buckets=32, use_taste=use_taste, commerce=commerce
    )
    with torch.no_grad():  # untrained weights are near zero in places; make every term matter
        if commerce:
            ranker.live.normal_(std=0.5)
        ranker.position_bias.weight.normal_(std=0.3)
        for head in (ranker.click_head, ranker.cvr_head, ranker.watch_head, ranker.attention.mlp[2]):
            head.bias.normal_(std=0.5)
        ranker.fit_content_scale(torch.randn(100, CONTENT_DIM) * 2 + 0.5)
        if use_taste:
            ranker.taste_in[0].running_mean.normal_(std=0.3)
            ranker.taste_in[0].running_var.uniform_(0.5, 2.0)
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(N_ITEMS, CONTENT_DIM)).astype(np.float32)
    buckets = rng.integers(0, 64, N_ITEMS)
    features = rng.normal(size=(N_ITEMS, 3)).astype(np.float32)
    codes = rng.integers(0, 16, (N_ITEMS, 2)) if commerce else None
    blend = BlendWeights(click=1.0, watch=0.7, conversion=2.0)
    return RankerScorer(ranker, embeddings, buckets, features, blend, codes)


def _reference(scorer: RankerScorer, state, candidates: np.ndarray, live: np.ndarray | None = None) -> list[np.ndarray]:
    """The module's own serving pass (``score_candidates`` at the serving position) and ``RankerOutput.blend``."""
    cand = torch.as_tensor(candidates)
    live_now = None if live is None else torch.as_tensor(live, dtype=torch.float32)
    with torch.inference_mode():
        out = scorer.ranker.score_candidates(
            state,
            scorer.embeddings[cand],
            scorer.ids[cand],
            scorer.features[cand],
            item_codes=scorer.codes_of(cand),
            live_now=live_now,
        )
        values = (out.p_click, out.expected_watch_s, out.p_conversion, out.blend(scorer.weights))
        return [v.numpy().copy() for v in values]


@pytest.mark.parametrize("use_taste", [False, True])
@pytest.mark.parametrize(
    "history", [[], [5], list(range(3, 40, 3)), list(range(100, 130))], ids=["empty", "one", "full", "over-window"]
)
def test_fast_ranker_equals_the_torch_module_on_the_same_inputs(use_taste: bool, history: list[int]) -> None:
    scorer = _scorer(use_taste)
    assert isinstance(scorer.fast, FastRanker)  # what score_state runs
    rng = np.random.default_rng(1)
    candidates = rng.integers(0, N_ITEMS, 257)
    taste = rng.normal(size=CONTENT_DIM).astype(np.float32) if use_taste else None
    for bucket in (0, 7):
        state = scorer.user_state(history, HISTORY, user_bucket=bucket, taste=taste)
        expected = _reference(scorer, state, candidates)
        # a small batch size exercises the chunking of candidates as well
        fast = scorer.score_state(state, candidates, batch_size=100)
        for name, a, b in zip(
            ("p_click", "watch", "p_conversion", "score"),
            expected,
            (fast.p_click, fast.expected_watch_s, fast.p_conversion, fast.score),
        ):
            assert b.shape == a.shape and b.dtype == np.float32, name
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.ptp(fast.score) > 1e-2  # the comparison is not between constants
        # the fast order is the reference order up to swaps of near-ties (within float rounding)
        in_fast_order = expected[3][np.argsort(-fast.score, kind="stable")]
        assert np.all(np.diff(in_fast_order) <= 1e-6)


@pytest.mark.parametrize("live", [False, True], ids=["nobody-live", "some-live"])
def test_fast_ranker_equals_the_commerce_ranker(live: bool) -> None:
    """A commerce ranker (hashed brand and category, live-now in the target and the trunk) scores as the module."""
    scorer = _scorer(False, seed=2, commerce=True)
    rng = np.random.default_rng(3)
    candidates = rng.integers(0, N_ITEMS, 200)
    live_now = (rng.random(len(candidates)) < 0.3).astype(np.float32) if live else None
    state = scorer.user_state(list(range(10, 40, 4)), HISTORY, user_bucket=5)
    expected = _reference(scorer, state, candidates, live_now)
    fast = scorer.score_state(state, candidates, batch_size=64, live_now=live_now)
    for a, b in zip(expected, (fast.p_click, fast.expected_watch_s, fast.p_conversion, fast.score)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    if live:  # live-now moves the scores: the comparison covers its terms
        assert not np.allclose(scorer.score_state(state, candidates).score, fast.score)


def test_fast_ranker_with_padded_history_slots_ignores_them() -> None:
    """A state whose mask has padding (``encode_user`` called directly, as tests and callers may) scores as
    the module does: padded slots get no attention."""
    scorer = _scorer(False, seed=4)
    rows = torch.tensor([-1, -1, 4, 9, 17, -1, 2])
    mask = rows >= 0
    safe = rows.clamp(min=0)
    with torch.inference_mode():
        state = scorer.ranker.encode_user(scorer.embeddings[safe], scorer.ids[safe] * mask, mask, user_id=3)
    candidates = np.arange(0, 300)
    expected = _reference(scorer, state, candidates)
    got = scorer.fast.scores(state, scorer.embeddings[candidates], scorer.ids[candidates], scorer.features[candidates])
    for a, b in zip(expected, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def _path(n_items: int, ann_threshold: int, seed: int = 0) -> ServedPath:
    torch.manual_seed(seed)
    ranker_config, retrieval_config = RankerConfig(content_dim=CONTENT_DIM), RetrievalConfig(content_dim=CONTENT_DIM)
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n_items, CONTENT_DIM)).astype(np.float32)
    return ServedPath(
        ranker_config.build().eval(),
        BlendWeights(),
        retrieval_config.build().eval(),
        embeddings,
        rng.integers(0, 64, n_items),
        rng.normal(size=(n_items, 3)).astype(np.float32),
        ranker_config.history_length,
        retrieval_config.history_length,
        PathSettings(n_candidates=60),
        ann_threshold,
    )


@pytest.mark.parametrize("ann_threshold", [100_000, 1_000], ids=["exact", "ivf"])
def test_exclude_seen_drops_seen_rows_as_a_mask_would(ann_threshold: int) -> None:
    path = _path(3_000, ann_threshold)
    assert path.index.kind == ("exact" if ann_threshold > 3_000 else "ivf")
    rng = np.random.default_rng(2)
    category = rng.integers(0, 6, len(path))
    for trial in range(12):
        history = rng.integers(0, len(path), int(rng.integers(1, 20))).tolist()
        filtered = None if trial % 3 == 0 else category == trial % 6
        if trial % 4 == 1:  # a filter passing fewer rows than the candidate depth: every allowed row is ranked
            filtered = np.zeros(len(path), dtype=bool)
            filtered[rng.choice(len(path), 70, replace=False)] = True
            filtered[history[:5]] = True
        masked = np.ones(len(path), dtype=bool) if filtered is None else filtered.copy()
        masked[history] = False
        got = path.recommend(history, 3, k=10, allowed=filtered, exclude_seen=True)
        expected = path.recommend(history, 3, k=10, allowed=masked, exclude_seen=False)
        assert got.retrieval == expected.retrieval
        assert np.array_equal(got.candidates, expected.candidates)
        assert np.array_equal(got.rows, expected.rows)
        assert not set(got.candidates.tolist()) & set(history)


def test_the_cached_user_vector_is_the_user_tower_s() -> None:
    path = _path(500, 100_000)
    history = (4, 8, 15, 16, 23, 42)
    first = path._user_vector(history)
    assert np.array_equal(first, path.retrieval.user_vector(list(history), path.retrieval_history))
    assert path._user_vector(history) is first and not first.flags.writeable
    path.add_item(np.ones(CONTENT_DIM, np.float32), np.zeros(3, np.float32))  # an upload replaces the scorer
    assert np.array_equal(path._user_vector(history), path.retrieval.user_vector(list(history), path.retrieval_history))
