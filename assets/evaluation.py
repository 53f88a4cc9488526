"""Evaluation and promotion: hold-out metrics in DuckDB, the blocking gate, the model store."""


from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.model_store import champion_directory, promote, save_to_store
from assets.reporting import table_md
from assets.resources import TRANSIENT_RETRY, WAREHOUSE_POOL, GatePolicy, Pseudonymiser, RawData, VidrecStorage
from assets.training import accepted
from models.config import RankerConfig
from models.holdout import HoldoutTables, holdout_tables, world_truth
from models.serialization import TrainedModel
from models.steps import ranker_inputs
from vidrec.behaviour import latest_histories
from vidrec.evaluation.availability import Availability, drop_unsupported, drop_unsupported_reliability
from vidrec.evaluation.metrics import Evaluation, SuiteSettings, evaluate, headline
from vidrec.evaluation.tables import load_table
from vidrec.gate import check_gate, load_policy, results_table
from vidrec.items import build_items
from vidrec.lineage import data_version, dvc_version, git_commit
from vidrec.registry import ProductionPointer
from vidrec.reports import write_metrics_json, write_report

GROUP = "evaluation"
K = 10
SUITE = SuiteSettings(k=K, resamples=100, seed=0)
HEADLINE_LABELS = ("click_auc", "ndcg_at_10", "ctr_at_10", "watch_s_at_10", "conversion_at_10")


def _policy(gate_policy: GatePolicy) -> dict:
    return load_policy(Path(gate_policy.path) if gate_policy.path else None)


def _evaluate_in_warehouse(storage: VidrecStorage, tables: HoldoutTables) -> Evaluation:
    """The suite over the run's tables, which stay in the warehouse (schema `evaluation`) for notebooks.
    A function of its own so that no DuckDB connection is a local of the asset body, where Dagster
    copies the frame's locals when it first builds a record class (a "nanobind: leaked" report at exit)."""
    with storage.warehouse() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS evaluation")
        con.execute("USE evaluation")
        for name in ("impressions", "scores", "top_k", "catalogue"):
            load_table(con, name, getattr(tables, name))
        return evaluate(con, SUITE, catalogue_size=tables.catalogue_size, n_users=tables.n_users)


@dg.asset(group_name=GROUP, kinds={"duckdb"}, io_manager_key="warehouse_io", owners=["team:ml-platform"],
          pool=WAREHOUSE_POOL, retry_policy=TRANSIENT_RETRY)
