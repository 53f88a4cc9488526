"""Drift checks in a real Dagster run: stand-in upstream tables, the drift_report asset and its
checks, and a stand-in downstream asset that a blocking (ERROR) check must stop."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb_pandas import DuckDBPandasIOManager

from assets import drift
from assets.resources import VidrecStorage
from vidrec.media.frames import SamplingPlan
from vidrec.media.shards import write_shard

DAY0 = pd.Timestamp("2024-03-01", tz="UTC")
N_REF, N_NEW = 40, 20
CHECKS = {"visual_drift", "audio_drift", "text_drift", "ctr_drift", "watch_time_drift"}


def _world(tmp: Path, red_new_videos: bool, ctr_new: float) -> dict[str, pd.DataFrame]:
    """Items published before the last day (training window) and on it (new), with shards,
    text embeddings and 4 days of events whose last day has CTR ``ctr_new``."""
    rng = np.random.default_rng(0)
    ids = [f"v{i:03d}" for i in range(N_REF + N_NEW)]
    new = np.arange(len(ids)) >= N_REF
    published = [
        DAY0 + pd.Timedelta(days=3, hours=2) if n else DAY0 - pd.Timedelta(days=10 + i) for i, n in enumerate(new)
    ]
    metadata = pd.DataFrame(
        {"video_id": ids, "published_at": [p.isoformat() for p in published], "status": "accepted", "reason": None}
    )
    paths = []
    for video_id, is_new in zip(ids, new):
        frames = rng.integers(60, 190, size=(8, 3, 32, 32)).astype(np.uint8)
        if is_new and red_new_videos:
            frames[:, 0] = 250  # the new uploads are all red: a visual shift
        mel = rng.normal(-4.0, 1.0, size=(198, 40))
        path = tmp / "shards" / f"{video_id}.npz"
        write_shard(path, frames, mel, True, SamplingPlan(timestamps=tuple(range(8)), size=32))
        paths.append(str(path))
    features = pd.DataFrame({"video_id": ids, "shard_path": paths, "status": "accepted", "reason": None})
    text = pd.DataFrame({"video_id": ids, "has_text": True, "embedding": list(rng.normal(size=(len(ids), 16)))})
    n = 40_000
    ts = DAY0 + pd.to_timedelta(np.sort(rng.uniform(0, 4, n)), unit="D")
    late = np.asarray(ts >= DAY0 + pd.Timedelta(days=3))
    clicked = rng.random(n) < np.where(late, ctr_new, 0.05)
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "ts": ts,
            "video_id": rng.choice(ids, n),
            "clicked": clicked,
            "watch_s": np.where(clicked, rng.exponential(2.0, n), 0.0),
            "status": "accepted",
            "reason": None,
        }
    )
    return {"video_metadata": metadata, "video_features": features, "text_features": text, "interactions": events}


def _run(tmp: Path, tables: dict[str, pd.DataFrame]) -> dg.ExecuteInProcessResult:
    def stand_in(name: str, frame: pd.DataFrame) -> dg.AssetsDefinition:
        @dg.asset(name=name)
        def _table() -> pd.DataFrame:
            return frame

        return _table

    @dg.asset(name="promoted_model", deps=["drift_report"])
    def promoted_model() -> str:
        return "promoted"

    checks = [drift.visual_drift, drift.audio_drift, drift.text_drift, drift.ctr_drift, drift.watch_time_drift]
    return dg.materialize(
        [*(stand_in(k, v) for k, v in tables.items()), drift.drift_report, *checks, promoted_model],
        resources={
            "storage": VidrecStorage(root=str(tmp / "root")),
            "warehouse_io": DuckDBPandasIOManager(database=str(tmp / "w.duckdb"), schema="vidrec"),
        },
        raise_on_error=False,
    )


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _promoted(result: dg.ExecuteInProcessResult) -> bool:
    return bool(result.asset_materializations_for_node("promoted_model"))


def test_no_drift_passes_every_check_and_promotes(tmp_path: Path) -> None:
    result = _run(tmp_path, _world(tmp_path, red_new_videos=False, ctr_new=0.05))
    evaluations = _evaluations(result)
    assert set(evaluations) == CHECKS
    assert all(e.passed for e in evaluations.values()), {k: e.metadata["level"] for k, e in evaluations.items()}
    visual = evaluations["visual_drift"].metadata
    assert visual["n_training_window"].value == N_REF and visual["n_new_window"].value == N_NEW
    assert visual["block_threshold"].value > visual["warn_threshold"].value
    assert _promoted(result)


def test_large_visual_drift_blocks_promotion(tmp_path: Path) -> None:
    result = _run(tmp_path, _world(tmp_path, red_new_videos=True, ctr_new=0.05))
    visual = _evaluations(result)["visual_drift"]
    assert not visual.passed and visual.severity == dg.AssetCheckSeverity.ERROR
    assert visual.metadata["level"].value == "block"
    assert visual.metadata["value"].value >= visual.metadata["block_threshold"].value
    assert _evaluations(result)["text_drift"].passed  # only the visual content moved
    assert not _promoted(result)


def test_moderate_ctr_drop_warns_but_still_promotes(tmp_path: Path) -> None:
    result = _run(tmp_path, _world(tmp_path, red_new_videos=False, ctr_new=0.04))
    ctr = _evaluations(result)["ctr_drift"]
    assert not ctr.passed and ctr.severity == dg.AssetCheckSeverity.WARN
    assert ctr.metadata["training_window"].value == pytest.approx(0.05, abs=0.005)
    assert ctr.metadata["new_window"].value == pytest.approx(0.04, abs=0.005)
    assert _promoted(result)


def test_drift_checks_guard_promotion_in_the_definitions(vidrec_env) -> None:
    """The real graph: promoted_model depends on drift_report, whose checks are all blocking."""
    from assets.definitions import defs

    promoted = defs.resolve_assets_def("promoted_model")
    assert dg.AssetKey("drift_report") in promoted.asset_deps[dg.AssetKey("promoted_model")]
    checks = [
        c for c in (defs.asset_checks or []) if any(k.asset_key == dg.AssetKey("drift_report") for k in c.check_keys)
    ]
    assert {k.name for c in checks for k in c.check_keys} == CHECKS
    assert all(spec.blocking for c in checks for spec in c.check_specs)
