"""The warehouse I/O manager: dagster-duckdb-pandas's, except that an empty frame still becomes a table."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler


class _EmptyFramesTooTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: dg.OutputContext, table_slice, obj: pd.DataFrame, connection) -> None:
        if not obj.empty:
            super().handle_output(context, table_slice, obj, connection)
            return
        # The stock handler skips empty frames ("an empty table will not be created"), so the first run over
        # a catalog without video files (video_probe has no rows) left no table for downstream assets to
        # load. The I/O manager has already emptied an existing table; otherwise create one with the frame's
        # columns. Schema and table come from the asset key, not from data.
        connection.execute(f"create table if not exists {table_slice.schema}.{table_slice.table} as select * from obj")
        context.add_output_metadata({"row_count": 0})


class WarehouseIOManager(DuckDBPandasIOManager):
    """``DuckDBPandasIOManager`` whose empty outputs are stored as empty tables (with their columns)."""

    @staticmethod
    def type_handlers() -> Sequence:
        return [_EmptyFramesTooTypeHandler()]
