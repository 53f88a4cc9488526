"""DuckDB over Parquet on object storage, through fsspec: the same SQL reads a local folder,
`s3://`, `gs://` or `az://` (with s3fs / gcsfs / adlfs installed) once the URL's filesystem
is registered on the connection."""

from __future__ import annotations

from typing import Any

import duckdb
import fsspec
import pandas as pd
from fsspec.utils import get_protocol


def connect_for(
    url: str, con: duckdb.DuckDBPyConnection | None = None, **storage_options: Any
) -> duckdb.DuckDBPyConnection:
    """A connection (``con`` or a new in-memory one) that can read ``url``'s scheme.

    ``storage_options`` go to the fsspec filesystem (credentials, endpoint_url, anon, ...);
    pass secrets from the environment, never from code.
    """
    con = con if con is not None else duckdb.connect()
    protocol = get_protocol(url)
    if protocol != "file":  # DuckDB reads local paths itself
        fs = fsspec.filesystem(protocol, **storage_options)
        names = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        if not names & set(con.list_filesystems()):  # registering twice is an error
            con.register_filesystem(fs)
    return con


def read_parquet(
    url: str, sql: str = "SELECT * FROM data", hive_partitioning: bool = False, **storage_options: Any
) -> pd.DataFrame:
    """Run ``sql`` over the Parquet file(s) at ``url`` (globs allowed), exposed as view ``data``.

    A URL that matches nothing is an error naming it, not an empty frame.
    """
    path = url.removeprefix("file://")
    with connect_for(url, **storage_options) as con:
        try:
            relation = con.read_parquet(path, hive_partitioning=hive_partitioning)
        except duckdb.IOException as error:
            raise FileNotFoundError(f"no Parquet data at {url}: {error}") from error
        relation.create_view("data")
        return con.execute(sql).df()
