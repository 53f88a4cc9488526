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

from models.fit.steps import RankerInputs, item_tensors, ranker_inputs
from models.fit.trainers import embed_items
from models.nn.config import RankerConfig
from models.offline.batches import Chunking, FrameSink, SignalCounts, TableSink
from models.offline.diversity_curve import curve_sessions, lambda_curve
from models.offline.served import history_slice_rows, path_from_trained, retrieval_rows
from models.offline.sessions import (
    INCUMBENT,
    MAX_TOP_K_SESSIONS,
    SessionContext,
    answer_in_batches,
    sampled_sessions,
)
from models.offline.top_k import WorldTruth
from models.serving.bundle import load_bundle
from models.serving.path import PathSettings, ServedPath
from models.serving.scoring import RankerScorer
from models.serving.weights import TrainedModel
from vidrec.engagement import histories_before
from vidrec.items import id_buckets
from vidrec.splits import temporal_split

log = logging.getLogger(__name__)
__all__ = ["INCUMBENT", "MAX_TOP_K_SESSIONS", "Chunking", "HoldoutTables", "holdout_tables"]

LATENCY_BATCH = 1024  # impressions per timed scoring call (the gate's latency budget refers to it)
LATENCY_REPEATS = 50


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
    impression_count: int = 0  # hold-out impressions scored (the frames are empty when they went to a sink)
    logged_sessions: int = 0  # hold-out sessions in the log (top_k covers ``sessions``, at most MAX_TOP_K_SESSIONS)
    signal_shares: dict = field(default_factory=dict)  # Availability's shares, counted over every batch

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


def _impressions(holdout: pd.DataFrame, items: pd.DataFrame, fit_users: set[str], known: set[str]) -> pd.DataFrame:
    attrs = items.set_index("video_id")[["category", "is_product", "is_live_host"]]
    frame = holdout[
        ["event_id", "session_id", "user_key", "video_id", "position", "propensity", "clicked", "watch_s", "converted"]
    ].join(attrs, on="video_id")
    frame["cold_item"] = ~frame["video_id"].isin(known)
    frame["new_user"] = ~frame["user_key"].isin(fit_users)
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


def _score_frame(model: str, event_ids: pd.Series, p_click, p_watch_s, p_conversion, score) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": model,
            "event_id": event_ids.to_numpy(),
            "p_click": p_click,
            "p_watch_s": p_watch_s,
            "p_conversion": p_conversion,
            "score": score,
        }
    )


