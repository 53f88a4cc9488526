"""The offline metric suite, computed in DuckDB from the evaluation tables (see ``tables.py``).

Every metric comes out of SQL files in ``sql/`` that take bound parameters; the only Python
arithmetic here is bookkeeping. Replicate 0 of ``user_weights`` is the point estimate and
replicates 1..R the bootstrap, so one query yields both.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from vidrec.evaluation.availability import SHARE_MODEL
from vidrec.evaluation.tables import bootstrap_weights, load_weights, replace_table, sql

log = logging.getLogger(__name__)

RESULT_COLUMNS = ("slice", "model", "metric", "value", "ci_low", "ci_high", "resamples")
# What the metric queries read of a scored impression besides the packed key gu (sql/slices.sql selects
# them too); each name is in only one of scores and impressions.
EVAL_ROW_COLUMNS = "session_id, video_id, clicked, converted, p_click, p_conversion, score"
# eval_rows.gu packs the (slice, model) number g (table eval_keys) and the user number u
# (tables.bootstrap_weights) into one BIGINT, g * 2^32 + u: prediction.sql partitions its per-user windows
# on it (times 2 plus the head), and one integer key sorts twice as fast as (g, head, user_key) at 10M rows.
# The joins are lossless: replicate 0 of user_weights holds every user of impressions, and every (slice,
# model) is in eval_keys. Without slices, g is the model's position in the bound list $models instead of a
# join with eval_keys (0.2 s less at 10M rows).
PACKED_KEY = "k.g * 4294967296 + w.u AS gu"
PACKED_KEY_ALL = "(list_position($models, s.model) - 1) * 4294967296 + w.u AS gu"
RELIABILITY_COLUMNS = ("model", "head", "bin", "n", "mean_pred", "observed")
# Headline names (kept stable for dashboards and the serving /model endpoint) -> the metric they show.
HEADLINE_ALIASES = {
    "ctr_at_{k}": "ctr_at_{k}_snips",
    "watch_s_at_{k}": "watch_s_per_impression_at_{k}_snips",
    "conversion_at_{k}": "conversion_at_{k}_snips",
}


@dataclass(frozen=True)
class SuiteSettings:
    """Knobs of the suite; ``max_weight`` clips importance weights (see sql/off_policy.sql).

    ``reliability`` computes the reliability-diagram table (``Evaluation.reliability``; empty when off)
    and ``logging_policy`` the on-policy reference rows of the off-policy metrics (model
    ``logging_policy``). Reports and the gate want both; a caller that only needs the model metrics
    (a quality sweep, the speed benchmark's like-for-like run) turns them off.
    """

    k: int = 10
    resamples: int = 100
    seed: int = 0
    bins: int = 10
    eps: float = 1e-15
    max_weight: float = 100.0
    slices: bool = True
    reliability: bool = True
    logging_policy: bool = True


@dataclass
class Evaluation:
    """``table``: one row per (slice, model, metric) with value and 95% bootstrap interval;
    comparison rows have model ``<candidate>_vs_<baseline>`` and hold relative differences."""

    table: pd.DataFrame
    reliability: pd.DataFrame
    timings_s: dict[str, float] = field(default_factory=dict)


def _run(con: duckdb.DuckDBPyConnection, name: str, params: dict, timings: dict[str, float]) -> pd.DataFrame:
    start = time.perf_counter()
    frame = con.execute(sql(name), params).df()
    timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
    return frame


def _metric_reps(
    con: duckdb.DuckDBPyConnection,
    settings: SuiteSettings,
    catalogue_size: int,
    n_users: int,
    with_top_k: bool,
    timings: dict[str, float],
) -> list[pd.DataFrame]:
    parts = [
        _run(con, "prediction", {"bins": settings.bins, "eps": settings.eps}, timings),
        _run(con, "ranking", {"k": settings.k}, timings),
    ]
    if with_top_k:
        _match_top_k(con, settings, timings)
        parts.append(_run(con, "off_policy", {"k": settings.k, "logging_policy": settings.logging_policy}, timings))
        parts.append(
            _run(con, "catalogue", {"k": settings.k, "catalogue_size": catalogue_size, "n_users": n_users}, timings)
        )
        parts.append(_run(con, "online_ab", {"k": settings.k}, timings))
    return parts


def _match_top_k(con: duckdb.DuckDBPyConnection, settings: SuiteSettings, timings: dict[str, float]) -> None:
    """Temp tables logged_sessions and top_k_match: top_k matched to the logged impressions once, for both
    off_policy.sql and catalogue.sql (step ``top_k_match`` in the timings)."""
    start = time.perf_counter()
    con.execute("CREATE OR REPLACE TEMP TABLE logged_sessions AS " + sql("logged_sessions"))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE top_k_match AS " + sql("top_k_match"),
        {"k": settings.k, "max_weight": settings.max_weight},
    )
    timings["top_k_match"] = time.perf_counter() - start


def evaluate(
    con: duckdb.DuckDBPyConnection,
    settings: SuiteSettings,
    catalogue_size: int = 1,
    n_users: int = 0,
    candidate: str = "candidate",
    baselines: tuple[str, ...] = ("champion",),
) -> Evaluation:
    """Run the suite over the loaded tables (impressions, scores, and optionally top_k, catalogue).

    ``catalogue_size`` and ``n_users`` (training users) feed coverage and novelty. Comparisons are
    made against each baseline model that has scores.
    """
    # Row order is never relied on (every result is ordered explicitly), and dropping it lets DuckDB's
    # aggregates and table writes run without the order-preserving merge; restored afterwards because
    # the connection is the caller's.
    previous = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = false")
    try:
        return _evaluate(con, settings, catalogue_size, n_users, candidate, baselines)
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if previous else 'false'}")


def _evaluate(
    con: duckdb.DuckDBPyConnection,
    settings: SuiteSettings,
    catalogue_size: int,
    n_users: int,
    candidate: str,
    baselines: tuple[str, ...],
) -> Evaluation:
    timings: dict[str, float] = {}
    # fetchnumpy: the distinct keys go straight to NumPy (bootstrap_weights) without a pandas frame.
    users = con.execute("SELECT DISTINCT user_key FROM impressions").fetchnumpy()["user_key"]
    if len(users) == 0:
        raise ValueError("the impressions table is empty; the hold-out window has no events to evaluate")
    if len(users) >= 2**32:  # the packed key (PACKED_KEY) gives the user number 32 bits
        raise ValueError(f"the impressions table has {len(users)} users; the suite supports fewer than 2^32")
    models = [row[0] for row in con.execute("SELECT DISTINCT model FROM scores ORDER BY model").fetchall()]
    if not models:
        raise ValueError("the scores table is empty; no model has scored the hold-out impressions")
    if None in models:
        raise ValueError("the scores table has rows without a model name")
    # Views count too: out-of-core evaluation reads top_k as a view over Parquet (evaluation/parquet.py).
    tables = {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
    }
    with_top_k = "top_k" in tables and con.execute("SELECT count(*) FROM top_k").fetchall()[0][0] > 0
    parts: list[pd.DataFrame] = []
    if settings.slices:
        # Slices get point estimates only: their bootstrap would multiply the cost by the slice count.
        load_weights(con, bootstrap_weights(users, 0, settings.seed))
        _slice_rows(con)
        parts += _metric_reps(con, settings, catalogue_size, n_users, False, timings)
    start = time.perf_counter()
    load_weights(con, bootstrap_weights(users, settings.resamples, settings.seed))
    timings["weights"] = time.perf_counter() - start
    # Materialised once: every metric query reads it (a view would repeat the join in each). Only the
    # columns the queries read: carrying all of both tables made this step 40% slower at 10M rows.
    start = time.perf_counter()
    keys = pd.DataFrame({"slice": "all", "model": models, "g": range(len(models))})
    replace_table(con, "eval_keys", keys, temp=True)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE eval_rows AS SELECT {PACKED_KEY_ALL}, {EVAL_ROW_COLUMNS} "
        "FROM scores s JOIN impressions i USING (event_id) "
        "JOIN user_weights w ON w.user_key = i.user_key AND w.rep = 0",
        {"models": models},
    )
    timings["rows"] = time.perf_counter() - start
    parts += _metric_reps(con, settings, catalogue_size, n_users, with_top_k, timings)
    reps = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    replace_table(con, "metric_reps", reps, temp=True)
    frames = [_run(con, "intervals", {}, timings)]
    models = set(reps["model"])
    for baseline in baselines:
        if baseline in models and candidate in models:
            frames.append(_run(con, "paired", {"candidate": candidate, "baseline": baseline}, timings))
    table = pd.concat(frames, ignore_index=True)[list(RESULT_COLUMNS)]
    if settings.reliability:
        reliability = _run(con, "reliability", {"bins": settings.bins}, timings)
    else:
        reliability = pd.DataFrame(columns=list(RELIABILITY_COLUMNS))
    log.info(
        "evaluation: %d metric rows over %d users, %d resamples in %.1f s",
        len(table),
        len(users),
        settings.resamples,
        sum(timings.values()),
    )
    return Evaluation(table=table, reliability=reliability, timings_s=timings)


def _slice_rows(con: duckdb.DuckDBPyConnection) -> None:
    """eval_rows and eval_keys for the slices (sql/slices.sql), with the packed key ``gu``."""
    con.execute("DROP VIEW IF EXISTS eval_rows")
    con.execute("CREATE OR REPLACE TEMP TABLE eval_slice_rows AS " + sql("slices").rstrip().rstrip(";"))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE eval_keys AS SELECT slice, model, "
        "row_number() OVER (ORDER BY slice, model) - 1 AS g "
        "FROM (SELECT DISTINCT slice, model FROM eval_slice_rows)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE eval_rows AS SELECT {PACKED_KEY}, {EVAL_ROW_COLUMNS} FROM eval_slice_rows e "
        "JOIN eval_keys k USING (slice, model) JOIN user_weights w ON w.user_key = e.user_key AND w.rep = 0"
    )
    con.execute("DROP TABLE eval_slice_rows")


def headline(table: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """One row per model (slice ``all``; comparison rows and the hold-out's signal shares left out),
    one column per metric, plus the headline aliases ``ctr_at_K``, ``watch_s_at_K``,
    ``conversion_at_K`` (the SNIPS estimates)."""
    rows = table[(table["slice"] == "all") & ~table["model"].str.contains("_vs_") & (table["model"] != SHARE_MODEL)]
    wide = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="first", dropna=False)
    for alias, source in HEADLINE_ALIASES.items():
        if source.format(k=k) in wide:
            wide[alias.format(k=k)] = wide[source.format(k=k)]
    wide.columns.name = None
    return wide.reset_index()
