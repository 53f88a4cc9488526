"""Drift between the training window and new data, with checks that warn above one threshold
and block promotion above another (thresholds in vidrec/policies/drift.yaml)."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from assets.reporting import table_md
from assets.resources import VidrecStorage, warehouse_asset
from vidrec.drift import (
    EVENT_RATES,
    MODALITIES,
    drift_bars,
    drift_table,
    embedding_drift,
    event_rate_drift,
    item_windows,
    load_drift_policy,
    shard_descriptors,
    window_start,
)
from vidrec.plots import markdown_image

GROUP = "monitoring"
SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "block": dg.AssetCheckSeverity.ERROR}


class DriftConfig(dg.Config):
    """Which drift policy applies; empty means the versioned vidrec/policies/drift.yaml."""

    policy_path: str = ""


@warehouse_asset(GROUP, retry=False)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    video_metadata: pd.DataFrame,
    video_features: pd.DataFrame,
    text_features: pd.DataFrame,
    interactions: pd.DataFrame,
    storage: VidrecStorage,
) -> dg.Output[pd.DataFrame]:
    """Drift of visual, audio and text content (MMD with a permutation test) and of CTR and
    watch time, between the training window and the new (hold-out) window; one row per measure."""
    policy = load_drift_policy(Path(config.policy_path) if config.policy_path else None)
    events = interactions[interactions["status"] == "accepted"]
    start = window_start(events)
    reference_ids, new_ids = item_windows(video_metadata, start)
    visual, audio = shard_descriptors(video_features)
    text = text_features[text_features["has_text"]][["video_id", "embedding"]].rename(columns={"embedding": "vector"})
    vectors = {"visual": visual, "audio": audio, "text": text}
    results = [embedding_drift(name, vectors[name], reference_ids, new_ids, policy) for name in MODALITIES]
    results += event_rate_drift(events, start, policy)
    table = drift_table(results)
    context.log.info(
        "drift from %s: %s", start.isoformat(), ", ".join(f"{r.name}={r.value} ({r.level})" for r in results)
    )
    plot = drift_bars(table, storage.paths.reports / context.run_id / "drift.png")
    return dg.Output(
        table,
        metadata={
            "drift": table_md(table.drop(columns=["detail"])),
            "drift_plot": dg.MetadataValue.md(markdown_image(plot, "drift value / block threshold")),
            "policy_version": policy.version,
            "new_window_start": start.isoformat(),
            "items_training_window": len(reference_ids),
            "items_new_window": len(new_ids),
            "levels": dg.MetadataValue.json({r.name: r.level for r in results}),
        },
    )


def _drift_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=drift_report,
        name=f"{name}_drift",
        blocking=True,
        description=f"{name} drift below the policy's thresholds: WARN above `warn`, "
        "ERROR (blocks promotion) above `block`.",
    )
    def _check(drift_report: pd.DataFrame) -> dg.AssetCheckResult:
        rows = drift_report[drift_report["name"] == name]
        if len(rows) != 1:
            raise ValueError(f"drift_report has {len(rows)} rows named {name!r}; re-materialise drift_report")
        row = rows.iloc[0]
        level = str(row["level"])
        return dg.AssetCheckResult(
            passed=level in ("ok", "insufficient"),
            severity=SEVERITY.get(level, dg.AssetCheckSeverity.WARN),
            description=str(row["detail"]),
            metadata={
                "level": level,
                "statistic": str(row["statistic"]),
                "value": _number(row["value"]),
                "p_value": _number(row["p_value"]),
                "warn_threshold": float(row["warn"]),
                "block_threshold": float(row["block"]),
                "training_window": _number(row["reference"]),
                "new_window": _number(row["current"]),
                "n_training_window": int(row["n_reference"]),
                "n_new_window": int(row["n_new"]),
            },
        )

    return _check


def _number(value: object) -> float | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


visual_drift, audio_drift, text_drift = (_drift_check(name) for name in MODALITIES)
ctr_drift, watch_time_drift = (_drift_check(name) for name in EVENT_RATES)
