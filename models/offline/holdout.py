"""Hold-out scoring for evaluation: the candidate and the champion score the same later window.

Produces the evaluation tables (vidrec/evaluation/tables.py): the logged impressions with their
slice attributes, every model's per-impression predictions, every model's top K per session (with the
world oracle's expected outcomes when the data is a demo world), the catalogue's popularity, and the
candidate's scoring latency on a fixed batch. The candidate's and the champion's top K are what their
served path (models.serving.path) answers at the session's start; ``candidate_catalogue`` is the
candidate's ranker over the whole catalogue, the upper bound its retrieval stage is measured against.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.fit.steps import item_tensors, ranker_inputs
from models.fit.trainers import embed_items
from models.nn.config import RankerConfig
from models.offline.served import answer_sessions, history_slice_rows, path_from_trained, retrieval_rows
from models.serving.bundle import load_bundle
from models.serving.path import PathSettings, ServedPath
from models.serving.scoring import RankerScorer
from models.serving.weights import TrainedModel
from vidrec.engagement import histories_before
from vidrec.items import id_buckets
from vidrec.privacy import pseudonymise
from vidrec.splits import temporal_split
from vidrec.world.oracle import Oracle

log = logging.getLogger(__name__)

LATENCY_BATCH = 1024  # impressions per timed scoring call (the gate's latency budget refers to it)
LATENCY_REPEATS = 50
# Whole-catalogue top K costs sessions x items scorings per model; beyond this many hold-out sessions a
# seeded sample is used (all ~2,300 demo sessions fit; impression-level metrics always use every event).
MAX_TOP_K_SESSIONS = 5000
# The logging policy's own slates as a top K (the system vidrec replaces); `logging_policy` names its scores.
INCUMBENT = "incumbent"


@dataclass
class WorldTruth:
    """The demo world's oracle and the map from pseudonymised user_key to the world's user_id."""

    oracle: Oracle
    user_ids: dict[str, str]


@dataclass
class HoldoutTables:
    impressions: pd.DataFrame
    scores: pd.DataFrame
    top_k: pd.DataFrame
    catalogue: pd.DataFrame
    n_users: int
    latency: dict = field(default_factory=dict)
    served_rows: pd.DataFrame = field(default_factory=pd.DataFrame)  # retrieval recall, history slices
    path: dict = field(default_factory=dict)  # the path settings the served rows used
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)  # the sessions top_k covers (session_id, user_key, ts)
    allowed: np.ndarray | None = None  # (sessions, items): published before the session and not in its history

    @property
    def catalogue_size(self) -> int:
        return len(self.catalogue)


def champion_path(directory: Path, items: pd.DataFrame) -> ServedPath:
    """Rebuild a stored bundle's served path over today's item table: its encoder embeds every current
    item (new uploads included) and only the items it trained on keep ids."""
    bundle = load_bundle(directory)
    with torch.inference_mode():
        embeddings = embed_items(bundle.encoder, item_tensors(items)).astype(np.float32)
    known = set(bundle.items.loc[bundle.items["id_bucket"] != 0, "video_id"])
    buckets = id_buckets(items["video_id"].tolist(), known, RankerConfig(**bundle.config["ranker"]).id_buckets)
    return bundle.served_path(embeddings=embeddings, id_buckets=buckets, items=items)


def _impressions(holdout: pd.DataFrame, items: pd.DataFrame, fit: pd.DataFrame, known: set[str]) -> pd.DataFrame:
    attrs = items.set_index("video_id")[["category", "is_product", "is_live_host"]]
    frame = holdout[
        ["event_id", "session_id", "user_key", "video_id", "position", "propensity", "clicked", "watch_s", "converted"]
    ].join(attrs, on="video_id")
    frame["cold_item"] = ~frame["video_id"].isin(known)
    frame["new_user"] = ~frame["user_key"].isin(set(fit["user_key"]))
    frame["is_product"] = frame["is_product"].astype(bool)
    frame["is_live_host"] = frame["is_live_host"].astype(bool)
    return frame


def _top_k(scorer_scores: np.ndarray, available: np.ndarray, k: int) -> np.ndarray:
    """(S, k) item rows of the k best available items per session (ties broken by item row)."""
    masked = np.where(available, scorer_scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return order


def _session_frame(
    holdout: pd.DataFrame, history: np.ndarray, items: pd.DataFrame
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    first = holdout.reset_index(drop=True).groupby("session_id", sort=True).head(1)
    sessions = first[["session_id", "user_key", "ts"]].reset_index(drop=True)
    published = pd.to_datetime(items["published_at"], utc=True).to_numpy()
    available = published[None, :] <= sessions["ts"].to_numpy()[:, None]
    return sessions, history[first.index.to_numpy()], available


def _top_k_frame(
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


def _logged_rows(holdout: pd.DataFrame, sessions: pd.DataFrame, item_index: dict[str, int], k: int) -> np.ndarray:
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


def _oracle_top_k(
    truth: WorldTruth, sessions: pd.DataFrame, items: pd.DataFrame, available: np.ndarray, k: int
) -> np.ndarray:
    ui = truth.oracle.user_index(sessions["user_key"].map(truth.user_ids).to_numpy())
    ii = truth.oracle.item_index(items["video_id"].to_numpy())
    utility = truth.oracle.utility_idx(ui[:, None], ii[None, :])
    return _top_k(utility, available, k)


def scoring_latency(scorer: RankerScorer, history: np.ndarray, candidates: np.ndarray) -> dict:
    """p50/p99 wall time of scoring a fixed batch of impressions (after warm-up calls)."""
    batch = min(LATENCY_BATCH, len(candidates))
    hist, cand = history[:batch], candidates[:batch]
    for _ in range(3):
        scorer.score(hist, cand)
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        scorer.score(hist, cand)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "batch": batch,
        "repeats": LATENCY_REPEATS,
        "p50_ms": float(np.percentile(times, 50)),
        "p99_ms": float(np.percentile(times, 99)),
    }


def holdout_tables(
    ranker: TrainedModel,
    retrieval: TrainedModel,
    items: pd.DataFrame,
    embeddings: pd.DataFrame,
    events: pd.DataFrame,
    champion_dir: Path | None = None,
    truth: WorldTruth | None = None,
    k: int = 10,
    seed: int = 0,
    path_settings: PathSettings = PathSettings(),
) -> HoldoutTables:
    """Score the hold-out window with the candidate (``ranker`` and ``retrieval`` over ``embeddings``, as
    its bundle would serve them), the stored champion in ``champion_dir`` (if any) and two reference
    orderings (``random``, seeded, and ``logging_policy``, the logged propensity); top K per session from
    each served path, the candidate's whole-catalogue ranking, ``random`` and ``most_popular``
    (training-window popularity), and with ``truth`` the oracle's."""
    config = RankerConfig(**ranker.config)
    inputs = ranker_inputs(items, embeddings, events, config)
    split = temporal_split(events)
    fit, holdout = split.part(events, "fit"), split.part(events, "holdout").reset_index(drop=True)
    clicks = events[events["clicked"]]
    history = histories_before(holdout, clicks, inputs.item_index, config.history_length)
    candidates = holdout["video_id"].map(inputs.item_index)
    if candidates.isna().any():
        unknown = sorted(set(holdout.loc[candidates.isna(), "video_id"]))[:5]
        raise ValueError(
            f"hold-out events name videos missing from the item table, e.g. {unknown}; "
            "interactions should have quarantined them"
        )
    candidates = candidates.to_numpy(np.int64)
    paths = {"candidate": path_from_trained(ranker, retrieval, inputs.embeddings, inputs.buckets, items, path_settings)}
    if champion_dir is not None:
        paths["champion"] = champion_path(champion_dir, items)
    rng = np.random.default_rng(seed)
    score_frames = []
    for name, path in paths.items():
        s = path.scorer.score(history, candidates, user_ids=inputs.users(holdout["user_key"]))
        score_frames.append(
            pd.DataFrame(
                {
                    "model": name,
                    "event_id": holdout["event_id"],
                    "p_click": s.p_click,
                    "p_watch_s": s.expected_watch_s,
                    "p_conversion": s.p_conversion,
                    "score": s.score,
                }
            )
        )
    noise = rng.random(len(holdout))
    score_frames.append(
        pd.DataFrame(
            {
                "model": "random",
                "event_id": holdout["event_id"],
                "p_click": noise,
                "p_watch_s": noise,
                "p_conversion": noise,
                "score": noise,
            }
        )
    )
    propensity = holdout["propensity"].to_numpy(float)
    score_frames.append(
        pd.DataFrame(
            {
                "model": "logging_policy",
                "event_id": holdout["event_id"],
                "p_click": propensity,
                "p_watch_s": propensity,
                "p_conversion": propensity,
                "score": -holdout["position"].to_numpy(float),
            }
        )
    )
    sessions, session_history, available = _session_frame(holdout, history, items)
    if len(sessions) > MAX_TOP_K_SESSIONS:
        keep = np.sort(rng.choice(len(sessions), size=MAX_TOP_K_SESSIONS, replace=False))
        log.info(
            "top K per session for a seeded sample of %d of %d hold-out sessions", MAX_TOP_K_SESSIONS, len(sessions)
        )
        sessions, session_history, available = (
            sessions.iloc[keep].reset_index(drop=True),
            session_history[keep],
            available[keep],
        )
    buckets = inputs.users(sessions["user_key"])
    started = time.perf_counter()
    answers = {name: answer_sessions(path, session_history, buckets, available, k) for name, path in paths.items()}
    upper = answer_sessions(paths["candidate"], session_history, buckets, available, k, exhaustive=True)
    log.info("served paths answered %d sessions in %.1f s", len(sessions), time.perf_counter() - started)
    # Every list obeys the served path's constraints: published before the session, not in the history
    # the request carries (the service's default exclude_seen), so the oracle is the best such list.
    available = available.copy()
    for i, line in enumerate(session_history):
        available[i, line[line >= 0]] = False
    top_frames = [_top_k_frame(name, sessions, a.top, available, items, truth) for name, a in answers.items()]
    top_frames.append(_top_k_frame("candidate_catalogue", sessions, upper.top, available, items, truth))
    random_rows = _top_k(rng.random(available.shape), available, k)
    top_frames.append(_top_k_frame("random", sessions, random_rows, available, items, truth))
    fit_clicks = fit[fit["clicked"]]
    engaged = fit_clicks.groupby("video_id")["user_key"].nunique()
    engaged_users = items["video_id"].map(engaged).fillna(0).to_numpy(np.float64)
    # Most-popular: the same top K for everyone (among items already published), the floor a
    # personalised model must beat on catalogue recall; ties broken by item row (deterministic).
    popular_rows = _top_k(np.broadcast_to(engaged_users, available.shape), available, k)
    top_frames.append(_top_k_frame("most_popular", sessions, popular_rows, available, items, truth))
    if truth is not None:
        top_frames.append(
            _top_k_frame(
                "oracle", sessions, _oracle_top_k(truth, sessions, items, available, k), available, items, truth
            )
        )
        if holdout["position"].notna().all():  # the logged slates' order; a log without positions has none
            everything = np.ones_like(available)  # what it showed, seen items and all
            top_frames.append(
                _top_k_frame(
                    INCUMBENT, sessions, _logged_rows(holdout, sessions, inputs.item_index, k), everything, items, truth
                )
            )
    top_k = pd.concat(top_frames, ignore_index=True)
    session_clicks = holdout[holdout["clicked"]].groupby("session_id")["video_id"].agg(set).to_dict()
    row_clicks = {sid: {inputs.item_index[v] for v in vids} for sid, vids in session_clicks.items()}
    served_rows = pd.concat(
        [
            retrieval_rows(name, sessions, a, row_clicks, path_settings.n_candidates, seed=seed)
            for name, a in answers.items()
        ]
        + [history_slice_rows(top_k, answers, sessions, session_clicks, k)],
        ignore_index=True,
    )
    catalogue = pd.DataFrame({"video_id": items["video_id"], "engaged_users": engaged_users.astype(np.int64)})
    return HoldoutTables(
        impressions=_impressions(holdout, items, fit, inputs.known),
        scores=pd.concat(score_frames, ignore_index=True),
        top_k=top_k,
        catalogue=catalogue,
        n_users=int(fit["user_key"].nunique()),
        latency=scoring_latency(paths["candidate"].scorer, history, candidates),
        served_rows=served_rows,
        path={"n_candidates": path_settings.n_candidates, "prior_share": path_settings.prior_share},
        sessions=sessions,
        allowed=available,
    )


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
