"""Each hold-out session's top K, a batch of sessions at a time.

Every ordering (the served paths, the candidate's whole-catalogue ranking, random, most-popular, and with a
demo world the oracle and the logged slates) is a (sessions, catalogue) computation: the published-and-unseen
mask, the random scores, the popularity broadcast, the oracle's utilities. Done for all sampled sessions at
once, each is MAX_TOP_K_SESSIONS x items (400 MB per float64 array at the large world's 10,000 items);
done ``size`` sessions at a time, a batch's arrays are dropped before the next batch's are made. The top-K
rows go to the sink batch by batch; what is kept is per session and small: the served paths' answers (at most
N + prior candidates each) and their top K, for retrieval recall and the history slices.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.fit.steps import RankerInputs
from models.offline.batches import TableSink
from models.offline.served import SessionAnswers, answer_sessions
from models.offline.top_k import WorldTruth, best_rows, logged_rows, oracle_rows, simulable, top_k_frame
from models.serving.path import ServedPath
from vidrec.engagement import histories_before

log = logging.getLogger(__name__)

# Whole-catalogue top K costs sessions x items scorings per model; beyond this many hold-out sessions a
# seeded sample is used (all ~2,300 demo sessions fit; impression-level metrics always use every event).
MAX_TOP_K_SESSIONS = 5000
# The logging policy's own slates as a top K (the system vidrec replaces); `logging_policy` names its scores.
INCUMBENT = "incumbent"


@dataclass
class SessionContext:
    paths: dict[str, ServedPath]
    holdout: pd.DataFrame
    clicks: pd.DataFrame
    inputs: RankerInputs
    items: pd.DataFrame
    truth: WorldTruth | None
    engaged_users: np.ndarray  # (items,) training-window popularity, most-popular's score
    k: int
    history_length: int


@dataclass
class Answered:
    sessions: pd.DataFrame  # (session_id, user_key, ts) of the sessions top_k covers
    answers: dict[str, SessionAnswers]  # per served path, every session's answer
    served_top_k: pd.DataFrame  # the served paths' top-K rows (the history slices read them)
    allowed: np.ndarray | None  # (sessions, items) when kept (the in-memory tables), else None
    # The rows of the sessions named by ``answer_in_batches``'s ``keep`` (the λ curve's): histories (S, H),
    # user buckets (S,) and what each request may show (S, items), before its own history is taken out.
    kept: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def sampled_sessions(holdout: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Each hold-out session's first impression (session_id, user_key, ts, row: its hold-out row), in hold-out
    order; a seeded sample of MAX_TOP_K_SESSIONS of them when there are more."""
    first = holdout.groupby("session_id", sort=True).head(1)
    sessions = first[["session_id", "user_key", "ts"]].reset_index(drop=True).assign(row=first.index.to_numpy())
    if len(sessions) > MAX_TOP_K_SESSIONS:
        keep = np.sort(rng.choice(len(sessions), size=MAX_TOP_K_SESSIONS, replace=False))
        log.info(
            "top K per session for a seeded sample of %d of %d hold-out sessions", MAX_TOP_K_SESSIONS, len(sessions)
        )
        sessions = sessions.iloc[keep].reset_index(drop=True)
    return sessions


def _merge(parts: list[SessionAnswers], k: int) -> SessionAnswers:
    if not parts:
        return SessionAnswers(np.zeros((0, k), np.int64), [], [])
    return SessionAnswers(
        np.concatenate([p.top for p in parts]),
        [c for p in parts for c in p.candidates],
        [r for p in parts for r in p.retrieval],
    )


