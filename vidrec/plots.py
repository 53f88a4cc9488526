"""Small PNG plots for run metadata and reports (matplotlib, headless)."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def training_curves(history: list[dict[str, float]], title: str, path: Path) -> Path:
    """Plots every ``*_loss`` series of an epoch history and writes a PNG."""
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    keys = sorted({k for row in history for k in row if k.endswith("_loss")})
    for key in keys:
        points = [(row["epoch"], row[key]) for row in history if key in row]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key)
    ax.set(title=title, xlabel="epoch", ylabel="loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def markdown_image(path: Path, alt: str) -> str:
    """Inline a PNG as a data URI so the Dagster UI shows it without file access."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{data})"


def metrics_with_intervals(table: list[dict], metrics: list[str], models: list[str], title: str, path: Path) -> Path:
    """One panel per metric: each model's point estimate with its 95% interval as whiskers
    (rows: dicts with model, metric, value, ci_low, ci_high)."""
    cols = max(1, min(4, len(metrics)))
    rows_n = max(1, -(-len(metrics) // cols))  # one blank panel when the data supports none of them
    fig, axes = plt.subplots(rows_n, cols, figsize=(2.8 * cols, 2.9 * rows_n), dpi=100, squeeze=False)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_visible(False)
    if not metrics:
        fig.text(0.5, 0.5, "none of these metrics could be computed from this data", ha="center", fontsize=8)
    for ax, metric in zip(axes.ravel(), metrics):
        rows = [r for r in table if r["metric"] == metric and r["model"] in models and r["value"] is not None]
        for x, row in enumerate(rows):
            low, high = row.get("ci_low"), row.get("ci_high")
            err = None if low is None or high is None or low != low else _whiskers(row["value"], low, high)
            ax.errorbar(
                [x],
                [row["value"]],
                yerr=err,
                fmt="o",
                capsize=4,
                color="#c44e52" if row["model"] == "candidate" else "#4c72b0",
            )
        ax.set_xticks(range(len(rows)), [r["model"] for r in rows], rotation=35, fontsize=7)
        ax.set_title(metric, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _whiskers(value: float, low: float | None, high: float | None) -> list[list[float]]:
    """Error-bar lengths from ``value`` to its interval's ends, never negative: a percentile bootstrap
    interval need not contain the point estimate (a difference of ~0 between identical models sits outside
    an interval of ~0 by float rounding), and matplotlib refuses negative lengths."""
    below = 0.0 if low is None or low != low else max(0.0, value - low)
    above = 0.0 if high is None or high != high else max(0.0, high - value)
    return [[below], [above]]


def relative_changes(rows: list[dict], title: str, path: Path) -> Path:
    """Horizontal bars of relative change vs a baseline with 95% whiskers and a zero line."""
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(rows) + 1.2), dpi=100)
    y = list(range(len(rows)))
    values = [r["value"] or 0.0 for r in rows]
    ax.barh(y, values, color=["#55a868" if v >= 0 else "#c44e52" for v in values], alpha=0.6)
    whiskers = [_whiskers(v, r.get("ci_low"), r.get("ci_high")) for v, r in zip(values, rows)]
    xerr = [[w[0][0] for w in whiskers], [w[1][0] for w in whiskers]]
    ax.errorbar(values, y, xerr=xerr, fmt="none", ecolor="black", capsize=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [r["metric"] for r in rows], fontsize=7)
    ax.set(title=title, xlabel="relative change (95% bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def reliability_diagram(bins: list[dict], heads: list[str], title: str, path: Path) -> Path:
    """Observed rate against mean prediction per bin, one line per model, one panel per head
    (rows: dicts with model, head, mean_pred, observed, n)."""
    fig, axes = plt.subplots(1, len(heads), figsize=(3.4 * len(heads), 3.3), dpi=100, squeeze=False)
    for ax, head in zip(axes[0], heads):
        rows = [r for r in bins if r["head"] == head]
        top = max([r["mean_pred"] for r in rows] + [r["observed"] for r in rows] + [0.05])
        ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=0.8, label="perfect")
        for model in sorted({r["model"] for r in rows}):
            pts = [r for r in rows if r["model"] == model]
            ax.plot([p["mean_pred"] for p in pts], [p["observed"] for p in pts], marker="o", markersize=3, label=model)
        ax.set(title=f"{head}", xlabel="mean prediction", ylabel="observed rate")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def slice_lift(rows: list[dict], title: str, path: Path) -> Path:
    """Bars of relative lift per slice (rows: dicts with slice and lift)."""
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(rows) + 1.2), dpi=100)
    y = list(range(len(rows)))
    lifts = [r["lift"] if r["lift"] is not None else 0.0 for r in rows]
    ax.barh(y, lifts, color=["#55a868" if v >= 0 else "#c44e52" for v in lifts])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [r["slice"] for r in rows], fontsize=7)
    ax.set(title=title, xlabel="relative lift")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def gate_verdicts(rows: list[dict], title: str, path: Path) -> Path:
    """One row per gate rule, coloured by verdict (rows: dicts with name and verdict)."""
    colours = {"pass": "#55a868", "fail": "#c44e52"}
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.0), dpi=100)
    for y, row in enumerate(rows):
        ax.barh(y, 1, color=colours.get(row["verdict"], "#bbbbbb"))
        value = row.get("value")
        shown = "" if value is None or value != value else f"  ({value:.4g}; {row.get('detail', '')})"
        ax.text(0.02, y, f"{row['verdict']}: {row['name']}{shown}", va="center", fontsize=7)
    ax.set_yticks([])
    ax.set_xticks([])
    ax.invert_yaxis()
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def lambda_tradeoff(rows: list[dict], ndcg: str, title: str, path: Path) -> Path:
    """The MMR trade-off: ``ndcg`` (a key of each row) against intra-list diversity, one point per λ, and
    category coverage per λ beside it."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5), dpi=100)
    xs, ys = [r["intra_list_diversity"] for r in rows], [r[ndcg] for r in rows]
    left.plot(xs, ys, marker="o")
    for row, x, y in zip(rows, xs, ys):
        left.annotate(f"λ={row['lambda']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    left.set(title=title, xlabel="intra-list diversity (1 - cos)", ylabel=ndcg)
    left.grid(alpha=0.3)
    right.plot([r["lambda"] for r in rows], [r["category_coverage"] for r in rows], marker="o", label="coverage")
    right.plot([r["lambda"] for r in rows], [r[ndcg] for r in rows], marker="s", label=ndcg)
    right.set(title="by λ", xlabel="λ (1 = plain ranking)")
    right.invert_xaxis()
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    return _save(fig, path)
