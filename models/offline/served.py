"""Offline scoring of the served path: each hold-out session answered by the same ``ServedPath`` the
service answers ``/recommend`` with.

Per model it gives the served top K (the primary row), optionally the whole-catalogue ranking by the
same ranker (the upper bound the retrieval stage costs against), and per session the candidate set,
from which ``retrieval_rows`` measures retrieval recall@N: the share of the session's clicked items the
candidate stage returned. Sessions of users with no history take the prior fallback; they are reported
as their own slice (``user_history=none``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.nn.ranker import BlendWeights
from models.serving.commerce import CommerceTerms
from models.serving.path import PathSettings, ServedPath
from models.serving.weights import TrainedModel, load_ranker, load_retrieval
from vidrec.items import item_code_matrix, item_feature_matrix

RESULT_COLUMNS = ("slice", "model", "metric", "value", "ci_low", "ci_high", "resamples")


def path_from_trained(
    ranker: TrainedModel,
    retrieval: TrainedModel,
    embeddings: np.ndarray,
    id_buckets: np.ndarray,
    items: pd.DataFrame,
    settings: PathSettings = PathSettings(),
    live: pd.DataFrame | None = None,
) -> ServedPath:
    """The served path of a freshly trained (not yet bundled) ranker and retrieval model; ``live`` is the
    schedule its live terms read (None: nobody is live)."""
    config = ranker.config
    codes = item_code_matrix(items, int(config["code_buckets"])) if config.get("commerce") else None
    return ServedPath(
        load_ranker(Path(ranker.weights_path), ranker.config),
        BlendWeights(**ranker.extra["blend"]),
        load_retrieval(Path(retrieval.weights_path), retrieval.config),
        embeddings,
        id_buckets,
        item_feature_matrix(items),
        int(ranker.config["history_length"]),
        int(retrieval.config["history_length"]),
        settings,
        item_codes=codes,
        commerce=CommerceTerms.from_items(items, live),
    )


@dataclass
class SessionAnswers:
    top: np.ndarray  # (S, k) item rows best first, -1 where fewer than k were allowed
    candidates: list[np.ndarray]  # per session, every row the ranker scored
    retrieval: list[str]  # per session: "all", "prior" or the index kind


def answer_sessions(
    path: ServedPath,
    histories: np.ndarray,
    user_buckets: np.ndarray,
    available: np.ndarray,
    k: int,
    exhaustive: bool = False,
) -> SessionAnswers:
    """``histories`` (S, H) item rows, -1 padding, oldest first; ``available`` (S, items) the rows
    published before each session: what a request at the session's start would have been allowed."""
    top = np.full((len(histories), k), -1, dtype=np.int64)
    candidates, how = [], []
    for i, (line, bucket) in enumerate(zip(histories, user_buckets)):
        served = path.recommend(line[line >= 0].tolist(), int(bucket), k, allowed=available[i], exhaustive=exhaustive)
        top[i, : len(served.rows)] = served.rows
        candidates.append(served.candidates)
        how.append(served.retrieval)
    return SessionAnswers(top, candidates, how)


def _bootstrap(values: np.ndarray, users: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean over ``values`` resampling users (the suite's unit)."""
    if resamples <= 0 or len(values) == 0:
        return float("nan"), float("nan")
    codes, inverse = np.unique(users, return_inverse=True)
    rng = np.random.default_rng(seed)
    sums, counts = np.bincount(inverse, values, len(codes)), np.bincount(inverse, minlength=len(codes))
    draws = rng.multinomial(len(codes), np.full(len(codes), 1 / len(codes)), size=resamples)
    means = (draws @ sums) / np.maximum(draws @ counts, 1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def retrieval_rows(
    model: str,
    sessions: pd.DataFrame,
    answers: SessionAnswers,
    clicked: dict[str, set[int]],
    n: int,
    resamples: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """``retrieval_recall_at_<n>`` per session with a click (share of its clicked rows among the
    candidates), for all sessions with a bootstrap interval over users, and point estimates for the
    sessions of users with and without history (how the candidates were made)."""
    rows, values, users, cold = [], [], [], []
    for i, session in enumerate(sessions["session_id"]):
        relevant = clicked.get(session)
        if not relevant:
            continue
        values.append(len(relevant & set(answers.candidates[i].tolist())) / len(relevant))
        users.append(sessions["user_key"].iat[i])
        cold.append(answers.retrieval[i] == "prior")
    values_a, cold_a = np.asarray(values, float), np.asarray(cold, bool)
    metric = f"retrieval_recall_at_{n}"
    if len(values_a):
        low, high = _bootstrap(values_a, np.asarray(users, dtype=object), resamples, seed)
        rows.append(("all", model, metric, float(values_a.mean()), low, high, resamples))
        for name, part in (("user_history=none", values_a[cold_a]), ("user_history=some", values_a[~cold_a])):
            if len(part):
                rows.append((name, model, metric, float(part.mean()), float("nan"), float("nan"), 0))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def history_slice_rows(
    top_k: pd.DataFrame,
    answers: dict[str, SessionAnswers],
    sessions: pd.DataFrame,
    clicked_ids: dict[str, set[str]],
    k: int,
) -> pd.DataFrame:
    """Served catalogue recall and NDCG@k (the suite's definitions) for sessions of users with and without
    history, point estimates: the cold-user fallback's own slice."""
    rows = []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for model, part in top_k[top_k["model"].isin(list(answers))].groupby("model"):
        lists = part.sort_values("rank").groupby("session_id")["video_id"].agg(list)
        prior = dict(zip(sessions["session_id"], (h == "prior" for h in answers[model].retrieval)))
        per = {"user_history=none": ([], []), "user_history=some": ([], [])}
        for session, shown in lists.items():
            relevant = clicked_ids.get(session)
            if not relevant:
                continue
            hits = np.array([v in relevant for v in shown[:k]], dtype=float)
            recall, ndcg = per["user_history=none" if prior.get(session) else "user_history=some"]
            recall.append(hits.sum() / len(relevant))
            ndcg.append((hits * discounts[: len(hits)]).sum() / discounts[: min(len(relevant), k)].sum())
        for name, (recall, ndcg) in per.items():
            if recall:
                rows.append((name, model, f"catalogue_recall_at_{k}", float(np.mean(recall)), np.nan, np.nan, 0))
                rows.append((name, model, f"catalogue_ndcg_at_{k}", float(np.mean(ndcg)), np.nan, np.nan, 0))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
