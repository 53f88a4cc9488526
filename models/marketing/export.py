"""Audiences for configured campaigns, exported for an ad platform (Parquet and CSV) with a summary
per campaign (size, the model's predicted lift over random targeting, or why it was not exported)
and a bar plot; the ``marketing_audiences`` asset is this plus its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.marketing.audience import AudienceTooSmall, AudienceUsers, Objective, user_scores
from models.serving.bundle import load_bundle
from vidrec.plots import plt  # vidrec.plots picks the headless backend

AUDIENCE_COLUMNS = ("campaign", "rank", "user_key", "score")
SUMMARY_COLUMNS = ("campaign", "videos", "status", "size", "predicted_lift", "reason")


@dataclass(frozen=True)
class Campaign:
    name: str
    video_ids: tuple[str, ...]


def product_campaigns(items: pd.DataFrame) -> list[Campaign]:
    """One campaign per category: all its product videos (the default when none are configured)."""
    products = items[items["is_product"].astype(bool)]
    return [
        Campaign(f"products-{category}", tuple(sorted(group["video_id"])))
        for category, group in products.groupby("category", sort=True)
    ]


def _summary_row(campaign: Campaign, status: str, size: int, lift: float, reason: str) -> dict[str, object]:
    return {
        "campaign": campaign.name,
        "videos": len(campaign.video_ids),
        "status": status,
        "size": size,
        "predicted_lift": lift,
        "reason": reason,
    }


def export_audiences(
    bundle_dir: Path,
    campaigns: list[Campaign] | None,
    out_dir: Path,
    n: int,
    min_size: int,
    objective: Objective = "conversion",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(audiences, summary). A campaign whose audience would be below ``min_size`` or that has no video in
    the catalogue is not exported; its summary row says why. Writes ``audiences.parquet`` and
    ``audiences.csv`` (only pseudonymised keys) and ``summary.csv`` under ``out_dir``."""
    bundle = load_bundle(bundle_dir)
    items = bundle.items.reset_index(drop=True)
    row_of = {v: i for i, v in enumerate(items["video_id"])}
    campaigns = product_campaigns(items) if campaigns is None else campaigns
    users = AudienceUsers.from_histories(bundle.histories, row_of, bundle.user_buckets)
    path = bundle.served_path()
    parts, summary = [], []
    for campaign in campaigns:
        rows = np.array([row_of[v] for v in campaign.video_ids if v in row_of], dtype=np.int64)
        if len(rows) == 0:
            summary.append(_summary_row(campaign, "skipped", 0, float("nan"), "no video of it is in the catalogue"))
            continue
        size = min(n, len(users))
        if size < min_size:
            reason = str(AudienceTooSmall(f"{size} eligible users for n={n}, below the minimum of {min_size}"))
            summary.append(_summary_row(campaign, "too_small", 0, float("nan"), reason))
            continue
        scores = user_scores(path, users, rows, objective)
        order = np.argsort(-scores, kind="stable")[:size]
        # The model's own expectation: mean predicted rate in the audience over the mean of everyone.
        lift = float(scores[order].mean() / max(scores.mean(), 1e-12))
        summary.append(_summary_row(campaign, "exported", size, lift, ""))
        parts.append(
            pd.DataFrame(
                {
                    "campaign": campaign.name,
                    "rank": np.arange(1, size + 1),
                    "user_key": [users.user_keys[i] for i in order],
                    "score": scores[order],
                }
            )
        )
    audiences = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(AUDIENCE_COLUMNS))
    table = pd.DataFrame(summary, columns=list(SUMMARY_COLUMNS))
    out_dir.mkdir(parents=True, exist_ok=True)
    audiences.to_parquet(out_dir / "audiences.parquet", index=False)
    audiences.to_csv(out_dir / "audiences.csv", index=False)
    table.to_csv(out_dir / "summary.csv", index=False)
    return audiences, table


def lift_plot(summary: pd.DataFrame, path: Path) -> Path:
    """Bars of each exported campaign's predicted lift over random targeting."""
    shown = summary[summary["status"] == "exported"]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.bar(shown["campaign"], shown["predicted_lift"], color="tab:blue")
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set(title="predicted lift over random targeting", ylabel="lift", xlabel="campaign")
    ax.tick_params(axis="x", rotation=45, labelsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
