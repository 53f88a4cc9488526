"""The warehouse I/O manager: dagster-duckdb-pandas's, except that an empty frame still becomes a table."""

from collections.abc import Sequence

import dagster as dg
import pandas as pd
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

# Dagster compiles each record class's constructor on its first use and keeps a copy of the calling
# frame's globals and locals, past interpreter shutdown. The stock handler first builds these
# records with the open DuckDB connection among its locals, so every process that wrote the
# warehouse ended with DuckDB's "nanobind: leaked ..." report. Built once here, from a frame that
# holds no DuckDB object (tests/test_duckdb_exit.py).
dg.MetadataValue.table_schema(dg.TableSchema(columns=[dg.TableColumn(name="video_id", type="object")]))


class _EmptyFramesTooTypeHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context: dg.OutputContext, table_slice, obj: pd.DataFrame, connection) -> None:
        _replace_if_columns_changed(context, table_slice, obj, connection)
        if not obj.empty:
            super().handle_output(context, table_slice, obj, connection)
            return
        # The stock handler skips empty frames ("an empty table will not be created"), so the first run over
        # a catalogue without video files (video_probe has no rows) left no table for downstream assets to
        # load. The I/O manager has already emptied an existing table; otherwise create one with the frame's
        # columns. Schema and table come from the asset key, not from data.
        connection.execute(f"create table if not exists {table_slice.schema}.{table_slice.table} as select * from obj")
        context.add_output_metadata({"row_count": 0})


def _replace_if_columns_changed(context: dg.OutputContext, table_slice, obj: pd.DataFrame, connection) -> None:
    """Drop a table whose columns differ from the frame's, so a release that adds a column (video_probe's
    rotation, video_features' notes) does not fail on a warehouse written by the previous one: the stock
    handler keeps the old table and inserts by position. The I/O manager has already deleted the slice
    being written; a table that still holds rows (other partitions) is left alone and the insert fails."""
    found = connection.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [table_slice.schema, table_slice.table],
    ).fetchall()
    # A column that was all NULL when the table was created has DuckDB's type "NULL", and no later value can
    # be cast into it (interactions' `reason` before the first quarantined row): recreate it like a change.
    untyped = any(kind == '"NULL"' for _, kind in found)
    if not found or ([c for c, _ in found] == [str(c) for c in obj.columns] and not untyped):
        return
    name = f"{table_slice.schema}.{table_slice.table}"  # from the asset key, not from data
    (rows,) = connection.execute(f"select count(*) from {name}").fetchone()
    if rows == 0:
        context.log.info(f"{name}: columns or an untyped (all-NULL) column changed, table recreated")
        connection.execute(f"drop table {name}")


class WarehouseIOManager(DuckDBPandasIOManager):
    """``DuckDBPandasIOManager`` whose empty outputs are stored as empty tables (with their columns)."""

    @staticmethod
    def type_handlers() -> Sequence:
        return [_EmptyFramesTooTypeHandler()]
