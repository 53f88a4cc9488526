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
            recent = items[max(0, end - length) : end]
            if len(recent):
                out[row, length - len(recent) :] = recent
    return out


def latest_histories(clicks: pd.DataFrame, length: int) -> dict[str, list[str]]:
    """Each user's last ``length`` clicked video_ids, oldest first (serving state)."""
    clicks = clicks.sort_values("ts", kind="stable")
    return {user: g["video_id"].tolist()[-length:] for user, g in clicks.groupby("user_key", sort=False)}


def co_engaged_neighbours(clicks: pd.DataFrame, video_ids: list[str], per_item: int, seed: int) -> np.ndarray:
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


def engagement_vectors(impressions: pd.DataFrame, video_ids: list[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's engagement profile: its column of the user × item click matrix, compressed by a
    truncated SVD to ``dim`` numbers (row-aligned with ``video_ids``), and whether it has one.

    Items clicked by the same users get similar vectors, so this is the co-engagement signal in a
    dense form the content encoder can be aligned with (the CB2CF idea: content predicts
    collaborative vectors, which carries over to items nobody has clicked). Clicks are divided by
    the square root of how often the logging policy showed the item, so exposure does not dominate.
    NumPy's SVD is exact and fast at catalogue sizes the encoder trains on; a sparse solver would
    only pay off far beyond that.
    """
    index = {v: i for i, v in enumerate(video_ids)}
    shown = impressions[impressions["video_id"].isin(index)]
    out = np.zeros((len(video_ids), dim), dtype=np.float32)
    has = np.zeros(len(video_ids), dtype=bool)
    clicks = shown[shown["clicked"]]
    if clicks.empty:
        return out, has
    users = {u: k for k, u in enumerate(clicks["user_key"].unique())}
    matrix = np.zeros((len(users), len(video_ids)), dtype=np.float64)
    np.add.at(matrix, (clicks["user_key"].map(users).to_numpy(), clicks["video_id"].map(index).to_numpy()), 1.0)
    exposure = np.bincount(shown["video_id"].map(index).to_numpy(), minlength=len(video_ids)).astype(float)
    matrix /= np.sqrt(np.maximum(exposure, 1.0))
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)  # heavy users do not dominate
    _, s, vt = np.linalg.svd(matrix, full_matrices=False)
    k = min(dim, len(s))
    out[:, :k] = (vt[:k].T * s[:k]).astype(np.float32)
    has = matrix.sum(axis=0) > 0
    out[~has] = 0.0
    return out, has


def _session_contributions(
    impressions: pd.DataFrame, embeddings: np.ndarray, item_index: dict[str, int]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per session: user, start time, impressions, and Σ (clicked − click rate at that position)
    × item embedding. The position rate is what an average user clicks there, so a skip at the top
    says more about taste than a skip at the bottom of a slate."""
    position_rate = impressions.groupby("position")["clicked"].mean()
    residual = impressions["clicked"].to_numpy(float) - impressions["position"].map(position_rate).to_numpy(float)
    rows = impressions["video_id"].map(item_index)
    known = rows.notna().to_numpy()
    contrib = np.zeros((len(impressions), embeddings.shape[1]), dtype=np.float64)
    contrib[known] = residual[known, None] * embeddings[rows[known].to_numpy(np.int64)]
    codes, sessions = pd.factorize(impressions["session_id"])
    sums = np.zeros((len(sessions), embeddings.shape[1]))
    np.add.at(sums, codes, contrib)
    meta = pd.DataFrame({"session_id": sessions, "code": np.arange(len(sessions))})
    first = impressions.groupby("session_id", sort=False).agg(
        user_key=("user_key", "first"), ts=("ts", "min"), n=("event_id", "size")
    )
    meta = meta.join(first, on="session_id")
    return meta, sums


def taste_before_sessions(
    impressions: pd.DataFrame,
    events: pd.DataFrame,
    embeddings: np.ndarray,
    item_index: dict[str, int],
    prior: float = 20.0,
) -> np.ndarray:
    """For each row of ``impressions``, the user's taste in content space from their sessions in
    ``events`` that started strictly before the row's session (never the row's own outcome):
    Σ (clicked − position click rate) × item embedding / (impressions + ``prior``).

    A dense summary of everything a user saw and skipped, which a click history alone misses;
    ``prior`` shrinks users with little data towards no opinion. (N, D) float32."""
    out = np.zeros((len(impressions), embeddings.shape[1]), dtype=np.float32)
    if len(impressions) == 0 or len(events) == 0:
        return out
    meta, sums = _session_contributions(events, embeddings, item_index)
    meta = meta.sort_values(["user_key", "ts", "session_id"], kind="stable")
    ordered = sums[meta["code"].to_numpy()]
    users = meta["user_key"].to_numpy()
    starts = np.r_[True, users[1:] != users[:-1]]
    cumulative = np.cumsum(ordered, axis=0)
    counts = np.cumsum(meta["n"].to_numpy(float))
    # Exclusive cumulative sums per user: subtract the running total at each user's first session.
    group = np.cumsum(starts) - 1
    base_sum = (cumulative - ordered)[starts][group]
    base_count = (counts - meta["n"].to_numpy(float))[starts][group]
    before = (cumulative - ordered - base_sum) / ((counts - meta["n"].to_numpy(float) - base_count) + prior)[:, None]
    taste = pd.DataFrame(before, index=meta["session_id"].to_numpy())
    found = impressions["session_id"].isin(taste.index).to_numpy()
    if found.any():
        out[found] = taste.loc[impressions.loc[found, "session_id"]].to_numpy(np.float32)
    return out


def latest_tastes(
    events: pd.DataFrame, embeddings: np.ndarray, item_index: dict[str, int], prior: float = 20.0
) -> dict[str, np.ndarray]:
    """Each user's taste over all their sessions in ``events`` (serving state, like
    ``latest_histories``)."""
    if len(events) == 0:
        return {}
    meta, sums = _session_contributions(events, embeddings, item_index)
    totals = pd.DataFrame(sums).groupby(meta["user_key"].to_numpy()).sum()
    counts = meta.groupby("user_key")["n"].sum()
    return {u: (totals.loc[u].to_numpy() / (counts[u] + prior)).astype(np.float32) for u in totals.index}
