"""Quality measurement pieces: the metric suite on hand-made scores, then oracle, baselines and the
cold-item restriction on a freshly generated tiny world."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.offline.world_quality import (
    baseline_scores,
    cold_only,
    impressions_table,
    measure,
    oracle_scores,
    over,
    scored,
)
from vidrec.config import DEMO_PSEUDONYM_KEY
from vidrec.items import tables_from_directory
from vidrec.splits import temporal_split
from vidrec.world.generate import generate_world


def _holdout() -> tuple[pd.DataFrame, pd.DataFrame]:
    # Two sessions of three impressions; one click in each.
    holdout = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(6)],
            "session_id": ["s0"] * 3 + ["s1"] * 3,
            "user_key": ["a"] * 3 + ["b"] * 3,
            "video_id": ["v0", "v1", "v2", "v0", "v1", "v3"],
            "position": [0, 1, 2] * 2,
            "propensity": 0.5,
            "clicked": [False, True, False, False, False, True],
            "watch_s": [0, 2.0, 0, 0, 0, 1.0],
            "converted": False,
        }
    )
    items = pd.DataFrame(
        {"video_id": ["v0", "v1", "v2", "v3"], "category": "music", "is_product": False, "is_live_host": False}
    )
    return holdout, items


def test_measure_scores_perfect_and_reversed_orderings() -> None:
    holdout, items = _holdout()
    impressions = impressions_table(holdout, items, cold_videos={"v2", "v3"}, known_users={"a"})
    assert impressions["cold_item"].tolist() == [False, False, True, False, False, True]
    assert impressions["new_user"].tolist() == [False] * 3 + [True] * 3
    truth = holdout["clicked"].to_numpy(float)
    scores = pd.concat([scored(holdout, "perfect", truth * 0.8 + 0.1), scored(holdout, "reversed", 0.9 - truth * 0.8)])
    table = measure(impressions, scores)
    assert table.at["perfect", "click_auc"] == pytest.approx(1.0)
    assert table.at["reversed", "click_auc"] == pytest.approx(0.0)
    assert table.at["perfect", "ndcg_at_10"] == pytest.approx(1.0)
    # Reversed puts each click last of three: DCG 1/log2(4) = 0.5.
    assert table.at["reversed", "ndcg_at_10"] == pytest.approx(0.5)
    assert over(table, "reversed", "perfect", "ndcg_at_10") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="2 scores for 6"):
        scored(holdout, "short", np.zeros(2))


def test_cold_only_keeps_sessions_with_two_cold_items() -> None:
    holdout, items = _holdout()
    impressions = impressions_table(holdout, items, cold_videos={"v1", "v2", "v3"}, known_users=set())
    scores = scored(holdout, "m", np.arange(6.0))
    cold, cold_scores = cold_only(impressions, scores)
    # Session s0 shows v1 and v2 (two cold items); s1 only v1 and v3 -> also two; v0 never.
    assert set(cold["video_id"]) == {"v1", "v2", "v3"}
    assert cold_scores["event_id"].tolist() == cold["event_id"].tolist()
    cold, _ = cold_only(impressions, scores, min_items=3)
    assert cold.empty


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    directory = tmp_path_factory.mktemp("tiny-world")
    generate_world(directory, size="tiny", progress=False)
    items, events = tables_from_directory(directory, tmp_path_factory.mktemp("features"), DEMO_PSEUDONYM_KEY)
    return directory, items, events


def test_tables_oracle_and_baselines_on_the_tiny_world(tiny) -> None:
    from vidrec.world.oracle import Oracle

    directory, items, events = tiny
    assert len(items) == 24 and items["video_id"].is_unique
    assert {"user_key", "user_id", "ts", "clicked"} <= set(events.columns)
    split = temporal_split(events)
    holdout = split.part(events, "holdout").reset_index(drop=True)
    fit_window = split.part(events, "fit")
    item_index = {v: i for i, v in enumerate(items["video_id"])}
    oracle = oracle_scores(holdout, Oracle.load(directory))
    assert ((oracle > 0) & (oracle < 1)).all()
    baselines = baseline_scores(fit_window, holdout, item_index, bpr_epochs=3)
    assert set(baselines) == {"most_popular", "bpr_mf"}
    assert all(len(v) == len(holdout) and np.isfinite(v).all() for v in baselines.values())
    cold = set(holdout["video_id"]) - set(fit_window["video_id"])
    impressions = impressions_table(holdout, items, cold, set(fit_window["user_key"]))
    random = np.random.default_rng(0).random(len(holdout))
    scores = pd.concat(
        [
            scored(holdout, "oracle", oracle),
            scored(holdout, "random", random),
            *[scored(holdout, k, v) for k, v in baselines.items()],
        ]
    )
    table = measure(impressions, scores)
    # The true click probability separates clicks from skips; a random score does not.
    assert table.at["oracle", "click_auc"] > 0.6
    assert table.at["oracle", "click_auc"] > table.at["random", "click_auc"]
    popular_cold = baselines["most_popular"][holdout["video_id"].isin(cold).to_numpy()]
    assert (popular_cold == 0).all()  # an id-only model knows nothing about items it never saw
