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


def metric_bars(rows: list[dict], metric: str, title: str, path: Path) -> Path:
    """One bar per model for ``metric`` (rows: dicts with ``model`` and the metric)."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    names = [r["model"] for r in rows]
    ax.bar(names, [r.get(metric) or 0.0 for r in rows], color="#4c72b0")
    ax.set(title=title, ylabel=metric)
    ax.grid(axis="y", alpha=0.3)
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


