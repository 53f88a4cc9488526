"""One evaluation run of a candidate, without Dagster: hold-out tables from the served paths, the DuckDB
metric suite, signal availability, the gate's verdict, the Markdown report and the DVC metrics file.

``offline_evaluation`` (assets/evaluation.py) is this function plus the UI metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from models.offline.gmv import ab_gmv_rows, gmv_rows, orders_share, read_orders
from models.offline.holdout import INCUMBENT, HoldoutTables, holdout_tables
from models.offline.top_k import world_truth
from models.serving.path import PathSettings
from models.serving.weights import TrainedModel
from vidrec.evaluation.availability import Availability, drop_unsupported, drop_unsupported_reliability
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.tables import load_table
from vidrec.gate import RuleResult, check_gate, results_table
from vidrec.reports import Report, write_metrics_json, write_report

K = 10
SUITE = SuiteSettings(k=K, resamples=100, seed=0)


@dataclass
class CandidateEvaluation:
    table: pd.DataFrame  # one row per (slice, model, metric), plus the hold-out's signal rows
    skipped: pd.DataFrame  # metrics left out because the log lacks a signal they need, with the reason
    gate: list[RuleResult]
    report: Report
    tables: HoldoutTables
    availability: Availability
    timings_s: dict[str, float]


def _latency_rows(tables: HoldoutTables) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "slice": "all",
                "model": "candidate",
                "metric": f"scoring_{q}_ms",
                "value": tables.latency[f"{q}_ms"],
                "ci_low": float("nan"),
                "ci_high": float("nan"),
                "resamples": 0,
            }
            for q in ("p50", "p99")
        ]
    )


def evaluate_candidate(
    con: duckdb.DuckDBPyConnection,
    ranker: TrainedModel,
    retrieval: TrainedModel,
    items: pd.DataFrame,
    item_embeddings: pd.DataFrame,
    events: pd.DataFrame,
    champion: tuple[str, Path] | None,
    raw_dir: Path,
    key: str,
    policy: dict,
    reports: Path,
    run_id: str,
    suite: SuiteSettings = SUITE,
    path: PathSettings = PathSettings(),
) -> CandidateEvaluation:
    """Score the hold-out of the accepted ``events`` with the candidate's and the ``champion``'s (tag, bundle
    directory) served paths, evaluate in ``con`` (the tables stay in its schema ``evaluation`` for
    notebooks), judge with ``policy`` and write the report under ``reports/run_id``."""
    truth = world_truth(raw_dir, events, key)
    tables = holdout_tables(
        ranker,
        retrieval,
        items,
        item_embeddings,
        events,
        champion_dir=champion[1] if champion else None,
        truth=truth,
        k=suite.k,
        seed=suite.seed,
        path_settings=path,
    )
    con.execute("CREATE SCHEMA IF NOT EXISTS evaluation")
    con.execute("USE evaluation")
    for name in ("impressions", "scores", "top_k", "catalogue"):
        load_table(con, name, getattr(tables, name))
    result = evaluate(
        con, suite, catalogue_size=tables.catalogue_size, n_users=tables.n_users, baselines=("champion", INCUMBENT)
    )
    # GMV@k against the data's orders (the gate's GMV rule); without orders the share row says so.
    orders = read_orders(raw_dir)
    has_orders = orders_share(tables.impressions, orders)
    gmv = (
        gmv_rows(tables.impressions, tables.top_k, orders, k=suite.k, resamples=suite.resamples, seed=suite.seed)
        if has_orders and tables.impressions["propensity"].notna().any()
        else None
    )
    ab_gmv = ab_gmv_rows(tables.top_k, items, k=suite.k, resamples=suite.resamples, seed=suite.seed)
    # Never report a number computed from NULLs standing in for a signal the source does not have.
    measured = Availability.from_impressions(tables.impressions)
    availability = Availability({**measured.shares, "orders": has_orders})
    parts = [result.table, _latency_rows(tables), tables.served_rows, gmv, ab_gmv]
    table, skipped = drop_unsupported(pd.concat(parts, ignore_index=True), availability)
    table = pd.concat([table, availability.rows()], ignore_index=True)
    reliability = drop_unsupported_reliability(result.reliability, availability)
    gate = check_gate(table, policy)
    facts = {
        "run_id": run_id,
        "champion": champion[0] if champion else "none (first promotion)",
        "hold-out impressions": len(tables.impressions),
        "hold-out sessions": tables.impressions["session_id"].nunique(),
        "oracle (simulated A/B)": "yes" if truth else "no (not a demo world)",
        "bootstrap resamples": suite.resamples,
        "served path": f"retrieve {tables.path['n_candidates']} (+ prior share {tables.path['prior_share']}) "
        "→ rank → blend; `candidate_catalogue` ranks the whole catalogue",
        "scoring latency": f"p50 {tables.latency['p50_ms']:.1f} ms, p99 {tables.latency['p99_ms']:.1f} ms "
        f"per batch of {tables.latency['batch']}",
        "candidate weights (kept whatever the verdict)": ranker.weights_path,
        "skipped metrics": "; ".join(f"{m} ({why})" for m, why in zip(skipped["metric"], skipped["reason"]))
        or "none (the log has every signal)",
    }
    report = write_report(
        reports / run_id, table, reliability, results_table(gate), facts, k=suite.k, lambda_curve=tables.lambda_curve
    )
    # Where `dvc metrics show` / `dvc metrics diff` read them (dvc.yaml names this path).
    write_metrics_json(
        reports / "metrics.json",
        table,
        {"latency": {"scoring_p50_ms": tables.latency["p50_ms"], "scoring_p99_ms": tables.latency["p99_ms"]}},
        k=suite.k,
    )
    return CandidateEvaluation(table, skipped, gate, report, tables, availability, result.timings_s)
