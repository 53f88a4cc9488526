"""The promotion gate: rules from a versioned YAML policy checked against the evaluation table.

Rule kinds (exactly one per rule):
  at_least / at_most            absolute floor / ceiling on the candidate's value
  above_model                   the candidate's value beats another evaluated model's (e.g. random)
  non_inferior_to_champion: m   lower 95% bound of (candidate - champion) / |champion| >= -m
  superior_to_champion: m       lower 95% bound of (candidate - champion) / |champion| > m
  non_inferior_to_incumbent: m  the same against the policy's ``incumbent`` (the system vidrec replaces, replayed
                                in the simulated A/B), applied only while no champion exists; skipped with the
                                reason on data without a simulator
Champion rules are skipped with the verdict "skipped: no champion" on the first run. A rule whose
metric needs a signal the hold-out lacks (``vidrec.evaluation.availability``: propensities, watch
times, conversion labels, positions, non-clicked impressions) is skipped with the reason, e.g.
"skipped: source has no propensities"; the evaluation table records which signals it had. Any other
metric that was not computed fails its rule unless the rule says ``when_missing: skip``. For metrics
where smaller is better (logloss, ECE, latency) set ``lower_is_better: true`` on champion rules.
A champion rule with ``superseded_by: <metric>`` is skipped, with the reason, when the evaluation has the
candidate-vs-champion row of that metric: once the champion serves, the hold-out's clicks happened on the
slates it chose, so a comparison on logged clicks favours the champion by construction (measured in the
7-day loop: the champion's served NDCG@10 0.364 vs a candidate's 0.246, while the simulated A/B, which
replays both through the world's users, had the candidate +6.1% CTR@10 [3.9%, 8.3%]); the unbiased
comparison named there decides instead.
A ``non_inferior_to_champion`` rule on a GMV metric (``gmv_at_<k>_snips``, models.offline.gmv) is decided by
``vidrec.evaluation.commerce.gmv_non_inferiority`` on the lower bound of candidate / champion (1 + the relative
change's lower bound), and skipped with its reason when the hold-out has no orders or no propensities, or, like
the other logged comparisons, when its ``superseded_by`` simulated A/B row exists.
The policy's optional ``online`` block (the live A/B stage after this gate) is read by vidrec.online_stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

from vidrec.evaluation.availability import Availability
from vidrec.evaluation.commerce import gmv_non_inferiority

KINDS = (
    "at_least",
    "at_most",
    "above_model",
    "non_inferior_to_champion",
    "superior_to_champion",
    "non_inferior_to_incumbent",
)
OPTIONAL = ("slice", "when_missing", "lower_is_better", "description", "superseded_by")
PASS, FAIL, NO_CHAMPION, NOT_COMPUTED = "pass", "fail", "skipped: no champion", "skipped: not computed"
HAS_CHAMPION = "skipped: a champion exists (the champion rules apply)"
NO_SIMULATOR = "skipped: no simulator to replay the incumbent (not a demo world)"
SKIPPED = "skipped: "  # every verdict that starts with it passes: the rule did not apply to this data


@dataclass(frozen=True)
class RuleResult:
    name: str
    kind: str
    metric: str
    slice: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    threshold: float | None
    verdict: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.verdict != FAIL


def load_policy(path: Path | None = None) -> dict:
    """Read and validate a policy (default: the versioned vidrec/policies/gate.yaml)."""
    where = str(path) if path else "vidrec/policies/gate.yaml"
    text = path.read_text() if path else resources.files("vidrec.policies").joinpath("gate.yaml").read_text()
    policy = yaml.safe_load(text)
    if not isinstance(policy, dict) or not isinstance(policy.get("rules"), list) or "version" not in policy:
        raise ValueError(f"gate policy {where} needs a 'version' and a 'rules' list")
    for rule in policy["rules"]:
        kinds = [k for k in KINDS if k in rule]
        unknown = set(rule) - set(KINDS) - set(OPTIONAL) - {"name", "metric"}
        if "name" not in rule or "metric" not in rule or len(kinds) != 1 or unknown:
            raise ValueError(
                f"gate policy {where}: rule {rule!r} needs 'name', 'metric' and exactly one of "
                f"{list(KINDS)}" + (f"; unknown keys {sorted(unknown)}" if unknown else "")
            )
    return policy


def _row(table: pd.DataFrame, model: str, metric: str, slice_: str) -> pd.Series | None:
    rows = table[(table["model"] == model) & (table["metric"] == metric) & (table["slice"] == slice_)]
    if rows.empty or pd.isna(rows.iloc[0]["value"]):
        return None
    return rows.iloc[0]


def _num(value: object) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _unavailable(rule: dict, kind: str, model: str, champion: str, availability: Availability | None) -> list[str]:
    """Why the hold-out cannot support the rule's metric for the models it compares (empty if it can)."""
    if availability is None:
        return []
    models = [f"{model}_vs_{champion}" if kind.endswith(("_to_champion", "_to_incumbent")) else model]
    if kind == "above_model":
        models.append(rule["above_model"])
    return list(dict.fromkeys(r for m in models for r in availability.reasons(m, rule["metric"])))


