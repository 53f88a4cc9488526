"""Retrieval training keeps one history window per ``history_length`` clicks of a user: with the every-position
loss those windows train each of the user's transitions exactly once."""

import numpy as np
import pandas as pd

from models.fit.trainers import click_arrays


def _transitions(history: np.ndarray, item: int) -> set[tuple[int, int]]:
    """(previous click, next click) pairs one example trains: inside its history, and history → item."""
    seq = [int(i) for i in history if i >= 0] + [int(item)]
    return set(zip(seq, seq[1:]))


def test_window_ends_cover_every_transition_once() -> None:
    ts = pd.Timestamp("2026-01-01")
    lengths = {"a": 45, "b": 7, "c": 1, "d": 20}
    rows = [(u, f"{u}{k}", ts + pd.Timedelta(minutes=k)) for u, n in lengths.items() for k in range(n)]
    clicks = pd.DataFrame(rows, columns=["user_key", "video_id", "ts"]).sample(frac=1.0, random_state=0)
    index = {v: i for i, v in enumerate(sorted(clicks["video_id"]))}
    arrays = click_arrays(clicks, clicks, index, np.ones(len(index), np.int64), 20, np.zeros(len(index), np.float32))
    keep = arrays["window_end"]
    # a: the 45th, 25th and 5th clicks; b, c, d: their last click alone.
    assert keep.sum() == 3 + 1 + 1 + 1
    every, kept = set(), []
    for history, item in zip(arrays["history"], arrays["item"]):
        every |= _transitions(history, item)
    for history, item in zip(arrays["history"][keep], arrays["item"][keep]):
        kept.extend(_transitions(history, item))
    assert len(kept) == len(set(kept))  # no transition twice
    assert set(kept) == every  # a window's last history click → its target joins it to the window after
    assert len(every) == sum(n - 1 for n in lengths.values())
