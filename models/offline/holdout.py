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
from models.offline.diversity_curve import lambda_curve
from models.offline.served import answer_sessions, history_slice_rows, path_from_trained, retrieval_rows
from models.offline.top_k import (
    WorldTruth,
    best_rows,
    logged_rows,
    oracle_rows,
    session_frame,
    simulable,
    top_k_frame,
)
from models.serving.bundle import load_bundle
from models.serving.path import PathSettings, ServedPath
from models.serving.scoring import RankerScorer
from models.serving.weights import TrainedModel
from vidrec.engagement import histories_before
from vidrec.items import id_buckets
from vidrec.splits import temporal_split

log = logging.getLogger(__name__)

LATENCY_BATCH = 1024  # impressions per timed scoring call (the gate's latency budget refers to it)
LATENCY_REPEATS = 50
# Whole-catalogue top K costs sessions x items scorings per model; beyond this many hold-out sessions a
# seeded sample is used (all ~2,300 demo sessions fit; impression-level metrics always use every event).
MAX_TOP_K_SESSIONS = 5000
# The logging policy's own slates as a top K (the system vidrec replaces); `logging_policy` names its scores.
INCUMBENT = "incumbent"


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
    # The candidate's MMR trade-off (models.offline.diversity_curve): one row per λ.
    lambda_curve: pd.DataFrame = field(default_factory=pd.DataFrame)
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
    sessions, session_history, available = session_frame(holdout, history, items)
    available = available & simulable(truth, items)[None, :]  # a world's oracle knows only its own items
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
    available_before_history = available  # what a request may show; the path drops the history itself
    # Every list obeys the served path's constraints: published before the session, not in the history
    # the request carries (the service's default exclude_seen), so the oracle is the best such list.
    available = available.copy()
    for i, line in enumerate(session_history):
        available[i, line[line >= 0]] = False
    top_frames = [top_k_frame(name, sessions, a.top, available, items, truth) for name, a in answers.items()]
    top_frames.append(top_k_frame("candidate_catalogue", sessions, upper.top, available, items, truth))
    random_rows = best_rows(rng.random(available.shape), available, k)
    top_frames.append(top_k_frame("random", sessions, random_rows, available, items, truth))
    fit_clicks = fit[fit["clicked"]]
    engaged = fit_clicks.groupby("video_id")["user_key"].nunique()
    engaged_users = items["video_id"].map(engaged).fillna(0).to_numpy(np.float64)
    # Most-popular: the same top K for everyone (among items already published), the floor a
    # personalised model must beat on catalogue recall; ties broken by item row (deterministic).
    popular_rows = best_rows(np.broadcast_to(engaged_users, available.shape), available, k)
    top_frames.append(top_k_frame("most_popular", sessions, popular_rows, available, items, truth))
    if truth is not None:
        top_frames.append(
            top_k_frame("oracle", sessions, oracle_rows(truth, sessions, items, available, k), available, items, truth)
        )
        if holdout["position"].notna().all():  # the logged slates' order; a log without positions has none
            everything = np.broadcast_to(simulable(truth, items), available.shape)  # what it showed, seen and all
            top_frames.append(
                top_k_frame(
                    INCUMBENT, sessions, logged_rows(holdout, sessions, inputs.item_index, k), everything, items, truth
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
    curve = lambda_curve(
        paths["candidate"],
        sessions["session_id"].to_numpy(),
        session_history,
        buckets,
        available_before_history,
        row_clicks,
        items["category"].to_numpy(object),
        k,
        seed=seed,
    )
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
        lambda_curve=curve,
    )
