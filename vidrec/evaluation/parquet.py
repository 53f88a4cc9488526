"""Out-of-core evaluation: the suite's tables as DuckDB views over Parquet, with a memory limit and a spill
directory, so a hold-out log larger than RAM is evaluated by the same SQL as an in-memory one."""

from __future__ import annotations

from pathlib import Path

import duckdb

from vidrec.evaluation.tables import TABLES


def _source(directory: Path, name: str) -> str:
    """The Parquet glob for table ``name``: one file ``name.parquet`` or a folder ``name/`` of parts."""
    single, parts = directory / f"{name}.parquet", directory / name
    if single.is_file():
        return str(single)
    if parts.is_dir() and any(parts.glob("*.parquet")):
        return str(parts / "*.parquet")
    raise FileNotFoundError(f"no Parquet for evaluation table {name!r} in {directory} ({single} or {parts}/*.parquet)")


def attach_parquet(con: duckdb.DuckDBPyConnection, directory: Path | str, optional: tuple[str, ...] = ()) -> None:
    """Create views impressions, scores, top_k and catalogue over ``directory``'s Parquet files.

    The views select the declared columns (tables.TABLES) in order, so a file that lacks one fails here with
    the table's name. Tables named in ``optional`` (top_k, catalogue) may be absent: their view is then not
    created and the suite skips the metrics that need them.
    """
    directory = Path(directory)
    for name, columns in TABLES.items():
        try:
            source = _source(directory, name)
        except FileNotFoundError:
            if name in optional:
                continue
            raise
        present = {row[0] for row in con.execute("SELECT name FROM parquet_schema(?)", [source]).fetchall()}
        missing = set(columns) - present
        if missing:
            raise ValueError(f"the {name} Parquet ({source}) lacks columns {sorted(missing)}")
        # The path is bound into the view text because DuckDB views take no parameters; it comes from the
        # caller's directory, and single quotes are escaped so it cannot end the string literal.
        quoted = source.replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT {', '.join(columns)} FROM read_parquet('{quoted}')")


def limit_memory(
    con: duckdb.DuckDBPyConnection, memory_limit: str, temp_directory: Path | str, threads: int | None = None
) -> None:
    """Bound DuckDB's buffer memory and let it spill sorts, joins and temp tables to ``temp_directory``."""
    Path(temp_directory).mkdir(parents=True, exist_ok=True)
    con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET temp_directory = ?", [str(temp_directory)])
    if threads is not None:
        con.execute("SET threads = ?", [threads])