def _check(
    rule: dict,
    table: pd.DataFrame,
    model: str,
    champion: str,
    has_champion: bool,
    availability: Availability | None = None,
    incumbent: str = "incumbent",
) -> RuleResult:
    kind = next(k for k in KINDS if k in rule)
    if kind == "non_inferior_to_incumbent":
        champion = incumbent  # compared like a champion; whether one exists is still the champion's
    metric, slice_ = rule["metric"], rule.get("slice", "all")
    base = {"name": rule["name"], "kind": kind, "metric": metric, "slice": slice_}
    if kind == "non_inferior_to_champion" and metric.startswith("gmv_at_"):
        return _gmv_check(rule, base, table, f"{model}_vs_{champion}", has_champion, availability)
    unavailable = _unavailable(rule, kind, model, champion, availability)
    if unavailable:
        return RuleResult(
            **base,
            value=None,
            ci_low=None,
            ci_high=None,
            threshold=None,
            verdict=SKIPPED + "; ".join(unavailable),
            detail=f"{metric} is not computed from data without these signals (never estimated)",
        )
    if kind.endswith(("_to_champion", "_to_incumbent")):
        margin = float(rule[kind])
        empty = {"value": None, "ci_low": None, "ci_high": None, "threshold": None}
        unbiased = rule.get("superseded_by")
        if has_champion and unbiased and _row(table, f"{model}_vs_{champion}", unbiased, slice_) is not None:
            return RuleResult(
                **base,
                **empty,
                verdict=f"{SKIPPED}{unbiased} vs the champion decides (logged clicks favour the champion's own slates)",
                detail=f"the hold-out was shown by the champion; the unbiased comparison is {unbiased}",
            )
        if kind == "non_inferior_to_incumbent":
            if has_champion:
                return RuleResult(
                    **base, **empty, verdict=HAS_CHAMPION, detail="a candidate is held to the champion once one exists"
                )
            if _row(table, f"{model}_vs_{champion}", metric, slice_) is None:
                return RuleResult(
                    **base,
                    **empty,
                    verdict=NO_SIMULATOR,
                    detail=f"{metric} vs {champion} needs the world's oracle to replay both arms",
                )
        elif not has_champion:
            return RuleResult(
                **base, **empty, verdict=NO_CHAMPION, detail="first run: there is no production model to compare with"
            )
        row = _row(table, f"{model}_vs_{champion}", metric, slice_)
        sign = -1.0 if rule.get("lower_is_better") else 1.0
        # A relative change where lower is better is read with its sign flipped ("improvement").
        value = None if row is None else sign * float(row["value"])
        bounds = None
        if row is not None and _num(row["ci_low"]) is not None:
            bounds = sorted([sign * float(row["ci_low"]), sign * float(row["ci_high"])])
        inferiority = kind.startswith("non_inferior")
        threshold = -margin if inferiority else margin
        detail = (
            f"lower 95% bound of the relative change vs {champion} >= {threshold:+.2%}"
            if inferiority
            else f"lower 95% bound of the relative change > {threshold:+.2%}"
        )
        low = bounds[0] if bounds else None
        ok = low is not None and (low >= threshold if inferiority else low > threshold)
        result = {"value": value, "ci_low": low, "ci_high": bounds[1] if bounds else None, "threshold": threshold}
    elif kind == "above_model":
        row, other = _row(table, model, metric, slice_), _row(table, rule["above_model"], metric, slice_)
        threshold = None if other is None else float(other["value"])
        value = None if row is None else float(row["value"])
        ok = value is not None and threshold is not None and value > threshold
        detail = f"> {rule['above_model']}"
        result = {
            "value": value,
            "ci_low": None if row is None else _num(row["ci_low"]),
            "ci_high": None if row is None else _num(row["ci_high"]),
            "threshold": threshold,
        }
    else:
        row = _row(table, model, metric, slice_)
        threshold = float(rule[kind])
        value = None if row is None else float(row["value"])
        ok = value is not None and (value >= threshold if kind == "at_least" else value <= threshold)
        detail = f"{'>=' if kind == 'at_least' else '<='} {threshold:g}"
        result = {
            "value": value,
            "ci_low": None if row is None else _num(row["ci_low"]),
            "ci_high": None if row is None else _num(row["ci_high"]),
            "threshold": threshold,
        }
    if result["value"] is None and rule.get("when_missing") == "skip":
        return RuleResult(**base, **result, verdict=NOT_COMPUTED, detail=f"{detail} (metric not computed)")
    if result["value"] is None:
        detail = f"{detail}; metric not computed, so the rule fails"
    return RuleResult(**base, **result, verdict=PASS if ok else FAIL, detail=detail)


