"""Behavioural features: taste vectors use only earlier sessions; engagement vectors follow co-clicks."""

import numpy as np
import pandas as pd

from vidrec.engagement import engagement_vectors, latest_tastes, taste_before_sessions


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for s in range(40):
        user = f"u{s % 5}"
        for p in range(4):
            rows.append(
                {
                    "event_id": f"e{s}-{p}",
                    "session_id": f"s{s:02d}",
                    "user_key": user,
                    "ts": pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(minutes=10 * s, milliseconds=p),
                    "position": p,
                    "video_id": f"v{rng.integers(0, 6)}",
                    "clicked": bool(rng.random() < 0.4),
                }
            )
    return pd.DataFrame(rows)


def test_taste_uses_only_earlier_sessions_of_the_same_user() -> None:
    events = _events()
    index = {f"v{i}": i for i in range(6)}
    embeddings = np.random.default_rng(1).normal(size=(6, 3))
    taste = taste_before_sessions(events, events, embeddings, index, prior=20.0)
    rate = events.groupby("position")["clicked"].mean()
    starts = events.groupby("session_id")["ts"].transform("min")
    for row in (0, 23, 101, 159):
        user, start = events.at[row, "user_key"], starts[row]
        before = events[(events["user_key"] == user) & (starts < start)]
        residual = before["clicked"].to_numpy(float) - before["position"].map(rate).to_numpy()
        expected = (residual[:, None] * embeddings[before["video_id"].map(index)]).sum(0) / (len(before) + 20.0)
        np.testing.assert_allclose(taste[row], expected, atol=1e-6)
    # A user's first session has no earlier evidence (the first five sessions are five users' first).
    assert np.allclose(taste[:20], 0.0) and not np.allclose(taste[20:24], 0.0)
    latest = latest_tastes(events, embeddings, index, prior=20.0)
    assert set(latest) == {f"u{i}" for i in range(5)} and latest["u0"].shape == (3,)


def test_engagement_vectors_place_co_clicked_items_together() -> None:
    # Users 0-9 click items a, b; users 10-19 click c, d; item e is never clicked.
    rows = [
        {"user_key": f"u{u}", "video_id": v, "clicked": True}
        for u in range(20)
        for v in (("a", "b") if u < 10 else ("c", "d"))
    ]
    rows += [{"user_key": "u0", "video_id": "e", "clicked": False}]
    vectors, has = engagement_vectors(pd.DataFrame(rows), ["a", "b", "c", "d", "e"], dim=2)
    assert has.tolist() == [True, True, True, True, False]
    assert np.allclose(vectors[4], 0.0)

    def cos(i: int, j: int) -> float:
        return float(vectors[i] @ vectors[j] / np.linalg.norm(vectors[i]) / np.linalg.norm(vectors[j]))

    assert cos(0, 1) > 0.99 and cos(2, 3) > 0.99 and abs(cos(0, 2)) < 0.01
