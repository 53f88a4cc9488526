"""Which logged signals the hold-out carries, and the metrics that cannot be computed without them.

A source may lack positions, propensities, watch times or conversion labels (an imported public log
has none of them), or non-clicked impressions (a positives-only log). The SQL suite would still turn
the NULLs into numbers (DuckDB's ``least`` skips a NULL propensity, so every IPS weight would become the
clip; a session of clicks only has NDCG 1 whatever the order), so the caller drops those rows and
records why. The record travels in the evaluation table itself (model ``holdout``, metrics
``holdout_share_<signal>``), so the promotion gate reads the same facts without another input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

# ``orders``: whether the hold-out has orders to attribute GMV to (models.offline.gmv); not an impression column.
SIGNALS = ("position", "propensity", "watch_s", "converted", "impressions", "orders")
SHARE_MODEL = "holdout"
SHARE_PREFIX = "holdout_share_"
# What a missing signal is called in notes and gate verdicts ("skipped: source has no propensities").
NOUNS = {
    "position": "positions",
    "propensity": "propensities",
    "watch_s": "watch times",
    "converted": "conversion labels",
    "impressions": "non-clicked impressions",
    "orders": "orders",
}

_PREDICTION = re.compile(r"(click|conversion)_(auc|gauc|logloss|ece)")
_LOGGED_RANKING = re.compile(r"(ndcg|precision|recall|hitrate|mrr)_at_\d+")
_OFF_POLICY = re.compile(r"(ctr|watch_s_per_impression|watch_s_per_session|conversion)_at_\d+_(ips|snips)")
_GMV = re.compile(r"gmv_at_\d+_(ips|snips)")
_OFF_POLICY_LABEL = {
    "ctr": "impressions",
    "watch_s_per_impression": "watch_s",
    "watch_s_per_session": "watch_s",
    "conversion": "converted",
}


def needs(model: str, metric: str) -> frozenset[str]:
    """The signals (of SIGNALS) that ``metric`` of ``model`` is computed from.

    Prediction metrics need both classes of their label (click: non-clicked impressions; conversion:
    conversion labels); ranking metrics over the logged sessions need non-clicked impressions;
    off-policy estimates need propensities and their reward. The ``logging_policy`` reference predicts
    with the logged propensity and orders by the logged position. Catalogue, simulated A/B and
    latency metrics need nothing logged."""
    found: set[str] = set()
    prediction = _PREDICTION.fullmatch(metric)
    if prediction:
        found.add("impressions" if prediction.group(1) == "click" else "converted")
    if _LOGGED_RANKING.fullmatch(metric):
        found.add("impressions")
    off_policy = _OFF_POLICY.fullmatch(metric)
    if off_policy:
        found |= {"propensity", _OFF_POLICY_LABEL[off_policy.group(1)]}
    if _GMV.fullmatch(metric):
        found |= {"propensity", "orders"}
    if "logging_policy" in model.split("_vs_"):
        if prediction:
            found.add("propensity")
        if _LOGGED_RANKING.fullmatch(metric):
            found.add("position")
    return frozenset(found)


@dataclass(frozen=True)
class Availability:
    """``shares[signal]``: the fraction of hold-out impressions that carry the signal (for
    ``impressions``: the fraction that are non-clicked, i.e. carry a negative click label)."""

    shares: dict[str, float]

    @classmethod
    def from_impressions(cls, impressions: pd.DataFrame) -> Availability:
        """Measured on the hold-out impressions (columns of ``vidrec.evaluation.tables.IMPRESSION_COLUMNS``)."""
        if impressions.empty:
            raise ValueError("the hold-out impressions are empty; there is nothing to measure signals on")
        shares = {c: float(impressions[c].notna().mean()) for c in ("position", "propensity", "watch_s", "converted")}
        shares["impressions"] = float((~impressions["clicked"].astype(bool)).mean())
        return cls(shares)

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> Availability | None:
        """Read back from an evaluation table; None when it has no share rows (every signal assumed present)."""
        rows = table[(table["model"] == SHARE_MODEL) & table["metric"].str.startswith(SHARE_PREFIX)]
        if rows.empty:
            return None
        return cls({m.removeprefix(SHARE_PREFIX): float(v) for m, v in zip(rows["metric"], rows["value"])})

    def missing(self) -> dict[str, str]:
        """signal -> why it cannot be used, for every signal the hold-out lacks (even on some rows)."""
        out = {}
        for signal, share in self.shares.items():
            if signal == "impressions":
                if share == 0:
                    out[signal] = "source has no non-clicked impressions (positives only)"
            elif share == 0:
                out[signal] = f"source has no {NOUNS[signal]}"
            elif share < 1:
                out[signal] = f"{NOUNS[signal]} missing on {1 - share:.1%} of hold-out impressions"
        return out

    def reasons(self, model: str, metric: str) -> list[str]:
        """Why ``metric`` of ``model`` cannot be computed here (empty when it can)."""
        missing = self.missing()
        return [missing[s] for s in SIGNALS if s in needs(model, metric) and s in missing]

    def rows(self) -> pd.DataFrame:
        """The shares as evaluation-table rows (slice ``all``, model ``holdout``, no interval)."""
        return pd.DataFrame(
            {
                "slice": "all",
                "model": SHARE_MODEL,
                "metric": [SHARE_PREFIX + s for s in self.shares],
                "value": list(self.shares.values()),
                "ci_low": float("nan"),
                "ci_high": float("nan"),
                "resamples": 0,
            }
        )


def drop_unsupported(table: pd.DataFrame, availability: Availability) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a long evaluation table (slice, model, metric, ...) into the rows that may be reported and
    a summary of the skipped ones: metric, the models it was skipped for, and the reason."""
    reasons = [availability.reasons(model, metric) for model, metric in zip(table["model"], table["metric"])]
    skip = pd.Series([bool(r) for r in reasons], index=table.index, dtype=bool)
    dropped = table.loc[skip, ["model", "metric"]].assign(reason=["; ".join(r) for r, s in zip(reasons, skip) if s])
    summary = (
        dropped.groupby(["metric", "reason"], sort=True)["model"]
        .agg(lambda models: ", ".join(sorted(set(models))))
        .reset_index()[["metric", "model", "reason"]]
        .rename(columns={"model": "models"})
    )
    return table[~skip].reset_index(drop=True), summary


def drop_unsupported_reliability(reliability: pd.DataFrame, availability: Availability) -> pd.DataFrame:
    """Reliability bins (model, head, bin, ...) without the heads whose labels or predictions are missing."""
    keep = [
        not availability.reasons(model, f"{head}_ece") for model, head in zip(reliability["model"], reliability["head"])
    ]
    return reliability[keep].reset_index(drop=True)
