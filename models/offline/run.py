"""One evaluation run of a candidate, without Dagster: hold-out tables from the served paths, the DuckDB
metric suite, signal availability, the gate's verdict, the Markdown report and the DVC metrics file.

``offline_evaluation`` (assets/evaluation.py) is this function plus the UI metadata.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from models.offline.batches import Chunking, DuckDBSink
from models.offline.gmv import read_orders, warehouse_gmv_rows
from models.offline.holdout import INCUMBENT, HoldoutTables, holdout_tables
from models.offline.top_k import world_truth
from models.serving.path import PathSettings
from models.serving.weights import TrainedModel
from vidrec.evaluation.availability import Availability, drop_unsupported, drop_unsupported_reliability
from vidrec.evaluation.metrics import SuiteSettings, evaluate
from vidrec.evaluation.tables import TABLES
from vidrec.gate import RuleResult, check_gate, results_table
from vidrec.reports import Report, write_metrics_json, write_report

K = 10
SUITE = SuiteSettings(k=K, resamples=100, seed=0)
# DuckDB's buffer memory while the hold-out is loaded and evaluated (its default is 80% of the machine's RAM,
# so the suite's bootstrap joins grew with the log until then); beyond it sorts, joins and tables spill.
MEMORY_LIMIT = "1GB"


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


@contextmanager
def bounded(con: duckdb.DuckDBPyConnection, memory_limit: str) -> Iterator[None]:
    """``con`` under ``memory_limit``; the caller's limit comes back after. What does not fit spills to the
    connection's own ``temp_directory`` (DuckDB's default: ``<database>.tmp`` beside a warehouse file,
    ``.tmp`` in the working directory for an in-memory database). It is not switched to a folder of ours:
    DuckDB refuses to switch it back once used, and an in-memory database's spilled tables live there."""
    previous = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    con.execute("SET memory_limit = ?", [memory_limit])
    try:
        yield
    finally:
        con.execute("SET memory_limit = ?", [_midpoint(previous)])


def _midpoint(shown: str) -> str:
    """DuckDB shows a memory limit cut to a tenth of its unit ('2.7 GiB' for 3 GB); setting that text back
    would lower the limit a step each time, so the middle of the shown tenth is set instead ('2.75 GiB')."""
    match = re.fullmatch(r"(\d+)\.(\d) (\w+)", shown.strip())
    return f"{match[1]}.{match[2]}5 {match[3]}" if match else shown


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
    chunking: Chunking = Chunking(),
    memory_limit: str = MEMORY_LIMIT,
) -> CandidateEvaluation:
    """Score the hold-out of the accepted ``events`` with the candidate's and the ``champion``'s (tag, bundle
    directory) served paths, evaluate in ``con`` (the tables stay in its schema ``evaluation`` for
    notebooks), judge with ``policy`` and write the report under ``reports/run_id``.

    The hold-out is scored in batches (``chunking``) appended straight to the DuckDB tables, and DuckDB works
    under ``memory_limit``, so memory follows a batch and the limit, not the size of the log."""
    truth = world_truth(raw_dir, events, key)
    con.execute("CREATE SCHEMA IF NOT EXISTS evaluation")
    con.execute("USE evaluation")
    for name in TABLES:  # a previous run's rows must not survive into this one's
        con.execute(f"DROP TABLE IF EXISTS {name}")
    with bounded(con, memory_limit):
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
            chunking=chunking,
            sink=DuckDBSink(con),
        )
        result = evaluate(
            con, suite, catalogue_size=tables.catalogue_size, n_users=tables.n_users, baselines=("champion", INCUMBENT)
        )
        # GMV@k against the data's orders (the gate's GMV rule); without orders the share row says so.
        has_orders, gmv, ab_gmv = warehouse_gmv_rows(
            con, items, read_orders(raw_dir), k=suite.k, resamples=suite.resamples, seed=suite.seed
        )
    # Never report a number computed from NULLs standing in for a signal the source does not have.
    availability = Availability({**tables.signal_shares, "orders": has_orders})
    parts = [result.table, _latency_rows(tables), tables.served_rows, gmv, ab_gmv]
    table, skipped = drop_unsupported(pd.concat(parts, ignore_index=True), availability)
    table = pd.concat([table, availability.rows()], ignore_index=True)
    reliability = drop_unsupported_reliability(result.reliability, availability)
    gate = check_gate(table, policy)
    facts = {
        "run_id": run_id,
        "champion": champion[0] if champion else "none (first promotion)",
        "hold-out impressions": tables.impression_count,
        "hold-out sessions": tables.logged_sessions,
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
