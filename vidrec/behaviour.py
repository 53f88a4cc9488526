"""Behavioural structure derived from interactions: histories, co-engagement, hashed ids.

Pure NumPy/pandas so the same code builds training examples and serving state.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

PAD = -1


def id_bucket(video_id: str, buckets: int) -> int:
    """A stable hashed id in [1, buckets); 0 is reserved for "no id" (cold items)."""
    digest = hashlib.blake2b(video_id.encode(), digest_size=8).digest()
    return 1 + int.from_bytes(digest, "little") % (buckets - 1)


def histories_before(
    impressions: pd.DataFrame, clicks: pd.DataFrame, item_index: dict[str, int], length: int
) -> np.ndarray:
    """For each impression, the item indices of the user's last ``length`` clicks strictly
    before the impression's ``ts`` (most recent last), padded with -1 on the left."""
    out = np.full((len(impressions), length), PAD, dtype=np.int64)
    if len(impressions) == 0 or len(clicks) == 0:
        return out
    clicks = clicks.sort_values("ts", kind="stable")
    click_groups = {
        user: (g["ts"].to_numpy(), g["video_id"].map(item_index).fillna(PAD).to_numpy(np.int64))
        for user, g in clicks.groupby("user_key", sort=False)
    }
    imp_ts = impressions["ts"].to_numpy()
    for user, rows in impressions.groupby("user_key", sort=False).indices.items():
        if user not in click_groups:
            continue
        ts, items = click_groups[user]
        ends = np.searchsorted(ts, imp_ts[rows], side="left")
        for row, end in zip(rows, ends):
            recent = items[max(0, end - length):end]
            if len(recent):
                out[row, length - len(recent):] = recent
    return out


def latest_histories(clicks: pd.DataFrame, length: int) -> dict[str, list[str]]:
    """Each user's last ``length`` clicked video_ids, oldest first (serving state)."""
    clicks = clicks.sort_values("ts", kind="stable")
    return {
        user: g["video_id"].tolist()[-length:]
        for user, g in clicks.groupby("user_key", sort=False)
    }


def co_engaged_neighbours(
    clicks: pd.DataFrame, video_ids: list[str], per_item: int, seed: int
) -> np.ndarray:
    """(N, per_item) indices of items clicked by the same users, sampled by co-click count;
    -1 where an item has no co-engaged neighbour."""
    index = {v: i for i, v in enumerate(video_ids)}
    pairs = clicks[["user_key", "video_id"]].drop_duplicates()
    pairs = pairs[pairs["video_id"].isin(index)]
    joined = pairs.merge(pairs, on="user_key", suffixes=("", "_other"))
    joined = joined[joined["video_id"] != joined["video_id_other"]]
    counts = joined.groupby(["video_id", "video_id_other"]).size()
    rng = np.random.default_rng(seed)
    out = np.full((len(video_ids), per_item), PAD, dtype=np.int64)
    for video_id, group in counts.groupby(level=0):
        others = group.index.get_level_values(1).map(index).to_numpy()
        weights = group.to_numpy(dtype=float)
        out[index[video_id]] = rng.choice(others, size=per_item, p=weights / weights.sum())
    return out
