"""The promotion gate: rules from a versioned YAML policy checked against the evaluation table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml


@dataclass(frozen=True)
class RuleResult:
    name: str
    metric: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str


def load_policy(path: Path | None = None) -> dict:
    text = path.read_text() if path else resources.files("vidrec.policies").joinpath("gate.yaml").read_text()
    policy = yaml.safe_load(text)
    if not isinstance(policy, dict) or "rules" not in policy:
        raise ValueError(f"gate policy {path or 'vidrec/policies/gate.yaml'} has no 'rules' list")
    return policy


def _metric(evaluation: pd.DataFrame, model: str, metric: str) -> float | None:
    rows = evaluation[evaluation["model"] == model]
    if rows.empty or metric not in rows:
        return None
    value = rows.iloc[0][metric]
    return None if pd.isna(value) else float(value)


def check_gate(evaluation: pd.DataFrame, policy: dict) -> list[RuleResult]:
    """Evaluate every rule; a missing metric fails its rule (never passes by default)."""
    model = policy.get("model", "candidate")
    results = []
    for rule in policy["rules"]:
        metric = rule["metric"]
        value = _metric(evaluation, model, metric)
        if "at_least" in rule:
            threshold, detail = float(rule["at_least"]), f">= {rule['at_least']}"
            passed = value is not None and value >= threshold
        elif "above_model" in rule:
            threshold = _metric(evaluation, rule["above_model"], metric)
            detail = f"> {rule['above_model']}"
            passed = value is not None and threshold is not None and value > threshold
        else:
            raise ValueError(f"gate rule {rule.get('name')!r} needs 'at_least' or 'above_model'")
        results.append(RuleResult(rule["name"], metric, value, threshold, passed, detail))
    return results


def results_table(results: list[RuleResult]) -> list[dict]:
    return [asdict(r) for r in results]
