"""Offline metrics computed in DuckDB from a ``scores`` table (one row per impression and model).

The SQL lives in ``sql/`` and takes bound parameters; nothing is formatted into it.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pandas as pd

SCORE_COLUMNS = ("model", "event_id", "session_id", "user_key", "video_id", "position",
                 "clicked", "watch_s", "converted", "p_click", "score")


def _sql(name: str) -> str:
    return resources.files("vidrec.evaluation").joinpath("sql", f"{name}.sql").read_text()


def load_scores(con: duckdb.DuckDBPyConnection, scores: pd.DataFrame, table: str = "scores") -> None:
    """Replace the scores table with ``scores`` (columns SCORE_COLUMNS)."""
    missing = set(SCORE_COLUMNS) - set(scores.columns)
    if missing:
        raise ValueError(f"scores frame lacks columns {sorted(missing)}")
    frame = scores[list(SCORE_COLUMNS)]
    con.register("scores_frame", frame)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM scores_frame")  # table name is ours, not data
    finally:
        con.unregister("scores_frame")


def evaluate_models(con: duckdb.DuckDBPyConnection, k: int = 10) -> pd.DataFrame:
    """One row per model in the scores table: click AUC, NDCG@K, CTR/watch/conversion of the top K."""
    models = [row[0] for row in con.execute("SELECT DISTINCT model FROM scores ORDER BY model").fetchall()]
    rows = []
    for model in models:
        auc = con.execute(_sql("click_auc"), {"model": model}).fetchone()[0]
        ndcg, sessions, ctr, watch, conversion = con.execute(_sql("top_k"), {"model": model, "k": k}).fetchone()
        impressions = con.execute("SELECT count(*) FROM scores WHERE model = $model", {"model": model}).fetchone()[0]
        rows.append({
            "model": model, "impressions": int(impressions), "sessions": int(sessions),
            "click_auc": auc, f"ndcg_at_{k}": ndcg, f"ctr_at_{k}": ctr,
            f"watch_s_at_{k}": watch, f"conversion_at_{k}": conversion,
        })
    return pd.DataFrame(rows)
