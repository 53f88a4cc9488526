"""Export warehouse tables to Parquet or CSV files, so DVC can track what a pipeline stage
produced (``dvc.yaml`` runs this after each ``dagster asset materialize``).

    python -m vidrec.warehouse_export --out .vidrec/exports/media video_probe video_metadata
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import duckdb

from vidrec.config import Paths, resolve_root

SCHEMA = "vidrec"
log = logging.getLogger(__name__)


def export_tables(
    warehouse: Path, tables: list[str], out: Path, fmt: str = "parquet", drop_columns: tuple[str, ...] = ()
) -> list[Path]:
    """Write each table of the ``vidrec`` schema to ``out/<table>.<fmt>``; an unknown table is
    an error naming the tables that exist. ``drop_columns`` leaves out wide columns (e.g.
    embeddings) a CSV cannot hold."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, not {fmt!r}")
    if not warehouse.exists():
        raise FileNotFoundError(f"warehouse {warehouse} does not exist; materialise the assets first")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with duckdb.connect(str(warehouse), read_only=True) as con:
        existing = {
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]
            ).fetchall()
        }
        for table in tables:
            if table not in existing:
                raise ValueError(f"table {SCHEMA}.{table} is not in {warehouse}; it has {sorted(existing)}")
            columns = [
                row[0]
                for row in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                    "ORDER BY ordinal_position",
                    [SCHEMA, table],
                ).fetchall()
                if row[0] not in drop_columns
            ]
            target = out / f"{table}.{fmt}"
            # Identifiers cannot be bound as parameters; they are checked against the catalogue above
            # and quoted, and the target path is a bound string literal via COPY's own quoting.
            select = ", ".join(_quote(c) for c in columns)
            path_literal = str(target).replace("'", "''")
            options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER"
            con.execute(f"COPY (SELECT {select} FROM {SCHEMA}.{_quote(table)}) TO '{path_literal}' ({options})")
            rows = con.execute(f"SELECT count(*) FROM {SCHEMA}.{_quote(table)}").fetchone()[0]
            log.info("exported %s.%s: %d rows -> %s", SCHEMA, table, rows, target)
            written.append(target)
    return written


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tables", nargs="+", help="tables of the vidrec schema")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--drop-columns", default="", help="comma-separated columns to leave out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    drop = tuple(c for c in args.drop_columns.split(",") if c)
    export_tables(Paths(resolve_root()).warehouse, args.tables, args.out, args.format, drop)


if __name__ == "__main__":
    main()