def _batch(
    ctx: SessionContext,
    batch: pd.DataFrame,
    rng: np.random.Generator,
    published: np.ndarray,
    sink: TableSink,
    keep: np.ndarray,
) -> tuple[dict[str, SessionAnswers], list[pd.DataFrame], np.ndarray, tuple]:
    """One batch of sessions: every ordering's top K to ``sink``; returns the served answers, the served top-K
    frames, the batch's published-and-unseen mask and the (history, buckets, published) rows at ``keep``."""
    items, truth, k = ctx.items, ctx.truth, ctx.k
    history = histories_before(ctx.holdout.loc[batch["row"]], ctx.clicks, ctx.inputs.item_index, ctx.history_length)
    # A world's oracle knows only its own items, so the lists leave the others out.
    available = (published[None, :] <= batch["ts"].to_numpy()[:, None]) & simulable(truth, items)[None, :]
    buckets = ctx.inputs.users(batch["user_key"])
    answers = {name: answer_sessions(path, history, buckets, available, k) for name, path in ctx.paths.items()}
    upper = answer_sessions(ctx.paths["candidate"], history, buckets, available, k, exhaustive=True)
    kept = (history[keep], buckets[keep], available[keep])  # fancy indexing copies before the edit below
    # Every list obeys the served path's constraints: published before the session, not in the history
    # the request carries (the service's default exclude_seen), so the oracle is the best such list.
    for i, line in enumerate(history):
        available[i, line[line >= 0]] = False
    served = [top_k_frame(name, batch, a.top, available, items, truth) for name, a in answers.items()]
    for frame in served:
        sink.append("top_k", frame)
    sink.append("top_k", top_k_frame("candidate_catalogue", batch, upper.top, available, items, truth))
    del upper
    random_rows = best_rows(rng.random(available.shape), available, k)
    sink.append("top_k", top_k_frame("random", batch, random_rows, available, items, truth))
    # Most-popular: the same top K for everyone (among items already published), the floor a
    # personalised model must beat on catalogue recall; ties broken by item row (deterministic).
    popular_rows = best_rows(np.broadcast_to(ctx.engaged_users, available.shape), available, k)
    sink.append("top_k", top_k_frame("most_popular", batch, popular_rows, available, items, truth))
    if truth is not None:
        oracle = oracle_rows(truth, batch, items, available, k)
        sink.append("top_k", top_k_frame("oracle", batch, oracle, available, items, truth))
        if ctx.holdout["position"].notna().all():  # the logged slates' order; a log without positions has none
            everything = np.broadcast_to(simulable(truth, items), available.shape)  # what it showed, seen and all
            logged = logged_rows(ctx.holdout, batch, ctx.inputs.item_index, k)
            sink.append("top_k", top_k_frame(INCUMBENT, batch, logged, everything, items, truth))
    return answers, served, available, kept


def answer_in_batches(
    ctx: SessionContext,
    sessions: pd.DataFrame,
    rng: np.random.Generator,
    size: int,
    sink: TableSink,
    keep_allowed: bool = False,
    keep: np.ndarray | None = None,
) -> Answered:
    """Every session of ``sessions`` (``sampled_sessions``) answered by every ordering, ``size`` sessions at a
    time. ``rng`` draws the random ordering's scores batch by batch (the same numbers as one (sessions, items)
    draw). ``keep``: sorted positions in ``sessions`` whose inputs are returned (``Answered.kept``)."""
    keep = np.zeros(0, np.int64) if keep is None else np.asarray(keep, np.int64)
    published = pd.to_datetime(ctx.items["published_at"], utc=True).to_numpy()
    parts: dict[str, list[SessionAnswers]] = {name: [] for name in ctx.paths}
    served, allowed, kept = [], [], []
    for start in range(0, len(sessions), size):
        batch = sessions.iloc[start : start + size].reset_index(drop=True)
        mine = keep[(keep >= start) & (keep < start + len(batch))] - start
        answers, frames, available, rows = _batch(ctx, batch, rng, published, sink, mine)
        kept.append(rows)
        for name, a in answers.items():
            parts[name].append(a)
        served += frames
        if keep_allowed:
            allowed.append(available)
        del available
    columns = ["session_id", "user_key", "ts"]
    return Answered(
        sessions=sessions[columns],
        answers={name: _merge(p, ctx.k) for name, p in parts.items()},
        served_top_k=pd.concat(served, ignore_index=True) if served else pd.DataFrame(),
        allowed=(np.concatenate(allowed) if allowed else np.zeros((0, len(ctx.items)), bool)) if keep_allowed else None,
        kept=tuple(np.concatenate(part) for part in zip(*kept)) if kept else None,
    )
