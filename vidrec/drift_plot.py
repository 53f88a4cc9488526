"""The drift bar chart: each drift measure as a share of its block threshold (used by
``vidrec.drift``, which re-exports ``drift_bars``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vidrec import plots  # noqa: F401  (selects the headless matplotlib backend first)


def drift_bars(table: pd.DataFrame, path: Path) -> Path:
    """Each measure as a share of its block threshold, with the warn line per bar; a bar past 1
    blocks promotion (when significant). Unjudged measures show as empty."""
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    colours = {"ok": "#55a868", "warn": "#dd8452", "block": "#c44e52", "insufficient": "#bbbbbb"}
    x = np.arange(len(table))
    share = [0.0 if pd.isna(v) else v / b if b > 0 else 0.0 for v, b in zip(table["value"], table["block"])]
    ax.bar(x, share, color=[colours[level] for level in table["level"]])
    ax.scatter(
        x,
        table["warn"] / table["block"].where(table["block"] > 0, 1.0),
        marker="_",
        s=400,
        color="black",
        label="warn threshold",
    )
    ax.axhline(1.0, color="#c44e52", linestyle="--", linewidth=1, label="block threshold")
    ax.set_xticks(x, table["name"])
    ax.set(title="Drift, training window vs new data", ylabel="value / block threshold")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
