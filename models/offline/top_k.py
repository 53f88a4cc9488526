"""Each hold-out session's top K from the orderings that are not a served path: the oracle (the world's true
utility), most-popular, random and the incumbent's logged slate; the published-and-unseen mask they obey;
and the demo world's truth (oracle + user ids) that prices every shown slot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vidrec.privacy import pseudonymise
from vidrec.world.oracle import Oracle


@dataclass
class WorldTruth:
    """The demo world's oracle and the map from pseudonymised user_key to the world's user_id."""

    oracle: Oracle
    user_ids: dict[str, str]


def simulable(truth: WorldTruth | None, items: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the items whose outcomes can be simulated. Without a world, all; with one, the items of its
    ground truth: an upload the service landed is in the catalogue but not in the world, whose behaviour
    model therefore cannot say how its users would respond to it, so the top K lists leave it out."""
    if truth is None:
        return np.ones(len(items), dtype=bool)
    return items["video_id"].isin(set(truth.oracle.items["video_id"])).to_numpy()


def best_rows(scorer_scores: np.ndarray, available: np.ndarray, k: int) -> np.ndarray:
    """(S, k) item rows of the k best available items per session (ties broken by item row)."""
    masked = np.where(available, scorer_scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return order


def session_frame(
    holdout: pd.DataFrame, history: np.ndarray, items: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    first = holdout.reset_index(drop=True).groupby("session_id", sort=True).head(1)
    sessions = first[["session_id", "user_key", "ts"]].reset_index(drop=True)
    published = pd.to_datetime(items["published_at"], utc=True).to_numpy()
    available = published[None, :] <= sessions["ts"].to_numpy()[:, None]
    return sessions, history[first.index.to_numpy()], available


def top_k_frame(
    model: str,
    sessions: pd.DataFrame,
    rows: np.ndarray,
    available: np.ndarray,
    items: pd.DataFrame,
    truth: WorldTruth | None,
) -> pd.DataFrame:
    k = rows.shape[1]
    frame = pd.DataFrame(
        {
            "model": model,
            "session_id": np.repeat(sessions["session_id"].to_numpy(), k),
            "user_key": np.repeat(sessions["user_key"].to_numpy(), k),
            "video_id": items["video_id"].to_numpy()[np.maximum(rows, 0).ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(sessions)),
        }
    )
    # A session with fewer than k published (or allowed: -1) items shows only those.
    shown = (rows >= 0) & np.take_along_axis(available, np.maximum(rows, 0), axis=1)
    frame = frame[shown.ravel()].reset_index(drop=True)
    if truth is None:
        frame[["oracle_click", "oracle_watch_s", "oracle_conversion"]] = np.nan
        return frame
    ui = truth.oracle.user_index(frame["user_key"].map(truth.user_ids).to_numpy())
    ii = truth.oracle.item_index(frame["video_id"].to_numpy())
    click = truth.oracle.click_prob_idx(ui, ii, frame["rank"].to_numpy() - 1)
    frame["oracle_click"] = click
    frame["oracle_watch_s"] = click * truth.oracle.watch_s_given_click_idx(ui, ii)
    frame["oracle_conversion"] = click * truth.oracle.conversion_prob_idx(ui, ii)
    return frame


def logged_rows(holdout: pd.DataFrame, sessions: pd.DataFrame, item_index: dict[str, int], k: int) -> np.ndarray:
    """(S, k) item rows of each session's logged slate in position order (-1 past its end): the incumbent,
    the system vidrec replaces, as an arm of the simulated A/B."""
    logged = holdout[holdout["session_id"].isin(set(sessions["session_id"]))]
    logged = logged.sort_values(["session_id", "position"], kind="stable").drop_duplicates(["session_id", "video_id"])
    rank = logged.groupby("session_id").cumcount().to_numpy()
    keep = rank < k
    out = np.full((len(sessions), k), -1, dtype=np.int64)
    row_of = {sid: i for i, sid in enumerate(sessions["session_id"])}
    out[logged["session_id"].map(row_of).to_numpy()[keep], rank[keep]] = (
        logged["video_id"].map(item_index).to_numpy(np.int64)[keep]
    )
    return out


def oracle_rows(
    truth: WorldTruth, sessions: pd.DataFrame, items: pd.DataFrame, available: np.ndarray, k: int
) -> np.ndarray:
    ui = truth.oracle.user_index(sessions["user_key"].map(truth.user_ids).to_numpy())
    known = simulable(truth, items)  # ``available`` already excludes the rest; they need an index all the same
    ii = truth.oracle.item_index(items["video_id"].where(known, truth.oracle.items["video_id"].iloc[0]).to_numpy())
    utility = truth.oracle.utility_idx(ui[:, None], ii[None, :])
    return best_rows(utility, available & known[None, :], k)


def world_truth(directory: Path, events: pd.DataFrame, key: str) -> WorldTruth | None:
    """The oracle of a generated demo world (None for other data), with every hold-out user mapped
    back from its pseudonymised ``user_key`` by re-hashing the world's user ids with the same key."""
    if not (directory / "ground_truth" / "users.parquet").is_file():
        return None
    oracle = Oracle.load(directory)
    user_ids = {pseudonymise(u, key): u for u in oracle.users["user_id"].astype(str)}
    unknown = sorted(set(events["user_key"]) - user_ids.keys())
    if unknown:
        raise ValueError(
            f"{len(unknown)} user_keys in the events are not users of the world in {directory} "
            f"under this pseudonymisation key (e.g. {unknown[:3]}); was the world regenerated or "
            "the key changed since the events were ingested?"
        )
    return WorldTruth(oracle=oracle, user_ids=user_ids)
