"""The warehouse I/O manager stores empty frames as tables, and a table first written with an all-NULL
column (DuckDB type "NULL") takes real values on the next run instead of failing the cast."""

from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from assets.warehouse_io import WarehouseIOManager


def test_an_all_null_column_takes_values_on_the_next_run(tmp_path: Path) -> None:
    frames = iter(
        [
            pd.DataFrame({"event_id": ["a"], "reason": [None]}),
            pd.DataFrame({"event_id": ["a", "b"], "reason": [None, "duplicate event_id"]}),
            pd.DataFrame({"event_id": [], "reason": []}),
        ]
    )

    @dg.asset(io_manager_key="warehouse_io")
    def rows() -> pd.DataFrame:
        return next(frames)

    io = WarehouseIOManager(database=str(tmp_path / "w.duckdb"), schema="vidrec")
    for expected in (1, 2, 0):
        result = dg.materialize([rows], resources={"warehouse_io": io})
        assert result.success
        with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as connection:
            (count,) = connection.execute("select count(*) from vidrec.rows").fetchone()
        assert count == expected