def offline_evaluation(context: dg.AssetExecutionContext, ranker: TrainedModel, item_embeddings: pd.DataFrame,
                       interactions: pd.DataFrame, video_probe: pd.DataFrame, video_metadata: pd.DataFrame,
                       video_features: pd.DataFrame, text_features: pd.DataFrame, storage: VidrecStorage,
                       raw_data: RawData, pseudonymiser: Pseudonymiser,
                       gate_policy: GatePolicy) -> dg.Output[pd.DataFrame]:
    """Hold-out (last days) metrics of the candidate and the production champion in DuckDB SQL, with 95%
    bootstrap intervals over users: per-head AUC/GAUC/logloss/ECE, NDCG/Precision/Recall/HitRate/MRR@10,
    coverage and novelty, IPS/SNIPS CTR, watch time and conversion, a simulated A/B test on demo worlds,
    and slices. One row per (slice, model, metric). Metrics that need a signal the log lacks (propensity,
    watch_s, converted, position, non-clicked impressions) are left out and listed with the reason; the
    `holdout` rows record which signals the hold-out had."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    events = accepted(interactions)
    champion = champion_directory(storage.paths.registry)
    truth = world_truth(raw_data.directory, events, pseudonymiser.key)
    tables = holdout_tables(ranker, items, item_embeddings, events, champion_dir=champion[1] if champion else None,
                            truth=truth, k=K, seed=SUITE.seed)
    result = _evaluate_in_warehouse(storage, tables)
    latency = pd.DataFrame([{"slice": "all", "model": "candidate", "metric": f"scoring_{q}_ms",
                             "value": tables.latency[f"{q}_ms"], "ci_low": float("nan"), "ci_high": float("nan"),
                             "resamples": 0}
                            for q in ("p50", "p99")])
    # Never report a number computed from NULLs standing in for a signal the source does not have.
    availability = Availability.from_impressions(tables.impressions)
    table, skipped = drop_unsupported(pd.concat([result.table, latency], ignore_index=True), availability)
    table = pd.concat([table, availability.rows()], ignore_index=True)
    reliability = drop_unsupported_reliability(result.reliability, availability)
    gate = check_gate(table, _policy(gate_policy))
    run_dir = storage.paths.reports / context.run_id
    facts = {"run_id": context.run_id, "champion": champion[0] if champion else "none (first promotion)",
             "hold-out impressions": len(tables.impressions), "hold-out sessions": tables.impressions["session_id"].nunique(),
             "oracle (simulated A/B)": "yes" if truth else "no (not a demo world)",
             "bootstrap resamples": SUITE.resamples,
             "scoring latency": f"p50 {tables.latency['p50_ms']:.1f} ms, p99 {tables.latency['p99_ms']:.1f} ms "
                                f"per batch of {tables.latency['batch']}",
             "candidate weights (kept whatever the verdict)": ranker.weights_path,
             "skipped metrics": "; ".join(f"{m} ({why})" for m, why in zip(skipped["metric"], skipped["reason"]))
                                or "none (the log has every signal)"}
    report = write_report(run_dir, table, reliability, results_table(gate), facts, k=K)
    # Where `dvc metrics show` / `dvc metrics diff` read them (dvc.yaml names this path).
    write_metrics_json(storage.paths.reports / "metrics.json", table,
                       {"latency": {"scoring_p50_ms": tables.latency["p50_ms"],
                                    "scoring_p99_ms": tables.latency["p99_ms"]}}, k=K)
    wide = headline(table, K)
    return dg.Output(table, metadata={
        "report": dg.MetadataValue.md(report.markdown_inline),
        "report_path": dg.MetadataValue.path(str(report.path)),
        "headline": table_md(wide[["model", *[c for c in HEADLINE_LABELS if c in wide]]].round(4)),
        "gate_preview": table_md(pd.DataFrame(results_table(gate))[["name", "value", "threshold", "verdict"]]),
        "champion": champion[0] if champion else "none",
        "holdout_impressions": len(tables.impressions),
        "metric_rows": len(table),
        "missing_signals": dg.MetadataValue.json(availability.missing()),
        "skipped_metrics": table_md(skipped),
        "scoring_p99_ms": round(tables.latency["p99_ms"], 2),
        "timings_s": dg.MetadataValue.json({k: round(v, 3) for k, v in result.timings_s.items()}),
    })


@dg.asset_check(asset=offline_evaluation, blocking=True)
def promotion_gate(offline_evaluation: pd.DataFrame, gate_policy: GatePolicy) -> dg.AssetCheckResult:
    """The candidate passes every rule of the versioned gate policy (vidrec/policies/gate.yaml):
    absolute floors, a cold-start slice floor, a latency budget and non-inferiority to the champion."""
    policy = _policy(gate_policy)
    results = check_gate(offline_evaluation, policy)
    table = pd.DataFrame(results_table(results))[["name", "metric", "slice", "value", "ci_low", "ci_high",
                                                  "threshold", "verdict", "detail"]]
    return dg.AssetCheckResult(
        passed=all(r.passed for r in results),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"policy_version": policy.get("version"), "rules": table_md(table.round(4)),
                  "failed_rules": [r.name for r in results if not r.passed],
                  "skipped_rules": [f"{r.name} ({r.verdict})" for r in results if r.verdict.startswith("skipped")]},
    )


# deps: the blocking drift checks on drift_report (assets/drift.py) stop promotion when data moved too far.
@dg.asset(group_name=GROUP, kinds={"bentoml"}, owners=["team:ml-platform"], deps=["drift_report"],
          retry_policy=TRANSIENT_RETRY,
          freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)))
def promoted_model(context: dg.AssetExecutionContext, offline_evaluation: pd.DataFrame,
                   multimodal_encoder: TrainedModel, ranker: TrainedModel, item_embeddings: pd.DataFrame,
                   interactions: pd.DataFrame, video_probe: pd.DataFrame, video_metadata: pd.DataFrame,
                   video_features: pd.DataFrame, text_features: pd.DataFrame, storage: VidrecStorage,
                   raw_data: RawData) -> dg.Output[dict]:
    """The gated candidate saved to the BentoML model store (state_dicts + config, lineage labels) and
    made production by an atomic pointer move; the previous champion stays in the store for rollback."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    events = accepted(interactions)
    inputs = ranker_inputs(items, item_embeddings, events, RankerConfig(**ranker.config))
    histories = latest_histories(events[events["clicked"]], length=ranker.config["history_length"])
    wide = headline(offline_evaluation, K)
    candidate = wide[wide["model"] == "candidate"].iloc[0]
    metrics = {m: round(float(candidate[m]), 4) for m in HEADLINE_LABELS if m in candidate and pd.notna(candidate[m])}
    pointer = ProductionPointer(storage.paths.registry)
    labels = {"git_commit": git_commit(), "data_version": data_version(raw_data.directory),
              "dvc_data_version": dvc_version(raw_data.directory) or "untracked", "run_id": context.run_id,
              "previous_production": pointer.tag or "none", **{k: str(v) for k, v in metrics.items()}}
    evaluation = [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
                  for row in wide.to_dict("records")]
    promotion = promote(lambda: save_to_store(multimodal_encoder, ranker, items, inputs.embeddings, inputs.buckets,
                                              histories, evaluation, labels, {"metrics": metrics},
                                              user_buckets=inputs.user_buckets), pointer)
    return dg.Output({"tag": promotion.tag, "previous": promotion.previous, **metrics},
                     metadata={"tag": promotion.tag, "labels": dg.MetadataValue.json(labels),
                               "previous_production": str(promotion.previous),
                               "rollback": "python -m vidrec.registry rollback"})