def _score_batches(
    paths: dict[str, ServedPath],
    inputs: RankerInputs,
    holdout: pd.DataFrame,
    clicks: pd.DataFrame,
    history_length: int,
    attrs: tuple[pd.DataFrame, set[str], set[str]],
    rng: np.random.Generator,
    size: int,
    sink: TableSink,
) -> tuple[SignalCounts, np.ndarray, np.ndarray]:
    """Score the hold-out ``size`` impressions at a time with every path and the two reference orderings,
    sending each batch's impressions and scores to ``sink``; the random ordering's noise is drawn batch by
    batch from ``rng``, the same numbers as one draw over the whole hold-out. Returns the signal counts and
    the first batch's histories and candidates (the latency probe)."""
    counts, probe = SignalCounts(), (np.zeros((0, history_length), np.int64), np.zeros(0, np.int64))
    for start in range(0, len(holdout), size):
        part = holdout.iloc[start : start + size]
        history = histories_before(part, clicks, inputs.item_index, history_length)
        candidates = part["video_id"].map(inputs.item_index).to_numpy(np.int64)
        users, events = inputs.users(part["user_key"]), part["event_id"]
        for name, path in paths.items():
            s = path.scorer.score(history, candidates, user_ids=users)
            sink.append("scores", _score_frame(name, events, s.p_click, s.expected_watch_s, s.p_conversion, s.score))
        noise = rng.random(len(part))
        sink.append("scores", _score_frame("random", events, noise, noise, noise, noise))
        propensity = part["propensity"].to_numpy(float)
        position = -part["position"].to_numpy(float)
        sink.append("scores", _score_frame("logging_policy", events, propensity, propensity, propensity, position))
        impressions = _impressions(part, *attrs)
        counts.add(impressions)
        sink.append("impressions", impressions)
        if start == 0:
            probe = (history[:LATENCY_BATCH], candidates[:LATENCY_BATCH])
        del history, candidates, impressions  # the batch's arrays go before the next is made
    return counts, *probe


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
    chunking: Chunking = Chunking(),
    sink: TableSink | None = None,
) -> HoldoutTables:
    """Score the hold-out window with the candidate (``ranker`` and ``retrieval`` over ``embeddings``, as
    its bundle would serve them), the stored champion in ``champion_dir`` (if any) and two reference
    orderings (``random``, seeded, and ``logging_policy``, the logged propensity); top K per session from
    each served path, the candidate's whole-catalogue ranking, ``random`` and ``most_popular``
    (training-window popularity), and with ``truth`` the oracle's.

    Impressions are scored and sessions answered in batches (``chunking``). Without a ``sink`` the rows are
    kept and returned as frames (with ``allowed``); with one (``batches.DuckDBSink``) they go there batch by
    batch and the returned tables hold only the counts, the served rows and the sessions."""
    config = RankerConfig(**ranker.config)
    inputs = ranker_inputs(items, embeddings, events, config)
    split = temporal_split(events)
    fit, holdout = split.part(events, "fit"), split.part(events, "holdout").reset_index(drop=True)
    clicks = events[events["clicked"]]
    unknown = holdout.loc[~holdout["video_id"].isin(inputs.item_index), "video_id"]
    if len(unknown):
        raise ValueError(
            f"hold-out events name videos missing from the item table, e.g. {sorted(set(unknown))[:5]}; "
            "interactions should have quarantined them"
        )
    paths = {"candidate": path_from_trained(ranker, retrieval, inputs.embeddings, inputs.buckets, items, path_settings)}
    if champion_dir is not None:
        paths["champion"] = champion_path(champion_dir, items)
    rng = np.random.default_rng(seed)
    frames = FrameSink() if sink is None else None
    out = sink if sink is not None else frames
    attrs = (items, set(fit["user_key"]), inputs.known)
    counts, probe_history, probe_candidates = _score_batches(
        paths, inputs, holdout, clicks, config.history_length, attrs, rng, chunking.impressions, out
    )
    fit_clicks = fit[fit["clicked"]]
    engaged = fit_clicks.groupby("video_id")["user_key"].nunique()
    engaged_users = items["video_id"].map(engaged).fillna(0).to_numpy(np.float64)
    session_clicks = holdout[holdout["clicked"]].groupby("session_id")["video_id"].agg(set).to_dict()
    row_clicks = {sid: {inputs.item_index[v] for v in vids} for sid, vids in session_clicks.items()}
    sessions = sampled_sessions(holdout, rng)
    curve_rows = curve_sessions(sessions["session_id"].to_numpy(), row_clicks, seed)  # the λ curve's sessions
    started = time.perf_counter()
    answered = answer_in_batches(
        SessionContext(paths, holdout, clicks, inputs, items, truth, engaged_users, k, config.history_length),
        sessions,
        rng,
        chunking.sessions,
        out,
        keep_allowed=frames is not None,
        keep=curve_rows,
    )
    log.info("served paths answered %d sessions in %.1f s", len(answered.sessions), time.perf_counter() - started)
    sessions = answered.sessions
    served_rows = pd.concat(
        [
            retrieval_rows(name, sessions, a, row_clicks, path_settings.n_candidates, seed=seed)
            for name, a in answered.answers.items()
        ]
        + [history_slice_rows(answered.served_top_k, answered.answers, sessions, session_clicks, k)],
        ignore_index=True,
    )
    catalogue = pd.DataFrame({"video_id": items["video_id"], "engaged_users": engaged_users.astype(np.int64)})
    out.append("catalogue", catalogue)
    if answered.kept is None:  # no hold-out sessions
        answered.kept = (
            np.zeros((0, config.history_length), np.int64),
            np.zeros(0, np.int64),
            np.zeros((0, len(items)), bool),
        )
    curve = lambda_curve(
        paths["candidate"],
        sessions["session_id"].to_numpy()[curve_rows],
        *answered.kept,
        row_clicks,
        items["category"].to_numpy(object),
        k,
        seed=seed,
    )
    return HoldoutTables(
        impressions=frames.frame("impressions") if frames else pd.DataFrame(),
        scores=frames.frame("scores") if frames else pd.DataFrame(),
        top_k=frames.frame("top_k") if frames else pd.DataFrame(),
        catalogue=catalogue,
        n_users=int(fit["user_key"].nunique()),
        latency=scoring_latency(paths["candidate"].scorer, probe_history, probe_candidates),
        served_rows=served_rows,
        path={"n_candidates": path_settings.n_candidates, "prior_share": path_settings.prior_share},
        sessions=sessions,
        allowed=answered.allowed,
        impression_count=counts.rows,
        logged_sessions=int(holdout["session_id"].nunique()),
        signal_shares=counts.shares(),
        lambda_curve=curve,
    )
