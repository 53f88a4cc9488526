"""Drift statistics and the policy that judges them, on data with known shifts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from vidrec.drift import (
    Thresholds,
    audio_descriptor,
    embedding_drift,
    event_rate_drift,
    judge,
    load_drift_policy,
    mmd2_test,
    visual_descriptor,
)


@pytest.fixture(scope="module")
def policy():
    return load_drift_policy()


def _vectors(ids: list[str], rng: np.random.Generator, shift: float, dims: int = 16) -> pd.DataFrame:
    data = rng.normal(size=(len(ids), dims))
    data[:, : dims // 2] += shift
    return pd.DataFrame({"video_id": ids, "vector": list(data)})


def test_versioned_policy_loads_with_warn_below_block(policy) -> None:
    assert policy.version >= 1 and 0 < policy.alpha < 0.1
    for name in ("visual", "audio", "text", "ctr", "watch_time"):
        assert policy.checks[name].warn < policy.checks[name].block


def test_policy_with_block_below_warn_is_rejected(tmp_path: Path) -> None:
    bad = {
        "checks": {
            n: {"statistic": "mmd2", "warn": 0.5, "block": 0.1}
            for n in ("visual", "audio", "text", "ctr", "watch_time")
        }
    }
    path = tmp_path / "drift.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="warn <= block"):
        load_drift_policy(path)


def test_judge_needs_size_and_significance() -> None:
    t = Thresholds("mmd2", warn=0.1, block=0.3)
    assert judge(0.5, 0.001, t, 0.01) == "block"
    assert judge(0.2, 0.001, t, 0.01) == "warn"
    assert judge(0.05, 0.001, t, 0.01) == "ok"
    assert judge(0.5, 0.2, t, 0.01) == "ok"  # large but not significant (tiny samples)


def test_mmd_is_near_zero_without_shift_and_large_with_one() -> None:
    rng = np.random.default_rng(0)
    same, p_same = mmd2_test(rng.normal(size=(120, 8)), rng.normal(size=(60, 8)), 200, 0)
    moved, p_moved = mmd2_test(rng.normal(size=(120, 8)), rng.normal(size=(60, 8)) + 1.5, 200, 0)
    assert abs(same) < 0.02 and p_same > 0.05
    assert moved > 0.2 and p_moved < 0.01


@pytest.mark.parametrize(("shift", "level"), [(0.0, "ok"), (0.9, "warn"), (3.0, "block")])
def test_embedding_drift_levels(policy, shift: float, level: str) -> None:
    rng = np.random.default_rng(1)
    ref = [f"r{i}" for i in range(150)]
    new = [f"n{i}" for i in range(60)]
    vectors = pd.concat([_vectors(ref, rng, 0.0), _vectors(new, rng, shift)])
    result = embedding_drift("text", vectors, ref, new, policy)
    assert (result.n_reference, result.n_new) == (150, 60)
    assert result.level == level, result.detail


def test_too_few_new_items_is_reported_not_judged(policy) -> None:
    rng = np.random.default_rng(2)
    vectors = _vectors(["a", "b", "c", "d"], rng, 0.0)
    result = embedding_drift("visual", vectors, ["a", "b", "c"], ["d"], policy)
    assert result.level == "insufficient" and result.value is None and result.n_new == 1


def _events(days: int, ctr_after: float, watch_after: float, start_day: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = days * 4000
    ts = pd.Timestamp("2024-03-01", tz="UTC") + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D")
    late = np.asarray(ts >= pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(days=start_day))
    clicked = rng.random(n) < np.where(late, ctr_after, 0.05)
    watch = np.where(clicked, rng.exponential(np.where(late, watch_after, 2.0)), 0.0)
    return pd.DataFrame({"ts": ts, "clicked": clicked, "watch_s": watch})


def test_event_rates_unchanged_pass_and_halved_ctr_blocks(policy) -> None:
    start = pd.Timestamp("2024-03-04", tz="UTC")
    steady = {r.name: r for r in event_rate_drift(_events(4, 0.05, 2.0, 3), start, policy)}
    assert steady["ctr"].level == "ok" and steady["watch_time"].level == "ok"
    assert steady["ctr"].reference == pytest.approx(0.05, abs=0.01)
    halved = {r.name: r for r in event_rate_drift(_events(4, 0.025, 2.0, 3), start, policy)}
    assert halved["ctr"].level == "block" and halved["ctr"].value == pytest.approx(0.5, abs=0.1)
    longer = {r.name: r for r in event_rate_drift(_events(4, 0.05, 3.0, 3), start, policy)}
    assert longer["ctr"].level == "ok"
    assert longer["watch_time"].level == "warn", longer["watch_time"].detail


def test_descriptors_have_fixed_sizes_and_see_colour() -> None:
    dark = np.zeros((8, 3, 32, 32), np.uint8)
    red = dark.copy()
    red[:, 0] = 255
    assert visual_descriptor(dark).shape == (32,)
    assert visual_descriptor(red)[0] == pytest.approx(1.0) and visual_descriptor(dark)[0] == 0.0
    assert audio_descriptor(np.ones((198, 40), np.float16)).shape == (80,)
