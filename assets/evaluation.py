"""Evaluation and promotion: hold-out metrics in DuckDB, the blocking gate, the model store."""


import json
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.model_store import save_to_store
from assets.reporting import table_md
from assets.resources import GatePolicy, RawData, VidrecStorage
from assets.training import accepted
from models.serialization import TrainedModel
from models.config import RankerConfig
from models.steps import holdout_scores, ranker_inputs
from vidrec.behaviour import latest_histories
from vidrec.evaluation.metrics import evaluate_models, load_scores
from vidrec.gate import check_gate, load_policy, results_table
from vidrec.items import build_items
from vidrec.lineage import data_version, git_commit
from vidrec.plots import markdown_image, metric_bars
from vidrec.registry import ProductionPointer

GROUP = "evaluation"


@dg.asset(group_name=GROUP, kinds={"duckdb"}, io_manager_key="warehouse_io", owners=["team:ml-platform"])
def offline_evaluation(context: dg.AssetExecutionContext, ranker: TrainedModel, item_embeddings: pd.DataFrame,
                       interactions: pd.DataFrame, video_probe: pd.DataFrame, video_metadata: pd.DataFrame,
                       video_features: pd.DataFrame, text_features: pd.DataFrame,
                       storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """Hold-out (last days) metrics of the candidate next to random and logged orderings,
    computed with DuckDB SQL: click AUC, NDCG@10, CTR@10, watch time and conversion of the top 10."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    scores = holdout_scores(ranker, items, item_embeddings, accepted(interactions))
    with storage.warehouse() as con:
        load_scores(con, scores, table="scores")
        table = evaluate_models(con, k=10)
    rows = table.to_dict("records")
    # The latest candidate metrics where `dvc metrics show` / `dvc metrics diff` read them.
    metrics_json = storage.paths.reports / "metrics.json"
    metrics_json.write_text(json.dumps({r["model"]: {k: v for k, v in r.items() if k != "model"} for r in rows},
                                       indent=2, default=float))
    plot = metric_bars(rows, "ndcg_at_10", "NDCG@10 on the hold-out window",
                       storage.paths.reports / context.run_id / "ndcg_at_10.png")
    return dg.Output(table, metadata={"metrics": table_md(table.round(4)),
                                      "ndcg_plot": dg.MetadataValue.md(markdown_image(plot, "NDCG@10")),
                                      "holdout_impressions": int((scores["model"] == "candidate").sum())})


@dg.asset_check(asset=offline_evaluation, blocking=True)
def promotion_gate(offline_evaluation: pd.DataFrame, gate_policy: GatePolicy) -> dg.AssetCheckResult:
    """The candidate passes every rule of the versioned gate policy (vidrec/policies/gate.yaml)."""
    policy = load_policy(Path(gate_policy.path) if gate_policy.path else None)
    results = check_gate(offline_evaluation, policy)
    table = pd.DataFrame(results_table(results))
    return dg.AssetCheckResult(
        passed=all(r.passed for r in results),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"policy_version": policy.get("version"), "rules": table_md(table),
                  "failed_rules": [r.name for r in results if not r.passed]},
    )


@dg.asset(group_name=GROUP, kinds={"bentoml"}, owners=["team:ml-platform"])
def promoted_model(context: dg.AssetExecutionContext, offline_evaluation: pd.DataFrame,
                   multimodal_encoder: TrainedModel, ranker: TrainedModel, item_embeddings: pd.DataFrame,
                   interactions: pd.DataFrame, video_probe: pd.DataFrame, video_metadata: pd.DataFrame,
                   video_features: pd.DataFrame, text_features: pd.DataFrame, storage: VidrecStorage,
                   raw_data: RawData) -> dg.Output[dict]:
    """The gated candidate saved to the BentoML model store and made production (atomic pointer)."""
    items, _ = build_items(video_probe, video_metadata, video_features, text_features)
    events = accepted(interactions)
    inputs = ranker_inputs(items, item_embeddings, events, RankerConfig(**ranker.config))
    histories = latest_histories(events[events["clicked"]], length=ranker.config["history_length"])
    candidate = offline_evaluation[offline_evaluation["model"] == "candidate"].iloc[0]
    headline = {m: round(float(candidate[m]), 4) for m in ("click_auc", "ndcg_at_10", "ctr_at_10")}
    labels = {"git_commit": git_commit(), "data_version": data_version(raw_data.directory),
              "run_id": context.run_id, "stage": "production",
              **{k: str(v) for k, v in headline.items()}}
    tag = save_to_store(multimodal_encoder, ranker, items, inputs.embeddings, inputs.buckets, histories,
                        offline_evaluation.to_dict("records"), labels, {"metrics": headline})
    pointer = ProductionPointer(storage.paths.registry).promote(tag)
    return dg.Output({"tag": tag, "previous": pointer.history[-1:] or None, **headline},
                     metadata={"tag": tag, "labels": dg.MetadataValue.json(labels),
                               "previous_production": str(pointer.history[-1] if pointer.history else None)})
