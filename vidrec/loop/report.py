"""The loop's per-day report: online CTR, watch time and conversion for vidrec, the frozen day-0 model and
the oracle on the same sessions; exposure of the week's uploads; SNIPS against the next day's CTR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.plots import plt

POLICIES = ("vidrec", "frozen", "oracle")
RESAMPLES = 500


def daily_table(shown: pd.DataFrame) -> pd.DataFrame:
    """One row per (day, policy) from the shown frame (day, policy, session, position, video_id, upload_day
    (NaN for catalogue videos), clicked, watch_s, converted)."""
    arrived = shown["upload_day"]
    recent = arrived.notna() & (arrived <= shown["day"]) & (shown["day"] - 7 < arrived)  # uploaded this week
    frame = shown.assign(recent=recent, recent_click=recent & shown["clicked"])
    table = (
        frame.groupby(["day", "policy"])
        .agg(
            sessions=("session", "nunique"),
            impressions=("clicked", "size"),
            ctr_at_10=("clicked", "mean"),
            watch_s_per_impression=("watch_s", "mean"),
            conversion_rate=("converted", "mean"),
            upload_impressions=("recent", "sum"),
            upload_clicks=("recent_click", "sum"),
        )
        .reset_index()
    )
    table["upload_share"] = table["upload_impressions"] / table["impressions"]
    table["upload_ctr"] = table["upload_clicks"] / table["upload_impressions"].where(table["upload_impressions"] > 0)
    return table


def ratio_interval(shown: pd.DataFrame, day: int, a: str, b: str, seed: int) -> tuple[float, float, float]:
    """CTR of policy ``a`` over ``b`` on ``day`` and its 95% paired bootstrap interval over sessions."""
    one = shown[shown["day"] == day]
    clicks = one.pivot_table(index="session", columns="policy", values="clicked", aggfunc="sum").fillna(0)
    shows = one.pivot_table(index="session", columns="policy", values="clicked", aggfunc="size").fillna(0)
    point = clicks[a].sum() / shows[a].sum() / (clicks[b].sum() / shows[b].sum())
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(clicks), size=(RESAMPLES, len(clicks)))
    ca, cb, sa, sb = (
        frame[p].to_numpy()[picks].sum(axis=1) for frame, p in ((clicks, a), (clicks, b), (shows, a), (shows, b))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (ca / sa) / (cb / sb)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    return float(point), float(low), float(high)


def uploads_exposure_over_oracle(shown: pd.DataFrame) -> float | None:
    """Impressions vidrec gives, on the day after, to the videos uploaded the day before, over the oracle's."""
    after = shown[shown["upload_day"].notna() & (shown["upload_day"] == shown["day"] - 1)]
    counts = after.groupby("policy").size()
    if counts.get("oracle", 0) == 0:
        return None
    return float(counts.get("vidrec", 0) / counts["oracle"])


def snips_within_share(days: list[dict]) -> float | None:
    """Share of days on which the measured CTR fell inside the SNIPS 95% interval estimated the night before."""
    judged = [d for d in days if d.get("snips_low") is not None and d.get("snips_high") is not None]
    if not judged:
        return None
    return sum(d["snips_low"] <= d["ctr_at_10"] <= d["snips_high"] for d in judged) / len(judged)


def plot_days(table: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, metric in zip(axes, ("ctr_at_10", "watch_s_per_impression", "upload_share")):
        for policy in POLICIES:
            rows = table[table["policy"] == policy]
            ax.plot(rows["day"], rows[metric], marker="o", label=policy)
        ax.set_title(metric)
        ax.set_xlabel("day")
    axes[0].legend()
    fig.suptitle("closed loop: vidrec (retrained nightly) vs frozen day-0 model vs oracle, same sessions")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
