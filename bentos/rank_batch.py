"""/rank's batching: requests grouped by user (hashed id + history rows), so each user's history is encoded
once (and remembered by the path's state cache) and all of their candidates are scored in one pass."""

from __future__ import annotations

import numpy as np

from models.serving.path import ServedPath
from models.serving.scoring import Scores


def grouped_scores(path: ServedPath, users: list[tuple[int, tuple[int, ...]]], rows: list[list[int]]) -> list[Scores]:
    """Scores of each request's candidate ``rows`` for its user ``(bucket, history rows)``, in request order."""
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for i, user in enumerate(users):
        groups.setdefault(user, []).append(i)
    scored: list[Scores | None] = [None] * len(users)
    for (bucket, history), members in groups.items():
        candidates = np.concatenate([np.asarray(rows[i], dtype=np.int64) for i in members])
        scores = path.score(list(history), bucket, candidates)
        start = 0
        for i in members:
            span = slice(start, start + len(rows[i]))
            start = span.stop
            scored[i] = Scores(
                scores.p_click[span], scores.expected_watch_s[span], scores.p_conversion[span], scores.score[span]
            )
    return scored
