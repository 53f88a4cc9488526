"""Offline evaluation in batches (models/offline/batches.py, sessions.py): scoring the tiny world's hold-out a
few impressions and sessions at a time gives the same evaluation table and the same DuckDB tables as one batch,
and the chunk sizes bound every batch's arrays."""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

import models.offline.holdout as holdout_module
import models.offline.sessions as sessions_module
from models.offline.batches import Chunking
from models.offline.run import evaluate_candidate
from tests.model_fixtures import holdout_inputs, tiny_world, untrained_models
from vidrec.evaluation.metrics import SuiteSettings
from vidrec.evaluation.tables import TABLES, append_table
from vidrec.gate import load_policy
from vidrec.splits import temporal_split

KEY = "chunked-test-key"
SUITE = SuiteSettings(k=5, resamples=20, seed=1)
WHOLE = Chunking(impressions=10**9, sessions=10**9)
SMALL = Chunking(impressions=97, sessions=7)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_world(tmp_path_factory)


@pytest.fixture(scope="module")
def inputs(world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    items, events, embeddings = holdout_inputs(world, KEY)
    _, ranker, retrieval = untrained_models(tmp_path_factory.mktemp("models"))
    return {
        "ranker": ranker,
        "retrieval": retrieval,
        "items": items,
        "item_embeddings": embeddings,
        "events": events,
        "champion": None,
        "raw_dir": world,
        "key": KEY,
        "policy": load_policy(None),
        "suite": SUITE,
    }


def _run(inputs: dict, chunking: Chunking, reports: Path) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], object]:
    """(evaluation table, the DuckDB evaluation tables as frames, the CandidateEvaluation)."""
    con = duckdb.connect()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(holdout_module, "LATENCY_REPEATS", 2)  # the timing itself is not under test here
        run = evaluate_candidate(con, reports=reports, run_id="r", chunking=chunking, **inputs)
    tables = {name: con.execute(f"SELECT * FROM evaluation.{name}").df() for name in TABLES}
    con.close()
    return run.table, tables, run


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_chunked_and_whole_evaluation_agree(inputs: dict, tmp_path: Path) -> None:
    whole, whole_tables, whole_run = _run(inputs, WHOLE, tmp_path / "whole")
    chunked, chunked_tables, chunked_run = _run(inputs, SMALL, tmp_path / "chunked")
    holdout = temporal_split(inputs["events"]).part(inputs["events"], "holdout")
    assert len(holdout) > 3 * SMALL.impressions  # several scoring batches
    assert len(whole_run.tables.sessions) > 3 * SMALL.sessions  # several session batches
    assert whole_run.tables.impression_count == chunked_run.tables.impression_count == len(holdout)
    assert len(whole_tables["impressions"]) == len(holdout)
    assert whole_run.availability.shares == chunked_run.availability.shares
    # The evaluation tables hold the same rows (in another order: batches interleave the models).
    for name in TABLES:
        pd.testing.assert_frame_equal(_sorted(chunked_tables[name]), _sorted(whole_tables[name]), check_dtype=False)
    # Every metric, interval, slice and comparison row agrees; the scoring-latency rows are wall times.
    keys = ["slice", "model", "metric"]
    timed = whole["metric"].str.startswith("scoring_")
    a = _sorted(whole[~timed][keys + ["value", "ci_low", "ci_high"]])
    b = _sorted(chunked[~chunked["metric"].str.startswith("scoring_")][keys + ["value", "ci_low", "ci_high"]])
    assert len(a) > 100 and (a[keys] == b[keys]).all().all()
    assert {"ndcg_at_5", "catalogue_ndcg_at_5", "click_gauc", "ctr_at_5_snips"} <= set(a["metric"])
    assert {"gmv_at_5_snips", "ab_gmv_per_session_at_5", "holdout_share_orders"} <= set(a["metric"])  # orders
    # The λ curve answers the same sessions from the rows kept out of the session batches.
    assert whole_run.tables.lambda_curve["sessions"].gt(0).all()
    pd.testing.assert_frame_equal(chunked_run.tables.lambda_curve, whole_run.tables.lambda_curve)
    for column in ("value", "ci_low", "ci_high"):
        np.testing.assert_allclose(b[column].to_numpy(float), a[column].to_numpy(float), rtol=1e-9, atol=1e-12)


