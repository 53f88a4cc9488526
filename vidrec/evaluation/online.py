"""The live A/B experiment's results: per-arm metrics with bootstrap intervals over users, the challenger's
difference from production, and the sample-ratio-mismatch (SRM) check, all in one long table.

The SQL is in ``sql/online_experiment*.sql`` and reuses the offline suite's bootstrap (``intervals.sql``,
``paired.sql``, ``tables.bootstrap_weights``). The table is what the ``online_experiment`` asset stores and
what the online promotion stage (``vidrec.online_stage``) decides from.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd
from scipy import stats

from vidrec.evaluation.tables import bootstrap_weights, load_weights, replace_table, sql
from vidrec.experiment import ARMS, CHALLENGER, PRODUCTION
from vidrec.registry import Challenger

COLUMNS = ("experiment_id", "model", "metric", "value", "ci_low", "ci_high")
ROW_COLUMNS = ("user_key", "arm", "position", "clicked", "watch_s", "converted")
EXPERIMENT = "experiment"  # the model name of the experiment-wide rows (share, SRM)
RELATIVE = f"{CHALLENGER}_vs_{PRODUCTION}"  # (challenger - production) / |production|
DIFFERENCE = f"{CHALLENGER}_minus_{PRODUCTION}"  # challenger - production
WAREHOUSE_SCHEMA = "vidrec"  # where the pipeline's warehouse IO manager writes (assets/definitions.py)


def rate_metrics(k: int) -> tuple[str, ...]:
    """The per-arm rates, all higher-is-better."""
    return (f"ctr_at_{k}", "watch_s_per_impression", "conversion_rate")


@dataclass(frozen=True)
class OnlineSettings:
    k: int = 10
    resamples: int = 200
    seed: int = 0
    # SRM threshold: a sample-ratio test alarms at p < 0.001 in common practice (Fabijan et al., "Diagnosing
    # Sample Ratio Mismatch", KDD 2019), strict because it runs on every read of a running experiment.
    srm_alpha: float = 0.001


def experiment_rows(con: duckdb.DuckDBPyConnection, challenger: Challenger) -> pd.DataFrame:
    """The running experiment's impressions from the connection's ``logged_impressions`` (ROW_COLUMNS), a table
    or view in schema main or WAREHOUSE_SCHEMA."""
    found = con.execute(
        "SELECT table_schema FROM information_schema.tables WHERE table_name = 'logged_impressions'"
    ).fetchall()
    schemas = {r[0] for r in found}
    if not schemas & {"main", WAREHOUSE_SCHEMA}:
        raise RuntimeError(
            "the warehouse has no logged_impressions table or view (the impression log joined to its events); "
            "materialise the impression log first, or end the experiment with "
            "`python -m vidrec.registry rollback-challenger`"
        )
    if "main" not in schemas:  # only in the schema the pipeline's IO manager writes
        con.execute(f"SET search_path = '{WAREHOUSE_SCHEMA}'")  # a constant, not data
    params = {
        "started_at": challenger.started_at,
        "production_tag": challenger.production_tag,
        "challenger_tag": challenger.tag,
    }
    return con.execute(sql("online_experiment_rows"), params).df()


def sample_ratio(users: dict[str, int], share: float) -> tuple[float, float]:
    """Chi-square statistic and p-value of the users per arm against the configured challenger share
    (NaN for both while no user is logged)."""
    observed = [users.get(PRODUCTION, 0), users.get(CHALLENGER, 0)]
    total = sum(observed)
    if total == 0:
        return float("nan"), float("nan")
    result = stats.chisquare(observed, f_exp=[total * (1 - share), total * share])
    return float(result.statistic), float(result.pvalue)


def online_metrics(
    rows: pd.DataFrame, challenger: Challenger, settings: OnlineSettings = OnlineSettings()
) -> pd.DataFrame:
    """The long result table (COLUMNS) of one experiment: per arm ``impressions``, ``users`` and the rates with
    95% intervals; model RELATIVE / DIFFERENCE for the challenger's relative and absolute difference; model
    EXPERIMENT for ``share``, ``srm_chi2``, ``srm_p_value`` and ``srm_alpha``."""
    missing = set(ROW_COLUMNS) - set(rows.columns)
    if missing:
        raise ValueError(f"the logged impressions lack columns {sorted(missing)}")
    unknown = sorted(set(rows["arm"]) - set(ARMS))
    if unknown:
        raise ValueError(f"the logged impressions name unknown arms {unknown}; expected {list(ARMS)}")
    counts = rows.groupby("arm").agg(impressions=("user_key", "size"), users=("user_key", "nunique"))
    users = {arm: int(counts["users"].get(arm, 0)) for arm in ARMS}
    chi2, p_value = sample_ratio(users, challenger.share)
    none = float("nan")  # counts and the experiment's own numbers have no interval
    records = [
        (arm, metric, float(counts[metric].get(arm, 0)), none, none) for arm in ARMS for metric in counts.columns
    ]
    records += [
        (EXPERIMENT, "share", challenger.share, none, none),
        (EXPERIMENT, "srm_chi2", chi2, none, none),
        (EXPERIMENT, "srm_p_value", p_value, none, none),
        (EXPERIMENT, "srm_alpha", settings.srm_alpha, none, none),
    ]
    frames = [pd.DataFrame(records, columns=["model", "metric", "value", "ci_low", "ci_high"])]
    if not rows.empty:
        frames.append(_rates(rows, settings))
    table = pd.concat([f for f in frames if not f.empty], ignore_index=True)
    table.insert(0, "experiment_id", challenger.experiment_id)
    return table[list(COLUMNS)]


def _rates(rows: pd.DataFrame, settings: OnlineSettings) -> pd.DataFrame:
    # A private in-memory database: the bootstrap's working tables never land in the warehouse.
    with duckdb.connect() as con:
        replace_table(con, "experiment_impressions", rows[list(ROW_COLUMNS)])
        users = con.execute("SELECT DISTINCT user_key FROM experiment_impressions").fetchnumpy()["user_key"]
        load_weights(con, bootstrap_weights(users, settings.resamples, settings.seed))
        reps = con.execute(sql("online_experiment"), {"k": settings.k}).df()
        replace_table(con, "metric_reps", reps)
        parts = [con.execute(sql("intervals")).df()]
        arms = set(reps["model"])
        if arms == set(ARMS):  # a difference needs both arms
            pair = {"candidate": CHALLENGER, "baseline": PRODUCTION}
            parts += [con.execute(sql("paired"), pair).df(), con.execute(sql("online_difference"), pair).df()]
    return pd.concat(parts, ignore_index=True)[["model", "metric", "value", "ci_low", "ci_high"]]


def value(table: pd.DataFrame, model: str, metric: str) -> float | None:
    """One cell of the long table (None when absent or NaN)."""
    cell = table[(table["model"] == model) & (table["metric"] == metric)]["value"]
    return None if cell.empty or pd.isna(cell.iloc[0]) else float(cell.iloc[0])


def srm_passed(table: pd.DataFrame) -> bool:
    """No sample-ratio mismatch: p >= alpha, or no user logged yet (nothing to test)."""
    p_value, alpha = value(table, EXPERIMENT, "srm_p_value"), value(table, EXPERIMENT, "srm_alpha")
    if alpha is None:
        raise ValueError("the experiment table has no srm_alpha row; build it with online_metrics()")
    return p_value is None or p_value >= alpha


def per_arm(table: pd.DataFrame) -> pd.DataFrame:
    """One row per arm and difference: impressions, users and each rate as 'value [low, high]'."""
    shown = table[table["model"] != EXPERIMENT]
    cells = {}
    for row in shown.itertuples():
        text = "" if pd.isna(row.value) else f"{row.value:.4g}"
        if pd.notna(row.ci_low) and pd.notna(row.ci_high):
            text += f" [{row.ci_low:.4g}, {row.ci_high:.4g}]"
        cells.setdefault(row.model, {})[row.metric] = text
    order = [m for m in (*ARMS, DIFFERENCE, RELATIVE) if m in cells]
    return pd.DataFrame([{"arm": m, **cells[m]} for m in order]).fillna("")
