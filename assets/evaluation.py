"""Evaluation and promotion: hold-out metrics in DuckDB, the blocking gate, the model store."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.model_store import champion_directory, promote, save_to_store
from assets.reporting import table_md
from assets.resources import TRANSIENT_RETRY, GatePolicy, Pseudonymiser, RawData, VidrecStorage, warehouse_asset
from models.fit.candidate import bundle_contents
from models.offline.run import CandidateEvaluation, K, evaluate_candidate
from models.serving.path import PathSettings
from models.serving.weights import TrainedModel
from vidrec.commerce_tables import read_live_sessions
from vidrec.evaluation.metrics import headline
from vidrec.gate import check_gate, load_policy, results_table
from vidrec.ingest import accepted_rows
from vidrec.lineage import data_version, dvc_version, git_commit
from vidrec.online_stage import online_stage
from vidrec.registry import ProductionPointer

GROUP = "evaluation"
HEADLINE_LABELS = ("click_auc", "ndcg_at_10", "catalogue_ndcg_at_10", "ctr_at_10", "watch_s_at_10", "conversion_at_10")


_PATH = PathSettings()


class ServedPathSettings(dg.ConfigurableResource):
    """The final score's commerce weights a promoted bundle serves with and the candidate is evaluated with
    (models.serving.commerce). The defaults are ``PathSettings``'s (the one typed place); ``params.yaml``'s
    ``serving`` section overrides them for ``dvc repro``."""

    gmv_weight: float = _PATH.gmv_weight
    live_boost: float = _PATH.live_boost

    def settings(self) -> PathSettings:
        return PathSettings(gmv_weight=self.gmv_weight, live_boost=self.live_boost)


def _policy(gate_policy: GatePolicy) -> dict:
    return load_policy(Path(gate_policy.path) if gate_policy.path else None)


def _evaluate_in_warehouse(storage: VidrecStorage, **inputs: object) -> CandidateEvaluation:
    """``evaluate_candidate`` over a warehouse connection (the run's tables stay in schema `evaluation`). A
    function of its own so that no DuckDB connection is a local of the asset body, where Dagster copies the
    frame's locals when it first builds a record class (a "nanobind: leaked" report at exit)."""
    with storage.warehouse() as con:
        return evaluate_candidate(con, reports=storage.paths.reports, **inputs)


@warehouse_asset(GROUP, kinds={"duckdb"})
def offline_evaluation(
    context: dg.AssetExecutionContext,
    ranker: TrainedModel,
    retrieval_model: TrainedModel,
    item_embeddings: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    storage: VidrecStorage,
    raw_data: RawData,
    pseudonymiser: Pseudonymiser,
    gate_policy: GatePolicy,
    served_path: ServedPathSettings,
) -> dg.Output[pd.DataFrame]:
    """Hold-out (last days) metrics of the candidate's and the production champion's served path (retrieve
    N → rank → blend, exactly what the service answers) in DuckDB SQL, with 95% bootstrap intervals over
    users, the whole-catalogue ranking as an upper bound (`candidate_catalogue`) and retrieval recall@N:
    per-head AUC/GAUC/logloss/ECE, NDCG/Precision/Recall/HitRate/MRR@10, coverage and novelty, IPS/SNIPS
    CTR, watch time and conversion, a simulated A/B test on demo worlds, and slices. One row per (slice,
    model, metric). Metrics that need a signal the log lacks (propensity, watch_s, converted, position,
    non-clicked impressions) are left out and listed with the reason; the `holdout` rows record which
    signals the hold-out had."""
    champion = champion_directory(storage.paths.registry)
    run = _evaluate_in_warehouse(
        storage,
        ranker=ranker,
        retrieval=retrieval_model,
        items=items,
        item_embeddings=item_embeddings,
        events=accepted_rows(interactions),
        champion=champion,
        raw_dir=raw_data.directory,
        key=pseudonymiser.key,
        policy=_policy(gate_policy),
        run_id=context.run_id,
        path=served_path.settings(),
    )
    table, tables = run.table, run.tables
    wide = headline(table, K)
    return dg.Output(
        table,
        metadata={
            "report": dg.MetadataValue.md(run.report.markdown_inline),
            "report_path": dg.MetadataValue.path(str(run.report.path)),
            "headline": table_md(wide[["model", *[c for c in HEADLINE_LABELS if c in wide]]].round(4)),
            "gate_preview": table_md(pd.DataFrame(results_table(run.gate))[["name", "value", "threshold", "verdict"]]),
            "champion": champion[0] if champion else "none",
            "holdout_impressions": tables.impression_count,
            "metric_rows": len(table),
            "missing_signals": dg.MetadataValue.json(run.availability.missing()),
            "skipped_metrics": table_md(run.skipped),
            "scoring_p99_ms": round(tables.latency["p99_ms"], 2),
            "timings_s": dg.MetadataValue.json({k: round(v, 3) for k, v in run.timings_s.items()}),
        },
    )


@dg.asset_check(asset=offline_evaluation, blocking=True)
def promotion_gate(offline_evaluation: pd.DataFrame, gate_policy: GatePolicy) -> dg.AssetCheckResult:
    """The candidate passes every rule of the versioned gate policy (vidrec/policies/gate.yaml):
    absolute floors, a cold-start slice floor, a latency budget and non-inferiority to the champion."""
    policy = _policy(gate_policy)
    results = check_gate(offline_evaluation, policy)
    table = pd.DataFrame(results_table(results))[
        ["name", "metric", "slice", "value", "ci_low", "ci_high", "threshold", "verdict", "detail"]
    ]
    return dg.AssetCheckResult(
        passed=all(r.passed for r in results),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "policy_version": policy.get("version"),
            "rules": table_md(table.round(4)),
            "failed_rules": [r.name for r in results if not r.passed],
            "skipped_rules": [f"{r.name} ({r.verdict})" for r in results if r.verdict.startswith("skipped")],
        },
    )