def _gmv_check(
    rule: dict, base: dict, table: pd.DataFrame, versus: str, has_champion: bool, availability: Availability | None
) -> RuleResult:
    """A GMV non-inferiority rule, decided by ``gmv_non_inferiority``: skipped before a champion (like every
    champion rule), and without orders or propensities (the table's ``holdout`` share rows; a table without
    them records no orders)."""
    margin = float(rule["non_inferior_to_champion"])
    shares = availability.shares if availability is not None else {}
    has_orders, has_propensities = shares.get("orders", 0.0) > 0, shares.get("propensity", 1.0) > 0
    empty = {"value": None, "ci_low": None, "ci_high": None, "threshold": -margin}
    if not has_champion:
        return RuleResult(**base, **empty, verdict=NO_CHAMPION, detail="first run: no production GMV to compare with")
    unbiased = rule.get("superseded_by")
    if unbiased and _row(table, versus, unbiased, base["slice"]) is not None:
        return RuleResult(
            **base,
            **empty,
            verdict=f"{SKIPPED}{unbiased} vs the champion decides (logged orders favour the champion's own slates)",
            detail=f"the hold-out was shown by the champion; the unbiased comparison is {unbiased}",
        )
    row = _row(table, versus, rule["metric"], base["slice"])
    low = None if row is None else _num(row["ci_low"])
    outcome = gmv_non_inferiority(None if low is None else 1.0 + low, margin, has_orders, has_propensities)
    if outcome.passed is None:
        verdict = outcome.reason if outcome.reason.startswith(SKIPPED) else SKIPPED + outcome.reason
    else:
        verdict = PASS if outcome.passed else FAIL
    return RuleResult(
        **base,
        value=None if row is None else float(row["value"]),
        ci_low=low,
        ci_high=None if row is None else _num(row["ci_high"]),
        threshold=-margin,
        verdict=verdict,
        detail=f"{outcome.name}: {outcome.reason}",
    )


def check_gate(table: pd.DataFrame, policy: dict, has_champion: bool | None = None) -> list[RuleResult]:
    """Evaluate every rule on the long evaluation table (slice, model, metric, value, ci_low, ci_high).

    ``has_champion`` defaults to whether the table holds rows for the policy's champion model. The
    signals the hold-out had come from the table's ``holdout`` rows (``Availability.from_table``).
    """
    model, champion = policy.get("model", "candidate"), policy.get("champion", "champion")
    incumbent = policy.get("incumbent", "incumbent")
    if has_champion is None:
        has_champion = bool((table["model"] == champion).any())
    availability = Availability.from_table(table)
    return [_check(rule, table, model, champion, has_champion, availability, incumbent) for rule in policy["rules"]]


def results_table(results: list[RuleResult]) -> list[dict]:
    return [{**asdict(r), "passed": r.passed} for r in results]
