"""The evaluation report's MMR curve: at λ = 1 its NDCG is the plain ranking's, computed by hand from the served
rows; lower λ does not lower intra-list diversity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.offline.diversity_curve import lambda_curve
from models.serving.bundle import load_bundle, write_bundle
from tests.model_fixtures import tiny_contents, untrained_models


def test_lambda_one_is_the_plain_ranking_and_diversity_grows(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", tiny_contents(untrained_models(tmp_path / "m"), n=40))
    path = load_bundle(tmp_path / "b").served_path()
    histories = np.array([[1, 2, -1], [3, -1, -1], [5, 6, 7]])
    available = np.ones((3, len(path)), dtype=bool)
    plain = [path.recommend(h[h >= 0].tolist(), 0, 10, available[i]).rows for i, h in enumerate(histories)]
    clicks = {"s0": {int(plain[0][0])}, "s1": {int(plain[1][3]), 39}, "s2": set()}  # s2: no click, left out
    categories = np.array(["a", "b", "c", "d"] * 10, dtype=object)
    curve = lambda_curve(
        path, np.array(["s0", "s1", "s2"]), histories, np.zeros(3, np.int64), available, clicks, categories,
        lambdas=(1.0, 0.2),
    )  # fmt: skip
    first = curve.iloc[0]
    assert first["lambda"] == 1.0 and first["sessions"] == 2
    # s0: hit at rank 1 -> 1; s1: one hit at rank 4 of 2 clicks -> (1/log2 5) / (1 + 1/log2 3)
    s1 = (39 in plain[1][:10]) / np.log2(2 + int(np.flatnonzero(plain[1] == 39)[0])) if 39 in plain[1] else 0.0
    expected = (1.0 + (1 / np.log2(5) + s1) / (1 + 1 / np.log2(3))) / 2
    assert np.isclose(first["ndcg_at_10"], expected)
    assert curve.iloc[1]["intra_list_diversity"] >= first["intra_list_diversity"]
