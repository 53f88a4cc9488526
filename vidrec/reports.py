"""The per-run evaluation report (Markdown + PNG plots) and the metrics JSON that DVC reads.

``write_report`` writes ``report.md`` beside its PNGs (relative links, readable in any viewer) and
returns the same text with the images inlined, for the Dagster materialisation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vidrec.evaluation.metrics import headline
from vidrec.plots import (
    gate_verdicts,
    lambda_tradeoff,
    markdown_image,
    metrics_with_intervals,
    relative_changes,
    reliability_diagram,
    slice_lift,
)

HEADLINE_METRICS = (
    "click_auc",
    "click_gauc",
    "ndcg_at_{k}",
    "ctr_at_{k}_snips",
    "watch_s_per_session_at_{k}_snips",
    "conversion_at_{k}_snips",
    "ab_watch_s_per_session_at_{k}",
)


@dataclass
class Report:
    path: Path
    markdown_inline: str
    plots: dict[str, Path]


def _clean(value: object) -> object:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _md_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g") if not frame.empty else "_none_"


def write_report(
    directory: Path,
    table: pd.DataFrame,
    reliability: pd.DataFrame,
    gate: list[dict],
    context: dict[str, object],
    k: int = 10,
    lambda_curve: pd.DataFrame | None = None,
) -> Report:
    """Render the report for one run into ``directory``.

    ``table``: the long evaluation table; ``reliability``: the reliability bins; ``gate``: the rule
    results (dicts with name, metric, slice, value, threshold, verdict, detail); ``context``: run facts
    shown at the top (run id, champion tag, impressions, latency...); ``lambda_curve``: the candidate's MMR
    trade-off (models.offline.diversity_curve), one row per λ, plotted when given.
    """
    directory.mkdir(parents=True, exist_ok=True)
    metrics = [m.format(k=k) for m in HEADLINE_METRICS if m.format(k=k) in set(table["metric"])]
    models = [m for m in ("candidate", "champion", "logging_policy", "random", "oracle") if m in set(table["model"])]
    all_rows = table[table["slice"] == "all"]
    plots = {
        "metrics": metrics_with_intervals(
            _records(all_rows),
            metrics,
            models,
            "hold-out metrics with 95% bootstrap intervals",
            directory / "metrics_with_intervals.png",
        ),
        "calibration": reliability_diagram(
            _records(reliability[reliability["model"].isin(["candidate", "champion"])]),
            ["click", "conversion"],
            "reliability (hold-out)",
            directory / "calibration.png",
        ),
    }
    comparison = all_rows[all_rows["model"] == "candidate_vs_champion"]
    baseline = "champion" if not comparison.empty else "random"
    if not comparison.empty:
        plots["vs_champion"] = relative_changes(
            _records(comparison[comparison["metric"].isin(metrics)]),
            "candidate vs champion",
            directory / "vs_champion.png",
        )
    lift = _slice_lift(table, f"ndcg_at_{k}", baseline)
    plots["slices"] = slice_lift(
        lift, f"NDCG@{k} lift of the candidate over {baseline}, by slice", directory / "slice_lift.png"
    )
    plots["gate"] = gate_verdicts(gate, "promotion gate", directory / "gate.png")
    has_curve = lambda_curve is not None and not lambda_curve.empty
    if has_curve:
        plots["diversity"] = lambda_tradeoff(
            _records(lambda_curve), f"ndcg_at_{k}", "MMR: NDCG vs diversity", directory / "mmr_lambda.png"
        )
    gate_frame = (
        pd.DataFrame(gate)[["name", "metric", "slice", "value", "ci_low", "threshold", "verdict", "detail"]]
        if gate
        else pd.DataFrame()
    )
    shown = all_rows[all_rows["metric"].isin(metrics) & ~all_rows["model"].str.contains("_vs_")]
    cells = shown.assign(
        cell=[_cell(v, lo, hi) for v, lo, hi in zip(shown["value"], shown["ci_low"], shown["ci_high"])]
    )
    intervals = cells.pivot_table(index="model", columns="metric", values="cell", aggfunc="first").reset_index()
    intervals = intervals[["model"] + [m for m in metrics if m in intervals]]
    sections = [
        ("Run", "\n".join(f"- **{key}**: {value}" for key, value in context.items())),
        ("Gate", _md_table(gate_frame) + "\n\n{gate}"),
        ("Headline metrics: value [95% bootstrap interval over users]", _md_table(intervals) + "\n\n{metrics}"),
        (
            "Candidate vs champion (relative change)",
            (_md_table(comparison[["metric", "value", "ci_low", "ci_high"]]) + "\n\n{vs_champion}")
            if not comparison.empty
            else "_no champion: first promotion_",
        ),
        ("Calibration", "{calibration}"),
        ("Slices", _md_table(pd.DataFrame(lift)) + "\n\n{slices}"),
    ]
    if has_curve:
        sections.append(
            (
                "Diversity: the MMR λ trade-off (candidate, served path)",
                _md_table(lambda_curve.round(4)) + "\n\n{diversity}",
            )
        )
    body = "\n\n".join(f"## {title}\n\n{text}" for title, text in sections)
    relative = {name: f"![{name}]({path.name})" for name, path in plots.items()}
    inline = {name: markdown_image(path, name) for name, path in plots.items()}
    path = directory / "report.md"
    path.write_text("# Evaluation report\n\n" + body.format(**relative) + "\n")
    return Report(path=path, markdown_inline="# Evaluation report\n\n" + body.format(**inline), plots=plots)


def _cell(value: float, low: float, high: float) -> str:
    if value is None or pd.isna(value):
        return ""
    if low is None or pd.isna(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def _slice_lift(table: pd.DataFrame, metric: str, baseline: str) -> list[dict]:
    rows = table[(table["metric"] == metric) & (table["slice"] != "all")]
    pivot = rows.pivot_table(index="slice", columns="model", values="value", aggfunc="first")
    out = []
    for slice_, row in pivot.iterrows():
        cand, base = row.get("candidate"), row.get(baseline)
        lift = None if cand is None or base is None or pd.isna(cand) or pd.isna(base) or base == 0 else cand / base - 1
        out.append({"slice": slice_, "candidate": _clean(cand), baseline: _clean(base), "lift": lift})
    return out


def write_metrics_json(path: Path, table: pd.DataFrame, extra: dict[str, dict[str, float]], k: int = 10) -> Path:
    """``{model: {metric: value}}`` for slice ``all`` (what ``dvc metrics show``/``diff`` read), plus
    ``candidate_vs_champion`` relative changes and ``extra`` groups (e.g. latency)."""
    wide = headline(table, k).set_index("model")
    document: dict[str, dict[str, object]] = {
        model: {metric: _clean(float(value)) for metric, value in row.items() if not pd.isna(value)}
        for model, row in wide.iterrows()
    }
    comparison = table[(table["slice"] == "all") & (table["model"].str.contains("_vs_"))]
    for model, group in comparison.groupby("model"):
        document[model] = {m: _clean(float(v)) for m, v in zip(group["metric"], group["value"]) if not pd.isna(v)}
    for group, values in extra.items():
        document.setdefault(group, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True))
    tmp.replace(path)
    return path
