"""Protocols: splits, k-core, full vs sampled ranking, metrics checked by hand and against the gate's SQL."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from vidrec.evaluation.full_ranking import full_ranking, metrics_from_hits, sampled_ranking, top_k
from vidrec.evaluation.tables import sql
from vidrec.protocols import Protocol, evaluate, k_core, ratio_counts, split_interactions


def _csr(rows: list[list[int]], n_items: int) -> sparse.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sparse.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def _positives(n_users: int = 12, per_user: int = 6, n_items: int = 10, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for t, item in enumerate(rng.choice(n_items, per_user, replace=False)):
            rows.append((f"u{u}", f"i{item}", pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=u + 10 * t)))
    return pd.DataFrame(rows, columns=["user_id", "video_id", "ts"])


def test_full_ranking_matches_a_hand_worked_example() -> None:
    scores = np.array([[9.0, 5.0, 8.0, 1.0, 7.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    relevant = _csr([[1, 3], [0]], 5)
    exclude = _csr([[0], []], 5)
    # user 0: item 0 masked; ranking 2, 4, 1, 3 -> top 3 = [2, 4, 1], one hit at rank 3 of 2 relevant
    np.testing.assert_array_equal(top_k(scores, 3, exclude), [[2, 4, 1], [4, 3, 2]])
    m = full_ranking(lambda users: scores[users], np.array([0, 1]), relevant, exclude, ks=(3,))
    ndcg_user0 = (1 / np.log2(4)) / (1 + 1 / np.log2(3))  # one hit at rank 3; ideal: 2 hits at ranks 1, 2
    assert m["recall@3"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["ndcg@3"] == pytest.approx(ndcg_user0 / 2)
    assert m["hit@3"] == pytest.approx(0.5)
    assert m["mrr@3"] == pytest.approx((1 / 3) / 2)


def test_ideal_dcg_is_capped_at_k() -> None:
    hits = np.array([[True, True]])
    m = metrics_from_hits(hits, np.array([5]), ks=(2,))
    assert m["ndcg@2"][0] == pytest.approx(1.0)  # 5 relevant, both top-2 slots hit: ideal
    assert m["recall@2"][0] == pytest.approx(2 / 5)


def test_full_ranking_agrees_with_the_gates_ranking_sql() -> None:
    """The gate's SQL ranks a session's rows; a user's rows over every unseen item make it full ranking."""
    rng = np.random.default_rng(1)
    n_users, n_items, k = 7, 15, 5
    scores = rng.random((n_users, n_items))
    relevant = _csr([list(rng.choice(n_items, rng.integers(1, 4), replace=False)) for _ in range(n_users)], n_items)
    mine = full_ranking(lambda users: scores[users], np.arange(n_users), relevant, None, ks=(k,))
    dense = relevant.toarray() > 0
    # eval_rows as metrics.evaluate builds it: gu packs the (slice, model) number 0 and the user number u
    rows = pd.DataFrame(
        [
            {
                "gu": u,
                "session_id": f"s{u}",
                "clicked": bool(dense[u, i]),
                "score": scores[u, i],
                "video_id": f"v{i:02d}",
            }
            for u in range(n_users)
            for i in range(n_items)
        ]
    )
    con = duckdb.connect()
    con.register("eval_rows", rows)
    con.register("eval_keys", pd.DataFrame({"slice": ["all"], "model": ["m"], "g": [0]}))
    con.register(
        "user_weights",
        pd.DataFrame({"rep": 0, "user_key": [f"u{u}" for u in range(n_users)], "u": range(n_users), "w": 1.0}),
    )
    gate = con.execute(sql("ranking"), {"k": k}).df().set_index("metric")["value"]
    assert mine[f"ndcg@{k}"] == pytest.approx(gate[f"ndcg_at_{k}"])
    assert mine[f"recall@{k}"] == pytest.approx(gate[f"recall_at_{k}"])
    assert mine[f"hit@{k}"] == pytest.approx(gate[f"hitrate_at_{k}"])
    assert mine[f"mrr@{k}"] == pytest.approx(gate[f"mrr_at_{k}"])


