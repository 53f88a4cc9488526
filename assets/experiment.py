"""The live A/B experiment: per-arm results from the logged impressions, the blocking sample-ratio check,
and the online promotion stage's decision (promote the challenger, roll it back, or wait)."""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.reporting import table_md
from assets.resources import GatePolicy, VidrecStorage, warehouse_asset
from vidrec.evaluation.online import (
    COLUMNS,
    EXPERIMENT,
    OnlineSettings,
    experiment_rows,
    online_metrics,
    per_arm,
    rate_metrics,
    srm_passed,
    value,
)
from vidrec.experiment import ARMS
from vidrec.gate import load_policy
from vidrec.online_stage import apply_decision, decide, online_stage
from vidrec.plots import markdown_image, metrics_with_intervals
from vidrec.registry import Challenger, ProductionPointer

GROUP = "experiment"
# Text columns, typed even when empty: an empty object column would become a NULL-typed warehouse column
# that the next run's rows cannot be inserted into.
TEXT = ("experiment_id", "model", "metric")


def _stage(gate_policy: GatePolicy):
    return online_stage(load_policy(Path(gate_policy.path) if gate_policy.path else None))


def _read_rows(storage: VidrecStorage, challenger: Challenger) -> pd.DataFrame:
    """A function of its own so that no DuckDB connection is a local of the asset body (see
    assets/evaluation.py's _evaluate_in_warehouse)."""
    with storage.warehouse() as con:
        return experiment_rows(con, challenger)


# logged_impressions is read in the warehouse by experiment_rows.
# Fresh daily while an experiment runs: older than 26 h means a night's read of the A/B (and its decision) was
# missed, 48 h fails. Kept when none runs (the asset then records "none running"), so the UI shows it is read.
@warehouse_asset(
    GROUP,
    kinds={"duckdb"},
    deps=["logged_impressions"],
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=48), warn_window=timedelta(hours=26)),
)
def online_experiment(
    context: dg.AssetExecutionContext, storage: VidrecStorage, gate_policy: GatePolicy
) -> dg.Output[pd.DataFrame]:
    """The running live A/B experiment (registry challenger vs production) from the logged impressions joined
    to their events: per arm impressions, users, CTR@10, watch seconds and conversions per impression with
    95% bootstrap intervals over users, the challenger's absolute and relative difference, and the
    sample-ratio-mismatch chi-square. Empty when no experiment runs."""
    challenger = ProductionPointer(storage.paths.registry).challenger
    if challenger is None:
        empty = pd.DataFrame({c: pd.Series(dtype="string" if c in TEXT else "float64") for c in COLUMNS})
        return dg.Output(empty, metadata={"experiment": "none running"})
    stage = _stage(gate_policy)
    settings = OnlineSettings(resamples=stage.resamples, srm_alpha=stage.srm_alpha)
    table = online_metrics(_read_rows(storage, challenger), challenger, settings)
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in table.to_dict("records")]
    plot = metrics_with_intervals(
        rows,
        list(rate_metrics(settings.k)),
        list(ARMS),
        f"experiment {challenger.experiment_id}: {challenger.tag} at {challenger.share:.0%}",
        storage.paths.reports / context.run_id / "online_experiment.png",
    )
    p_value = value(table, EXPERIMENT, "srm_p_value")
    context.log.info("experiment %s: SRM p = %s", challenger.experiment_id, p_value)
    return dg.Output(
        table,
        metadata={
            "experiment": challenger.experiment_id,
            "arms": dg.MetadataValue.json(
                {"production": challenger.production_tag, "challenger": challenger.tag, "share": challenger.share}
            ),
            "started_at": challenger.started_at,
            "per_arm": table_md(per_arm(table)),
            "plot": dg.MetadataValue.md(markdown_image(plot, "per-arm rates with 95% intervals")),
            "srm_p_value": dg.MetadataValue.float(p_value if p_value is not None else float("nan")),
        },
    )


# Not blocking, on purpose: a blocking failure would stop experiment_decision too, leaving the broken split
# serving until someone rolls it back by hand. The check fails (ERROR, red in the UI) and the decision, which
# reads the same SRM test, rolls the challenger back in the same run.
@dg.asset_check(asset=online_experiment)
def sample_ratio(online_experiment: pd.DataFrame) -> dg.AssetCheckResult:
    """Users per arm match the configured challenger share (chi-square p >= the policy's srm_alpha): a mismatch
    means the assignment or the logging is broken; the experiment is never used to promote, and
    experiment_decision rolls the challenger back."""
    if online_experiment.empty:
        return dg.AssetCheckResult(passed=True, metadata={"experiment": "none running"})
    return dg.AssetCheckResult(
        passed=srm_passed(online_experiment),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "users": dg.MetadataValue.json({arm: value(online_experiment, arm, "users") for arm in ARMS}),
            "share": value(online_experiment, EXPERIMENT, "share"),
            "srm_chi2": value(online_experiment, EXPERIMENT, "srm_chi2"),
            "srm_p_value": value(online_experiment, EXPERIMENT, "srm_p_value"),
            "srm_alpha": value(online_experiment, EXPERIMENT, "srm_alpha"),
        },
    )


@dg.asset(group_name=GROUP, kinds={"bentoml"}, owners=["team:ml-platform"])
def experiment_decision(
    online_experiment: pd.DataFrame, storage: VidrecStorage, gate_policy: GatePolicy
) -> dg.Output[dict]:
    """The online promotion stage on the running experiment: the challenger becomes production when it is
    non-inferior after the minimum sample, is rolled back when it is not, and otherwise keeps running. With the
    policy's online stage off (an experiment started by hand), the decision is reported, not applied."""
    if online_experiment.empty:
        return dg.Output({"action": "none", "reason": "no experiment running"}, metadata={"action": "none"})
    stage = _stage(gate_policy)
    decision = decide(online_experiment, stage)
    pointer = apply_decision(ProductionPointer(storage.paths.registry), decision) if stage.enabled else None
    return dg.Output(
        {**decision.as_dict(), "applied": stage.enabled},
        metadata={
            "action": decision.action,
            "applied": stage.enabled,
            "reason": decision.reason,
            "experiment": decision.experiment_id,
            "rules": table_md(pd.DataFrame(decision.rules)),
            "production": str(pointer.tag) if pointer else "unchanged",
        },
    )
