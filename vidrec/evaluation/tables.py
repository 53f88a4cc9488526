"""The evaluation tables in DuckDB and the typed loading of pandas frames into them.

Columns are checked before loading so a frame that lacks one fails with the table's name,
not as a confusing SQL error later.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import numpy as np
import pandas as pd

# One row per logged hold-out impression, with the slice attributes of its item and user.
IMPRESSION_COLUMNS = (
    "event_id",
    "session_id",
    "user_key",
    "video_id",
    "position",
    "propensity",
    "clicked",
    "watch_s",
    "converted",
    "cold_item",
    "new_user",
    "category",
    "is_product",
    "is_live_host",
)
# One row per (model, logged impression): the model's per-head predictions and blended ranking score.
SCORE_COLUMNS = ("model", "event_id", "p_click", "p_watch_s", "p_conversion", "score")
# One row per (model, hold-out session, rank <= K): what the model would show from the whole catalogue;
# oracle_* are the world's expected outcomes at that rank (NULL when the data is not a demo world).
TOP_K_COLUMNS = (
    "model",
    "session_id",
    "user_key",
    "video_id",
    "rank",
    "oracle_click",
    "oracle_watch_s",
    "oracle_conversion",
)
# One row per catalogue item: how many distinct users clicked it in the training window (novelty).
CATALOGUE_COLUMNS = ("video_id", "engaged_users")

TABLES = {
    "impressions": IMPRESSION_COLUMNS,
    "scores": SCORE_COLUMNS,
    "top_k": TOP_K_COLUMNS,
    "catalogue": CATALOGUE_COLUMNS,
}


def sql(name: str) -> str:
    """The text of ``vidrec/evaluation/sql/<name>.sql``."""
    return resources.files("vidrec.evaluation").joinpath("sql", f"{name}.sql").read_text()


def load_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> None:
    """Replace table ``name`` (one of TABLES) with the frame's columns in the declared order."""
    if name not in TABLES:
        raise ValueError(f"unknown evaluation table {name!r}; expected one of {sorted(TABLES)}")
    missing = set(TABLES[name]) - set(frame.columns)
    if missing:
        raise ValueError(f"the {name} frame lacks columns {sorted(missing)}")
    replace_table(con, name, frame[list(TABLES[name])])


def replace_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, temp: bool = False) -> None:
    """Replace table ``name`` with the frame's rows. ``name`` is always one of the suite's own table names,
    never user input; no data is formatted into SQL."""
    con.register("_incoming", frame)
    try:
        con.execute(f"CREATE OR REPLACE {'TEMP ' if temp else ''}TABLE {name} AS SELECT * FROM _incoming")
    finally:
        con.unregister("_incoming")


NUMERIC = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE"}


def append_table(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, replace: bool = False) -> None:
    """Add the frame's rows to table ``name`` (one of TABLES; created, or replaced with ``replace``), batch
    by batch. A column that was all NULL in the batches so far has DuckDB's NULL type, which takes no
    values: it is retyped to the incoming batch's type first (NULLs cast to anything)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = current_schema()", [name]
    ).fetchall()[0][0]
    if replace or not exists:
        load_table(con, name, frame)
        return
    missing = set(TABLES[name]) - set(frame.columns)
    if missing:
        raise ValueError(f"the {name} frame lacks columns {sorted(missing)}")
    con.register("_incoming", frame[list(TABLES[name])])
    try:
        incoming = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE _incoming)").fetchall())
        current = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {name})").fetchall())
        for column, kind in current.items():
            new = incoming[column]
            if kind == '"NULL"' and new != '"NULL"':
                con.execute(f"ALTER TABLE {name} ALTER COLUMN {column} TYPE {new}")
            elif kind != new and kind in NUMERIC and new in NUMERIC:  # e.g. BIGINT so far, DOUBLE now
                con.execute(f"ALTER TABLE {name} ALTER COLUMN {column} TYPE DOUBLE")
        con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _incoming")
    finally:
        con.unregister("_incoming")


def bootstrap_weights(user_keys: np.ndarray, resamples: int, seed: int) -> pd.DataFrame:
    """Replicate weights per user: rep 0 weighs every user once (the point estimate); reps 1..R are
    Poisson(1) counts, the standard streaming approximation of resampling users with replacement.
    ``u`` numbers the users 0..n-1 (sorted key order) so SQL can pack (model, head, user) into one
    BIGINT window key whatever type ``user_key`` has (see sql/prediction.sql).

    Drawn with NumPy's seeded generator (DuckDB's random() is not reproducible across threads);
    the resampling itself happens in DuckDB by joining this table.
    """
    users = np.sort(np.asarray(user_keys))
    if len(users) > 1 and bool((users[1:] == users[:-1]).any()):
        raise ValueError("bootstrap_weights needs distinct user keys (one weight per user and replicate)")
    counts = np.random.default_rng(seed).poisson(1.0, size=(resamples, len(users)))
    reps = np.concatenate([np.zeros(len(users), dtype=np.int64), np.repeat(np.arange(1, resamples + 1), len(users))])
    weights = np.concatenate([np.ones(len(users)), counts.ravel().astype(float)])
    return pd.DataFrame(
        {
            "rep": reps,
            "user_key": np.tile(users, resamples + 1),
            "u": np.tile(np.arange(len(users), dtype=np.int64), resamples + 1),
            "w": weights,
        }
    )


def load_weights(con: duckdb.DuckDBPyConnection, weights: pd.DataFrame) -> None:
    """Replace ``user_weights(rep, user_key, u, w)``; rep 0 must weigh every user 1 (the point-estimate
    branches of the SQL read the rows directly instead of joining it), and every user it names must be
    in rep 0 (eval_rows takes the user number from there)."""
    missing = [c for c in ("rep", "user_key", "u", "w") if c not in weights.columns]
    if missing:
        raise ValueError(f"user weights lack column(s) {missing}; build them with bootstrap_weights()")
    point = weights[weights["rep"] == 0]
    if len(point) == 0 or not (point["w"] == 1).all():
        raise ValueError("user weights: replicate 0 must weigh every user exactly 1 (the point estimate)")
    numbers = np.sort(point["u"].to_numpy())
    if not np.array_equal(numbers, np.arange(len(point))) or weights["u"].max() >= len(point):
        raise ValueError(
            "user weights: replicate 0 must number its users 0..n-1 and every replicate's users must be among them"
        )
    replace_table(con, "user_weights", weights[["rep", "user_key", "u", "w"]])