def test_k_core_removes_until_stable() -> None:
    pairs = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "video_id": ["x", "y", "x", "y", "z"]})
    out = k_core(pairs, 2)
    assert sorted(zip(out["user_id"], out["video_id"])) == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    # removing user c's only item leaves nothing else to cascade; a 3-core empties the set
    assert k_core(pairs, 3).empty


def test_leave_one_out_holds_out_each_users_last_two_by_time() -> None:
    positives = _positives()
    split = split_interactions(positives, Protocol(split="leave_one_out"))
    assert len(split.test) == len(split.val) == 12 and len(split.train) == 12 * 4
    for u, user_id in enumerate(split.user_ids):
        user = positives[positives["user_id"] == user_id].sort_values("ts")
        test_item = split.item_ids[split.test.loc[split.test["user_idx"] == u, "item_idx"].item()]
        val_item = split.item_ids[split.val.loc[split.val["user_idx"] == u, "item_idx"].item()]
        assert (test_item, val_item) == (user["video_id"].iloc[-1], user["video_id"].iloc[-2])


def test_random_global_split_ratio_and_seed() -> None:
    positives = _positives(n_users=50, per_user=10, n_items=40)
    a = split_interactions(positives, Protocol(split="random_global", seed=3))
    b = split_interactions(positives, Protocol(split="random_global", seed=3))
    c = split_interactions(positives, Protocol(split="random_global", seed=4))
    assert (len(a.train), len(a.val), len(a.test)) == (400, 50, 50)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test.equals(c.test)
    assert a.protocol.label().startswith("global random 8:1:1 (seed 3)")


def test_ratio_counts_follow_recboles_rounding() -> None:
    # RecBole 1.2 Dataset._calcu_split_ids: floor each part, train takes the rest, then each part whose
    # share is below one interaction takes one from train while train keeps more than one
    assert ratio_counts(10, (0.8, 0.1, 0.1)) == (8, 1, 1)
    assert ratio_counts(20, (0.8, 0.1, 0.1)) == (16, 2, 2)
    assert ratio_counts(11, (0.8, 0.1, 0.1)) == (9, 1, 1)
    assert ratio_counts(5, (0.8, 0.1, 0.1)) == (3, 1, 1)
    assert ratio_counts(3, (0.8, 0.1, 0.1)) == (1, 1, 1)
    assert ratio_counts(4, (0.5, 0.25, 0.25)) == (2, 1, 1)


def test_ratio_by_user_cuts_each_user_by_the_ratios() -> None:
    positives = _positives(n_users=40, per_user=20, n_items=60)
    split = split_interactions(positives, Protocol(split="ratio_by_user", seed=7))
    for part, expected in (("train", 16), ("val", 2), ("test", 2)):
        per_user = getattr(split, part).groupby("user_idx").size()
        assert len(per_user) == 40 and (per_user == expected).all(), (part, per_user.unique())
    # every interaction lands in exactly one part
    together = pd.concat([split.train, split.val, split.test])
    assert len(together) == 800 and not together.duplicated(["user_idx", "item_idx"]).any()
    assert split.counts["users_train_only"] == 0
    assert split.protocol.label() == "per-user ratio 8:1:1 (seed 7), no k-core, full ranking"


def test_ratio_by_user_is_seeded_and_ignores_row_order() -> None:
    positives = _positives(n_users=30, per_user=12, n_items=50)
    a = split_interactions(positives, Protocol(split="ratio_by_user", seed=3))
    b = split_interactions(positives.sample(frac=1.0, random_state=1), Protocol(split="ratio_by_user", seed=3))
    c = split_interactions(positives, Protocol(split="ratio_by_user", seed=4))

    def pairs(frame: pd.DataFrame) -> set:
        return set(zip(frame["user_idx"], frame["item_idx"]))

    assert pairs(a.test) == pairs(b.test) and pairs(a.val) == pairs(b.val)
    assert pairs(a.test) != pairs(c.test)


