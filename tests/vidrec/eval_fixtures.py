"""Small random evaluation tables shared by the evaluation tests (deterministic by seed), the suite run
over them once per module, and the lookups the references use."""

import duckdb
import numpy as np
import pandas as pd

from vidrec.evaluation.tables import load_table

CATEGORIES = ("music", "sports", "cooking")


def random_tables(
    seed: int = 0,
    users: int = 40,
    sessions: int = 160,
    slate: int = 12,
    items: int = 60,
    k: int = 5,
    models: tuple[str, ...] = ("candidate", "champion"),
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    user_of = rng.integers(users, size=sessions)
    rows = []
    for s in range(sessions):
        shown = rng.choice(items, size=slate, replace=False)
        for position, item in enumerate(shown):
            clicked = bool(rng.random() < 0.25)
            rows.append(
                {
                    "event_id": f"e{s:04d}-{position:02d}",
                    "session_id": f"s{s:04d}",
                    "user_key": f"u{user_of[s]:03d}",
                    "video_id": f"v{item:03d}",
                    "position": position,
                    "propensity": float(rng.uniform(0.005, 0.2)),
                    "clicked": clicked,
                    "watch_s": float(rng.uniform(1, 30)) if clicked else 0.0,
                    "converted": bool(clicked and rng.random() < 0.3),
                    "cold_item": bool(item % 7 == 0),
                    "new_user": bool(user_of[s] % 5 == 0),
                    "category": CATEGORIES[item % 3],
                    "is_product": bool(item % 2 == 0),
                    "is_live_host": bool(item % 4 == 1),
                }
            )
    impressions = pd.DataFrame(rows)
    scores, top_k = [], []
    for m, model in enumerate(models):
        p = np.clip(
            0.25
            + 0.3 * (impressions["clicked"].to_numpy() - 0.25) * (m + 1) / 2
            + rng.normal(0, 0.15, len(impressions)),
            0.001,
            0.999,
        )
        p = np.clip(np.round(p, 2), 0.01, 0.99)  # rounding creates tied scores
        scores.append(
            pd.DataFrame(
                {
                    "model": model,
                    "event_id": impressions["event_id"],
                    "p_click": p,
                    "p_watch_s": p * 10,
                    "p_conversion": np.clip(np.round(p * rng.uniform(0, 0.5, len(p)), 3), 0.001, 1),
                    "score": p + rng.normal(0, 0.01, len(p)),
                }
            )
        )
        for s in range(sessions):
            chosen = rng.choice(items, size=k, replace=False)
            for rank, item in enumerate(chosen, start=1):
                click = float(rng.uniform(0, 0.4))
                top_k.append(
                    {
                        "model": model,
                        "session_id": f"s{s:04d}",
                        "user_key": f"u{user_of[s]:03d}",
                        "video_id": f"v{item:03d}",
                        "rank": rank,
                        "oracle_click": click,
                        "oracle_watch_s": click * 12.0,
                        "oracle_conversion": click * 0.1,
                    }
                )
    catalogue = pd.DataFrame(
        {"video_id": [f"v{i:03d}" for i in range(items)], "engaged_users": rng.integers(0, users, size=items)}
    )
    return {
        "impressions": impressions,
        "scores": pd.concat(scores, ignore_index=True),
        "top_k": pd.DataFrame(top_k),
        "catalogue": catalogue,
    }


K, RESAMPLES, TOL = 5, 20, 1e-9
CHECKED_REPS = (0, 1, 7, 20)


def loaded(tables: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    """A fresh connection holding ``tables`` (name -> frame) as the suite's input tables."""
    con = duckdb.connect()
    for name, frame in tables.items():
        load_table(con, name, frame)
    return con


def rep_value(reps: pd.DataFrame, rep: int, model: str, metric: str, slice_: str = "all") -> float:
    row = reps[(reps["rep"] == rep) & (reps["model"] == model) & (reps["metric"] == metric) & (reps["slice"] == slice_)]
    assert len(row) == 1, (rep, model, metric, slice_)
    return float(row["value"].iloc[0])


def user_weights(weights: pd.DataFrame, rep: int) -> dict[str, float]:
    rows = weights[weights["rep"] == rep]
    return dict(zip(rows["user_key"], rows["w"]))


def joined(tables: dict, model: str) -> pd.DataFrame:
    scores = tables["scores"][tables["scores"]["model"] == model]
    return scores.merge(tables["impressions"], on="event_id")