def test_memory_limit_is_set_during_and_restored_after(inputs: dict, tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("SET memory_limit = '3GB'")
    seen = []
    real = holdout_module.holdout_tables

    def spy(*args, **kwargs):
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("models.offline.run.holdout_tables", spy)
        patch.setattr(holdout_module, "LATENCY_REPEATS", 2)
        evaluate_candidate(con, reports=tmp_path, run_id="r", chunking=SMALL, memory_limit="500MB", **inputs)
    assert seen and seen[0].startswith("476")  # 500 MB = 476.8 MiB, as DuckDB shows it
    assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0].startswith("2.7")  # 3 GB again


def test_chunk_sizes_bound_every_batch(inputs: dict, tmp_path: Path) -> None:
    """The arrays a batch makes: histories (impressions x history), the sessions' (sessions x items) masks
    and scores, and every frame handed to the tables; none is larger than its chunk size."""
    history_rows, session_rows, appended = [], [], []
    real_histories, real_best = holdout_module.histories_before, sessions_module.best_rows
    real_append = append_table

    def histories(impressions, *args, **kwargs):
        history_rows.append(len(impressions))
        return real_histories(impressions, *args, **kwargs)

    def best(scores, available, k):
        session_rows.append((scores.shape[0], available.shape[0]))
        return real_best(scores, available, k)

    def append(con, name, frame, replace=False):
        appended.append((name, len(frame)))
        return real_append(con, name, frame, replace)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(holdout_module, "histories_before", histories)
        patch.setattr(sessions_module, "best_rows", best)
        patch.setattr("models.offline.batches.append_table", append)
        _, tables, run = _run(inputs, SMALL, tmp_path)
    n = run.tables.impression_count
    assert len(history_rows) == -(-n // SMALL.impressions) and max(history_rows) <= SMALL.impressions
    assert sum(history_rows) == n
    sessions = len(run.tables.sessions)
    assert session_rows and all(s <= SMALL.sessions and a <= SMALL.sessions for s, a in session_rows)
    k = SUITE.k
    for name, rows in appended:
        bound = {"impressions": SMALL.impressions, "scores": SMALL.impressions, "top_k": SMALL.sessions * k}
        assert rows <= bound.get(name, len(inputs["items"])), (name, rows)
    assert sum(r for name, r in appended if name == "impressions") == n
    assert sum(r for name, r in appended if name == "top_k") == len(tables["top_k"]) > sessions


def test_append_table_retypes_a_column_that_was_all_null() -> None:
    con = duckdb.connect()
    first = pd.DataFrame({"video_id": ["a"], "engaged_users": pd.Series([None], dtype=object)})
    append_table(con, "catalogue", first)
    append_table(con, "catalogue", pd.DataFrame({"video_id": ["b"], "engaged_users": [3]}))
    append_table(con, "catalogue", pd.DataFrame({"video_id": ["c"], "engaged_users": [4.5]}))
    assert con.execute("SELECT * FROM catalogue ORDER BY video_id").fetchall() == [("a", None), ("b", 3.0), ("c", 4.5)]
    append_table(con, "catalogue", pd.DataFrame({"video_id": ["d"], "engaged_users": [1]}), replace=True)
    assert con.execute("SELECT count(*) FROM catalogue").fetchall() == [(1,)]
    with pytest.raises(ValueError, match="catalogue frame lacks columns"):
        append_table(con, "catalogue", pd.DataFrame({"video_id": ["e"]}))
