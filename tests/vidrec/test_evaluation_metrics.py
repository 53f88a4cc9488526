"""DuckDB metric SQL against independent references (scikit-learn, hand-worked examples)."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score, roc_auc_score

from vidrec.evaluation.metrics import evaluate_models, load_scores


def _scores(model: str, sessions: list[list[tuple[float, bool]]]) -> pd.DataFrame:
    rows = []
    for s, slate in enumerate(sessions):
        for position, (score, clicked) in enumerate(slate):
            rows.append({"model": model, "event_id": f"e{s}-{position}", "session_id": f"s{s}", "user_key": f"u{s}",
                         "video_id": f"v{position:02d}", "position": position, "clicked": clicked,
                         "watch_s": 3.0 if clicked else 0.0, "converted": False, "p_click": score, "score": score})
    return pd.DataFrame(rows)


def test_click_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(400), 1)  # rounding creates many ties
    clicked = rng.random(400) < 0.3 + 0.4 * scores
    frame = _scores("m", [list(zip(scores[i:i + 20], clicked[i:i + 20])) for i in range(0, 400, 20)])
    con = duckdb.connect()
    load_scores(con, frame)
    result = evaluate_models(con).iloc[0]
    assert result["click_auc"] == pytest.approx(roc_auc_score(clicked, scores), abs=1e-9)


def test_ndcg_and_top_k_by_hand() -> None:
    # One session: the model puts the only click at rank 2 of 3 → NDCG = 1/log2(3).
    frame = _scores("m", [[(0.9, False), (0.5, True), (0.1, False)]])
    con = duckdb.connect()
    load_scores(con, frame)
    result = evaluate_models(con, k=2).iloc[0]
    assert result["ndcg_at_2"] == pytest.approx(1 / np.log2(3), abs=1e-12)
    assert result["ctr_at_2"] == pytest.approx(0.5, abs=1e-12)
    assert result["watch_s_at_2"] == pytest.approx(1.5, abs=1e-12)


def test_ndcg_matches_sklearn_over_sessions() -> None:
    rng = np.random.default_rng(1)
    sessions, expected = [], []
    for _ in range(30):
        score = rng.random(12)
        clicked = rng.random(12) < 0.25
        clicked[rng.integers(12)] = True
        sessions.append(list(zip(score, clicked)))
        expected.append(ndcg_score([clicked.astype(float)], [score], k=10))
    con = duckdb.connect()
    load_scores(con, _scores("m", sessions))
    assert evaluate_models(con, k=10).iloc[0]["ndcg_at_10"] == pytest.approx(np.mean(expected), abs=1e-9)


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        load_scores(duckdb.connect(), pd.DataFrame({"model": ["m"]}))