def test_ratio_by_user_keeps_short_users_in_train_and_counts_them() -> None:
    positives = _positives(n_users=10, per_user=10, n_items=30)
    ts = pd.Timestamp("2024-02-01", tz="UTC")
    short = pd.DataFrame(
        [("s1", "i1", ts), ("s2", "i1", ts), ("s2", "i2", ts + pd.Timedelta(hours=1))],
        columns=["user_id", "video_id", "ts"],
    )
    three = pd.DataFrame(
        [("t3", f"i{k}", ts + pd.Timedelta(hours=k)) for k in range(3)], columns=["user_id", "video_id", "ts"]
    )
    split = split_interactions(
        pd.concat([positives, short, three], ignore_index=True), Protocol(split="ratio_by_user", seed=0)
    )
    short_idx = [list(split.user_ids).index(u) for u in ("s1", "s2")]
    assert split.train["user_idx"].isin(short_idx).sum() == 3
    assert not split.val["user_idx"].isin(short_idx).any() and not split.test["user_idx"].isin(short_idx).any()
    assert split.counts["users_train_only"] == 2
    assert any("2 users with fewer than 3 interactions are in train only" in note for note in split.notes)
    three_idx = list(split.user_ids).index("t3")  # exactly 3: one in each part
    assert [(getattr(split, p)["user_idx"] == three_idx).sum() for p in ("train", "val", "test")] == [1, 1, 1]
    # leave-one-out applies the same rule and reports it the same way
    loo = split_interactions(pd.concat([positives, short], ignore_index=True), Protocol(split="leave_one_out"))
    assert loo.counts["users_train_only"] == 2


def test_temporal_split_is_one_global_cut() -> None:
    split = split_interactions(_positives(), Protocol(split="temporal", holdout_fraction=0.2))
    assert split.train["ts"].max() < split.val["ts"].min() <= split.val["ts"].max() < split.test["ts"].min()
    with pytest.raises(ValueError, match="clock timestamps"):
        split_interactions(_positives(), Protocol(split="temporal"), clock_time=False)


def test_protocol_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="ratios"):
        Protocol(split="ratio_by_user", ratios=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="unknown split"):
        Protocol(split="kfold")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="renamed 'random_global'.*ratio_by_user"):
        Protocol(split="random")  # type: ignore[arg-type]


def test_evaluate_records_the_protocol_and_labels_sampled_ranking() -> None:
    positives = _positives(n_users=30, per_user=8, n_items=200, seed=2)
    full = split_interactions(positives, Protocol(), item_ids=[f"i{i}" for i in range(200)])
    test = full.matrix(full.test).toarray()
    oracle = lambda users: test[users] + 0.0  # noqa: E731  (knows the held-out item)
    row = evaluate(full, oracle, "oracle")
    assert row["recall@10"] == pytest.approx(1.0) and row["ndcg@10"] == pytest.approx(1.0)
    assert row["protocol"] == "leave-one-out by time, no k-core, full ranking"
    assert row["protocol_json"]["ranking"] == "full"
    sampled = split_interactions(
        positives, Protocol(ranking="sampled", n_negatives=50), item_ids=[f"i{i}" for i in range(200)]
    )
    row = evaluate(sampled, oracle, "oracle")
    assert "SAMPLED" in row["protocol"] and "sampled50_hit@10" in row and "recall@10" not in row
    assert row["sampled50_hit@10"] == pytest.approx(1.0)


def test_sampled_ranking_is_seeded() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((4, 60))
    relevant, exclude = _csr([[1], [2], [3], [4]], 60), _csr([[0], [0], [0], [0]], 60)
    a = sampled_ranking(lambda u: scores[u], np.arange(4), relevant, exclude, n_negatives=20, ks=(5,), seed=1)
    b = sampled_ranking(lambda u: scores[u], np.arange(4), relevant, exclude, n_negatives=20, ks=(5,), seed=1)
    assert a == b
