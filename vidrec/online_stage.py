"""The promotion policy's optional online stage: a gated candidate serves a share of users as the challenger,
and the live A/B results decide whether it becomes production or is rolled back.

Configured by the ``online`` block of the gate policy (vidrec/policies/gate.yaml); absent or
``enabled: false`` means promotion is as before (the gated candidate becomes production at once).
The decision reads the ``online_experiment`` table (``vidrec.evaluation.online``):
  1. a sample-ratio mismatch rolls the challenger back: the assignment or the logging is broken, so the
     results are never used to promote;
  2. below the minimum sample (users and impressions in each arm) it waits;
  3. otherwise every rule must show non-inferiority: the lower 95% bound of the relative difference
     (challenger - production) / |production| is at least -margin. All pass: promote; any fails: roll back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import pandas as pd

from vidrec.evaluation.online import EXPERIMENT, RELATIVE, srm_passed, value
from vidrec.experiment import ARMS
from vidrec.registry import Pointer, ProductionPointer

Action = Literal["wait", "promote", "rollback"]
STAGE_KEYS = {"enabled", "share", "min_users", "min_impressions", "srm_alpha", "resamples", "rules"}


@dataclass(frozen=True)
class OnlineRule:
    """The challenger's ``metric`` is not worse than production's by more than ``margin`` (relative) at 95%."""

    metric: str
    margin: float


@dataclass(frozen=True)
class OnlineStage:
    enabled: bool = False
    share: float = 0.1
    min_users: int = 1000  # per arm
    min_impressions: int = 10_000  # per arm
    srm_alpha: float = 0.001
    resamples: int = 200
    rules: tuple[OnlineRule, ...] = field(
        default_factory=lambda: (OnlineRule("ctr_at_10", 0.01), OnlineRule("watch_s_per_impression", 0.01))
    )


def online_stage(policy: dict) -> OnlineStage:
    """The policy's ``online`` block (disabled when absent), validated."""
    block = policy.get("online")
    if block is None:
        return OnlineStage()
    if not isinstance(block, dict) or set(block) - STAGE_KEYS:
        unknown = sorted(set(block) - STAGE_KEYS) if isinstance(block, dict) else block
        raise ValueError(f"gate policy 'online' block: unknown keys {unknown}; allowed {sorted(STAGE_KEYS)}")
    rules = block.get("rules")
    values = {k: v for k, v in block.items() if k != "rules"}
    if rules is not None:
        try:
            values["rules"] = tuple(OnlineRule(str(r["metric"]), float(r["non_inferior_margin"])) for r in rules)
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"gate policy 'online' rules {rules!r}: each needs 'metric' and 'non_inferior_margin' ({error})"
            ) from error
    stage = OnlineStage(**values)
    if not 0.0 < stage.share < 1.0:
        raise ValueError(f"gate policy 'online' share {stage.share!r} must be strictly between 0 and 1")
    if stage.min_users < 1 or stage.min_impressions < 1 or not stage.rules:
        raise ValueError("gate policy 'online' needs min_users >= 1, min_impressions >= 1 and at least one rule")
    return stage


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    experiment_id: str
    rules: list[dict] = field(default_factory=list)  # per rule: metric, margin, value, ci_low, passed

    def as_dict(self) -> dict:
        return asdict(self)


def decide(table: pd.DataFrame, stage: OnlineStage) -> Decision:
    """The online stage's decision on one experiment's results (see the module docstring)."""
    ids = table["experiment_id"].unique()
    if len(ids) != 1:
        raise ValueError(f"the experiment table must describe exactly one experiment, not {list(ids)}")
    experiment_id = str(ids[0])
    if not srm_passed(table):
        p_value, alpha = value(table, EXPERIMENT, "srm_p_value"), value(table, EXPERIMENT, "srm_alpha")
        return Decision(
            "rollback",
            f"sample ratio mismatch (p = {p_value:.3g} < {alpha:g}): the experiment is broken, its results are "
            "not used to promote",
            experiment_id,
        )
    short = [
        f"{arm} {metric} {int(value(table, arm, metric) or 0)} < {minimum}"
        for arm in ARMS
        for metric, minimum in (("users", stage.min_users), ("impressions", stage.min_impressions))
        if (value(table, arm, metric) or 0) < minimum
    ]
    if short:
        return Decision("wait", "below the minimum sample: " + "; ".join(short), experiment_id)
    results = []
    for rule in stage.rules:
        row = table[(table["model"] == RELATIVE) & (table["metric"] == rule.metric)]
        low = None if row.empty or pd.isna(row["ci_low"].iloc[0]) else float(row["ci_low"].iloc[0])
        results.append(
            {
                "metric": rule.metric,
                "margin": rule.margin,
                "value": value(table, RELATIVE, rule.metric),
                "ci_low": low,
                "passed": low is not None and low >= -rule.margin,
            }
        )
    failed = [r for r in results if not r["passed"]]
    if failed:
        why = "; ".join(
            f"{r['metric']} lower bound {r['ci_low']:+.2%} < {-r['margin']:+.2%}"
            if r["ci_low"] is not None
            else f"{r['metric']} not computed"
            for r in failed
        )
        return Decision("rollback", f"not non-inferior: {why}", experiment_id, results)
    return Decision("promote", "non-inferior on " + ", ".join(r["metric"] for r in results), experiment_id, results)


def apply_decision(pointer: ProductionPointer, decision: Decision) -> Pointer | None:
    """Move the registry as decided (None while waiting); refuses a decision about an experiment that is no
    longer the running one."""
    if decision.action == "wait":
        return None
    return pointer.end_challenger(decision.action == "promote", decision.reason, decision.experiment_id)
