"""Out-of-core evaluation (vidrec/evaluation/parquet.py): the suite over DuckDB views of chunked Parquet, under a
small memory limit with a spill directory, gives the same table as over the same rows loaded in memory."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from benchmarks.evaluate_ooc import TABLE_NAMES, write_parquet
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.parquet import attach_parquet, limit_memory
from vidrec.evaluation.tables import load_table

IMPRESSIONS, USERS, ITEMS = 200_000, 2_000, 5_000


def test_out_of_core_equals_in_memory(tmp_path) -> None:
    rows = write_parquet(tmp_path, IMPRESSIONS, USERS, ITEMS, chunk=50_000)
    assert rows["impressions"] == rows["scores"] == IMPRESSIONS
    assert len(list((tmp_path / "impressions").glob("*.parquet"))) == 4
    settings = SuiteSettings(resamples=5, seed=3)  # slices, reliability and logging-policy rows on

    memory = duckdb.connect()
    for name in TABLE_NAMES:
        load_table(memory, name, pd.read_parquet(tmp_path / name))
    expected = evaluate(memory, settings, catalogue_size=ITEMS, n_users=USERS, baselines=())

    disk = duckdb.connect()
    limit_memory(disk, "200MB", tmp_path / "spill", threads=2)
    attach_parquet(disk, tmp_path)
    assert not disk.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0]  # views only, nothing loaded
    got = evaluate(disk, settings, catalogue_size=ITEMS, n_users=USERS, baselines=())

    keys = ["slice", "model", "metric"]
    a = expected.table.sort_values(keys).reset_index(drop=True)
    b = got.table.sort_values(keys).reset_index(drop=True)
    assert len(a) > 50 and (a[keys] == b[keys]).all().all()
    assert {"ndcg_at_10", "ctr_at_10_snips", "coverage_at_10", "click_gauc"} <= set(a["metric"])
    for column in ("value", "ci_low", "ci_high"):
        # Parallel float sums may add in another order: equal to the last few bits, not necessarily bitwise.
        np.testing.assert_allclose(b[column].to_numpy(float), a[column].to_numpy(float), rtol=1e-12, atol=1e-12)
    pd.testing.assert_frame_equal(
        got.reliability.sort_values(["model", "head", "bin"]).reset_index(drop=True),
        expected.reliability.sort_values(["model", "head", "bin"]).reset_index(drop=True),
        rtol=1e-12,
        atol=1e-12,
    )


def test_attach_parquet_names_the_missing_table_or_column(tmp_path) -> None:
    con = duckdb.connect()
    with pytest.raises(FileNotFoundError, match="impressions"):
        attach_parquet(con, tmp_path)
    write_parquet(tmp_path, 1_000, 50, 100, chunk=1_000)
    frame = pd.read_parquet(tmp_path / "scores").drop(columns=["p_watch_s"])
    for part in (tmp_path / "scores").glob("*.parquet"):
        part.unlink()
    frame.to_parquet(tmp_path / "scores" / "part-00000.parquet")
    with pytest.raises(ValueError, match=r"scores Parquet .* lacks columns \['p_watch_s'\]"):
        attach_parquet(con, tmp_path)