# deps: the blocking drift checks on drift_report (assets/drift.py) stop promotion when data moved too far.
@dg.asset(
    group_name=GROUP,
    kinds={"bentoml"},
    owners=["team:ml-platform"],
    deps=["drift_report"],
    retry_policy=TRANSIENT_RETRY,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)),
)
def promoted_model(
    context: dg.AssetExecutionContext,
    offline_evaluation: pd.DataFrame,
    multimodal_encoder: TrainedModel,
    ranker: TrainedModel,
    retrieval_model: TrainedModel,
    item_embeddings: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    storage: VidrecStorage,
    raw_data: RawData,
    gate_policy: GatePolicy,
    served_path: ServedPathSettings,
) -> dg.Output[dict]:
    """The gated candidate saved to the BentoML model store (state_dicts + config, lineage labels) and
    made production by an atomic pointer move; the previous champion stays in the store for rollback.
    With the policy's online stage on, it starts as the live A/B challenger instead (experiment_decision)."""
    wide = headline(offline_evaluation, K)
    candidate = wide[wide["model"] == "candidate"].iloc[0]
    metrics = {m: round(float(candidate[m]), 4) for m in HEADLINE_LABELS if m in candidate and pd.notna(candidate[m])}
    pointer = ProductionPointer(storage.paths.registry)
    labels = {
        "git_commit": git_commit(),
        "data_version": data_version(raw_data.directory),
        "dvc_data_version": dvc_version(raw_data.directory) or "untracked",
        "run_id": context.run_id,
        "previous_production": pointer.tag or "none",
        **{k: str(v) for k, v in metrics.items()},
    }
    evaluation = [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in wide.to_dict("records")
    ]
    contents = bundle_contents(
        multimodal_encoder,
        ranker,
        retrieval_model,
        items,
        item_embeddings,
        accepted_rows(interactions),
        evaluation,
        path=served_path.settings(),
        live=read_live_sessions(raw_data.directory),  # the service's live schedule (models.serving.commerce)
    )
    stage = online_stage(_policy(gate_policy))
    share = stage.share if stage.enabled else None
    promotion = promote(lambda: save_to_store(contents, labels, {"metrics": metrics}), pointer, share)
    return dg.Output(
        {"tag": promotion.tag, "previous": promotion.previous, "arm": promotion.arm, **metrics},
        metadata={
            "tag": promotion.tag,
            "arm": promotion.arm,
            "labels": dg.MetadataValue.json(labels),
            "previous_production": str(promotion.previous),
            "rollback": "python -m vidrec.registry rollback",
        },
    )
