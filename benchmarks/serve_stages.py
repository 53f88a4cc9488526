"""Where a /recommend's model work goes: the promoted model loaded in this process (as a worker loads it), the
benchmark's request mix answered through ``LoadedRecommender.recommend`` and each stage's CPU (thread time)
accumulated, plus the ranker pass through the torch module beside the serving one on the same inputs.

Used by ``benchmarks/serve.py`` (the ``model_stages`` key of its JSON), before it starts the server.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PASSES = 3


def _timed(owner: Any, name: str, label: str, spent: dict[str, float]) -> None:
    """Wrap ``owner.name`` so that its thread CPU time adds to ``spent[label]``."""
    inner = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - started

    setattr(owner, name, wrapper)


def _per_request(spent: dict[str, float], n: int) -> dict[str, float]:
    return {label: 1000 * seconds / n for label, seconds in spent.items()}


def _ranker_side_by_side(model: Any, bodies: list[dict], repeats: int = 5) -> dict[str, float]:
    """The torch module's serving pass (``Ranker.score_candidates`` + the blend) and ``FastRanker`` on the same
    users and candidates, alternating, median ms per pass."""
    import torch

    path = model.path
    scorer = path.scorer
    cases = []
    for body in bodies:
        user = model._user(body["user_id"], [])
        if user.rows:
            rows = user.rows[-path.ranker_history :]
            candidates, _ = path.candidates(rows, None, rows)
            cases.append((path._user_state(user.bucket, tuple(rows)), torch.as_tensor(candidates)))
        if len(cases) >= 200:
            break
    if not cases:
        return {}

    def module(state: Any, cand: torch.Tensor) -> None:
        with torch.inference_mode():
            inputs = (scorer.embeddings[cand], scorer.ids[cand], scorer.features[cand])
            out = scorer.ranker.score_candidates(state, *inputs)
            for value in (out.p_click, out.expected_watch_s, out.p_conversion, out.blend(scorer.weights)):
                value.numpy()

    def fast(state: Any, cand: torch.Tensor) -> None:
        scorer.fast.scores(state, scorer.embeddings[cand], scorer.ids[cand], scorer.features[cand])

    times: dict[str, list[float]] = {"module": [], "fast": []}
    for r in range(repeats):
        for label, run in (("module", module), ("fast", fast)) if r % 2 == 0 else (("fast", fast), ("module", module)):
            started = time.thread_time()
            for state, cand in cases:
                run(state, cand)
            times[label].append(1000 * (time.thread_time() - started) / len(cases))
    return {
        "ranker_pass_torch_module_ms": statistics.median(times["module"]),
        "ranker_pass_fast_ms": statistics.median(times["fast"]),
        "ranker_pass_users": len(cases),
        "median_candidates": float(np.median([len(c) for _, c in cases])),
    }


def stage_breakdown(model_dir: Path, tag: str, key: str, root: Path, bodies: list[dict]) -> dict:
    """CPU ms per request of each stage of ``LoadedRecommender.recommend`` over ``bodies`` (median of
    ``PASSES`` passes after one warm-up pass), for a worker with one torch thread and the SQLite state store."""
    import torch

    from bentos import schemas as s
    from bentos.content import SentenceEncoder
    from bentos.recommender import LoadedRecommender
    from bentos.serving_settings import ServingSettings
    from bentos.user_state import UserState

    torch.set_num_threads(1)
    model = LoadedRecommender(model_dir, tag, key, SentenceEncoder(), ServingSettings())
    model.state = UserState.from_env(root, key)
    model.state.ensure_seeded(model)
    requests = [s.RecommendRequest.model_validate(body) for body in bodies]
    spent: dict[str, float] = defaultdict(float)
    path = model.path
    stages: list[tuple[Any, str, str]] = [
        (model, "_user", "user: pseudonymise + history lookup"),
        (model.catalogue, "allowed", "filters"),
        (path, "_user_vector", "retrieval user vector (cached per history)"),
        (path.index, "search", "index search"),
        (path, "candidates", "candidates (vector + search + prior head + merge)"),
        (path, "score", "ranker pass (state cached per history)"),
        (path, "recommend", "served path total"),
    ]
    for owner, name, label in stages:
        _timed(owner, name, label, spent)
    passes: list[dict[str, float]] = []
    for i in range(PASSES + 1):
        spent.clear()
        started = time.thread_time()
        for request in requests:
            model.recommend(request)
        spent["recommend total (LoadedRecommender)"] = time.thread_time() - started
        if i:  # the first pass warms the caches, as the benchmark's warm-up requests do for the server
            passes.append(_per_request(spent, len(requests)))
    medians = {label: statistics.median(p[label] for p in passes) for label in passes[0]}
    cold: dict[str, Callable[[Any], Any]] = {
        "retrieval_user_vector_uncached_ms": lambda u: path.retrieval.user_vector(u.rows, path.retrieval_history),
        "ranker_user_state_uncached_ms": lambda u: path.scorer.user_state(u.rows, path.ranker_history, u.bucket),
    }
    users = [u for u in (model._user(b["user_id"], []) for b in bodies[:400]) if u.rows]
    misses = {}
    for label, run in cold.items():
        started = time.thread_time()
        for user in users:
            run(user)
        misses[label] = 1000 * (time.thread_time() - started) / max(len(users), 1)
    return {
        "ms_per_request": medians,
        "cache_miss_costs": misses,
        **_ranker_side_by_side(model, bodies),
        "requests": len(requests),
        "passes": PASSES,
        "how": "in-process, thread CPU time of each stage (stages nest: candidates holds the vector and the "
        "search; the served path holds candidates and the ranker pass), median of passes",
    }
