"""Hold-out tables from the tiny world: counts reconcile, top K respects publication, the oracle's
simulated A/B values are the world's own, and the oracle beats every model in the simulated test."""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import torch

from models.nn.config import RankerConfig
from models.offline.holdout import holdout_tables
from models.offline.top_k import world_truth
from models.serving.path import PathSettings
from tests.model_fixtures import holdout_inputs, tiny_world, untrained_models
from vidrec.evaluation.metrics import SuiteSettings, evaluate, headline
from vidrec.evaluation.tables import load_table
from vidrec.splits import temporal_split
from vidrec.world.oracle import Oracle

KEY, K, N = "holdout-test-key", 5, 6


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_world(tmp_path_factory)


@pytest.fixture(scope="module")
def inputs(world: Path, tmp_path_factory: pytest.TempPathFactory):
    items, events, embeddings = holdout_inputs(world, KEY)
    _, ranker, retrieval = untrained_models(tmp_path_factory.mktemp("models"))
    truth = world_truth(world, events, KEY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("models.offline.holdout.LATENCY_REPEATS", 10)  # the timing itself is not under test here
        # Retrieval depth below the tiny world's 24 items, so the served top K really is retrieved.
        tables = holdout_tables(
            ranker,
            retrieval,
            items,
            embeddings,
            events,
            champion_dir=None,
            truth=truth,
            k=K,
            path_settings=PathSettings(n_candidates=N),
        )
    return items, events, truth, tables


def test_counts_reconcile_with_the_holdout_window(inputs) -> None:
    items, events, _, tables = inputs
    holdout = temporal_split(events).part(events, "holdout")
    assert len(tables.impressions) == len(holdout) > 0
    assert set(tables.impressions["event_id"]) == set(holdout["event_id"])
    per_model = tables.scores.groupby("model").size()
    assert set(per_model.index) == {"candidate", "random", "logging_policy"}
    assert (per_model == len(holdout)).all()
    assert tables.catalogue_size == len(items)


def test_top_k_only_shows_published_items_ranked_1_to_k(inputs) -> None:
    items, events, _, tables = inputs
    top = tables.top_k
    assert set(top["model"]) == {"candidate", "candidate_catalogue", "random", "most_popular", "oracle", "incumbent"}
    assert top.groupby(["model", "session_id"]).size().max() <= K
    top = top[top["model"] != "incumbent"]  # the logged slates: what was shown, published and seen alike
    assert top["rank"].between(1, K).all()
    starts = events.groupby("session_id")["ts"].min()
    published = pd.to_datetime(items.set_index("video_id")["published_at"], utc=True)
    assert (top["video_id"].map(published).to_numpy() <= top["session_id"].map(starts).to_numpy()).all()
    assert not top.duplicated(["model", "session_id", "video_id"]).any()
    # Most-popular shows everyone the most-engaged published items, best first.
    engaged = tables.catalogue.set_index("video_id")["engaged_users"]
    popular = top[top["model"] == "most_popular"].sort_values(["session_id", "rank"])
    for _, shown in popular.groupby("session_id"):
        counts = shown["video_id"].map(engaged).to_numpy()
        assert (counts[:-1] >= counts[1:]).all()


def test_served_rows_report_retrieval_recall_and_the_no_history_slice(inputs) -> None:
    _, events, _, tables = inputs
    rows = tables.served_rows.set_index(["slice", "metric"])
    recall = rows.loc[("all", f"retrieval_recall_at_{N}")]
    assert 0 < recall["value"] <= 1 and recall["ci_low"] <= recall["value"] <= recall["ci_high"]
    assert {"user_history=none", "user_history=some"} <= set(tables.served_rows["slice"])
    assert {f"catalogue_ndcg_at_{K}", f"catalogue_recall_at_{K}"} <= set(tables.served_rows["metric"])
    assert tables.path["n_candidates"] == N
    # The served top K is not the whole-catalogue ranking: retrieval cut it for some session.
    top = tables.top_k.sort_values("rank").groupby(["model", "session_id"])["video_id"].agg(tuple)
    assert (top["candidate"] != top["candidate_catalogue"].reindex(top["candidate"].index)).any()


def test_the_incumbent_arm_replays_each_sessions_logged_slate(inputs) -> None:
    _, events, truth, tables = inputs
    incumbent = tables.top_k[tables.top_k["model"] == "incumbent"]
    holdout = temporal_split(events).part(events, "holdout")
    first = holdout[holdout["position"] < K].sort_values(["session_id", "position"])
    expected = first.drop_duplicates(["session_id", "video_id"]).groupby("session_id")["video_id"].agg(list)
    shown = incumbent.sort_values(["session_id", "rank"]).groupby("session_id")["video_id"].agg(list)
    assert shown.to_dict() == expected.reindex(shown.index).to_dict() and len(shown) == holdout["session_id"].nunique()
    row = incumbent.iloc[3]
    expected_click = truth.oracle.click_prob(
        [truth.user_ids[row["user_key"]]], [row["video_id"]], position=int(row["rank"]) - 1
    )[0]
    assert row["oracle_click"] == pytest.approx(expected_click, abs=1e-12)


def test_slice_flags_follow_the_training_window(inputs) -> None:
    _, events, _, tables = inputs
    fit = temporal_split(events).part(events, "fit")
    imp = tables.impressions
    assert (imp["cold_item"] == ~imp["video_id"].isin(set(fit["video_id"]))).all()
    assert (imp["new_user"] == ~imp["user_key"].isin(set(fit["user_key"]))).all()


def test_oracle_values_are_the_worlds_and_the_oracle_wins_the_simulated_ab(inputs, world: Path) -> None:
    _, events, truth, tables = inputs
    oracle = Oracle.load(world)
    row = tables.top_k.iloc[7]
    user_id = truth.user_ids[row["user_key"]]
    expected = oracle.click_prob([user_id], [row["video_id"]], position=int(row["rank"]) - 1)[0]
    assert row["oracle_click"] == pytest.approx(expected, abs=1e-12)
    con = duckdb.connect()
    for name in ("impressions", "scores", "top_k", "catalogue"):
        load_table(con, name, getattr(tables, name))
    wide = headline(
        evaluate(con, SuiteSettings(k=K, resamples=5, slices=False), tables.catalogue_size, tables.n_users).table, K
    ).set_index("model")
    ctr = wide[f"ab_ctr_at_{K}"]
    assert ctr["oracle"] >= ctr["candidate"] and ctr["oracle"] > ctr["random"]


def test_latency_is_measured_on_a_fixed_batch(inputs) -> None:
    latency = inputs[3].latency
    assert latency["batch"] > 0 and 0 < latency["p50_ms"] <= latency["p99_ms"]


def test_a_wrong_key_is_a_clear_error(inputs, world: Path) -> None:
    events = inputs[1]
    with pytest.raises(ValueError, match="pseudonymisation key"):
        world_truth(world, events.assign(user_key="not-a-user"), KEY)
    assert world_truth(world.parent / "no-such-world", events, KEY) is None


def test_the_champion_is_rebuilt_from_its_bundle_and_scores_the_same_window(
    inputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored model (state_dicts + models.json + items with id buckets) becomes the `champion` arm;
    its encoder embeds today's items (content tensors faked here: the encoder has its own tests)."""
    import models.offline.holdout as holdout
    from models.fit.data import ItemTensors
    from models.serving.bundle import BundleContents, write_bundle

    items, events, truth, _ = inputs
    encoder, ranker, retrieval = untrained_models(tmp_path, seed=1)
    buckets = np.array([i % 3 for i in range(len(items))])  # 0 = cold for the champion
    write_bundle(
        tmp_path / "champion",
        BundleContents(
            encoder,
            ranker,
            retrieval,
            items.assign(title="t", creator_id="c"),
            np.zeros((len(items), RankerConfig().content_dim), np.float32),
            buckets,
            {},
            [],
        ),
    )
    n = len(items)
    fake = ItemTensors(
        video_ids=items["video_id"].tolist(),
        frames=torch.randint(0, 255, (n, 8, 3, 32, 32), dtype=torch.uint8),
        mel=torch.randn(n, 198, 40).half(),
        text=torch.randn(n, 384),
        mask=torch.ones(n, 3, dtype=torch.bool),
    )
    monkeypatch.setattr(holdout, "item_tensors", lambda _items: fake)
    monkeypatch.setattr(holdout, "LATENCY_REPEATS", 10)
    path = holdout.champion_path(tmp_path / "champion", items)
    assert (path.id_buckets == 0).sum() == (buckets == 0).sum()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 64)).astype(np.float32)
    embeddings = pd.DataFrame({"video_id": items["video_id"], "embedding": list(vectors)})
    _, ranker, retrieval = untrained_models(tmp_path / "candidate")
    tables = holdout_tables(
        ranker, retrieval, items, embeddings, events, champion_dir=tmp_path / "champion", truth=truth, k=K
    )
    assert set(tables.scores["model"]) == {"candidate", "champion", "random", "logging_policy"}
    assert set(tables.top_k["model"]) == {
        "candidate",
        "candidate_catalogue",
        "champion",
        "random",
        "most_popular",
        "oracle",
        "incumbent",
    }
    con = duckdb.connect()
    for name in ("impressions", "scores", "top_k", "catalogue"):
        load_table(con, name, getattr(tables, name))
    table = evaluate(con, SuiteSettings(k=K, resamples=5, slices=False), tables.catalogue_size, tables.n_users).table
    paired = table[table["model"] == "candidate_vs_champion"]
    assert {"click_auc", f"ab_watch_s_per_session_at_{K}", f"watch_s_per_session_at_{K}_snips"} <= set(paired["metric"])
