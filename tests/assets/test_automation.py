"""Automation: the nightly schedule, the raw-data sensor, declarative automation, pools, retries,
and a failed run that leaves production untouched."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.definitions import all_assets, all_checks, build_resources, defs
from assets.jobs import PIPELINE
from assets.resources import WAREHOUSE_POOL, RawData, VidrecStorage
from assets.schedules import nightly_retraining
from assets.sensors import raw_data_sensor
from assets.training import TrainingSettings
from vidrec.config import Paths
from vidrec.landing import EventLanding, FeedbackEvent, land_upload
from vidrec.registry import ProductionPointer
from vidrec.world.generate import generate_world

WAREHOUSE_WRITERS = {
    "video_probe",
    "video_metadata",
    "video_features",
    "text_features",
    "interactions",
    "item_embeddings",
    "offline_evaluation",
}


def _assets_by_name() -> dict[str, dg.AssetsDefinition]:
    return {key.to_user_string(): a for a in all_assets for key in a.keys}


def test_nightly_schedule_runs_the_whole_chain_in_process() -> None:
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    request = nightly_retraining(context)
    assert request.run_key == "nightly-2026-03-02"
    job = defs.resolve_job_def("nightly")
    dg.validate_run_config(job, request.run_config)  # raises if the executor config does not fit the job
    assert request.run_config["execution"]["config"] == {"in_process": {}}
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {
        "video_features",
        "text_features",
        "interactions",
        "multimodal_encoder",
        "item_embeddings",
        "ranker",
        "offline_evaluation",
        "promoted_model",
    } <= selected
    assert "raw_events" not in selected
    checks = {k.name for k in job.asset_layer.asset_graph.asset_check_keys}
    assert "promotion_gate" in checks  # the gate runs in the nightly job and blocks promotion
    schedule = defs.resolve_schedule_def("nightly_retraining")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.fixture()
def raw_dir(tmp_path: Path) -> Path:
    """A raw-data directory; the sensor only looks at names, sizes and times, so small files do."""
    raw = tmp_path / "raw"
    (raw / "videos").mkdir(parents=True)
    for name in ("v1.mp4", "v2.mp4"):
        (raw / "videos" / name).write_bytes(b"x" * 100)
    (raw / "metadata.csv").write_text("video_id\nv1\nv2\n")
    (raw / "events.parquet").write_bytes(b"PAR1")
    return raw


def _tick(cursor: str | None, raw: Path, root: Path):
    context = dg.build_sensor_context(
        cursor=cursor, resources={"raw_data": RawData(path=str(raw)), "storage": VidrecStorage(root=str(root))}
    )
    return raw_data_sensor(context)


def _selected(result) -> set[str]:
    assert isinstance(result, dg.SensorResult) and len(result.run_requests) == 1
    return {k.to_user_string() for k in result.run_requests[0].asset_selection}


def test_sensor_materialises_only_what_new_files_affect(raw_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "state"
    first = _tick(None, raw_dir, root)
    assert _selected(first) == {
        "raw_videos",
        "video_probe",
        "video_features",
        "video_metadata",
        "text_features",
        "interactions",
    }
    assert isinstance(_tick(first.cursor, raw_dir, root), dg.SkipReason)  # nothing changed

    (raw_dir / "videos" / "v3.mp4").write_bytes(b"y" * 100)
    (raw_dir / "videos" / ".v4.mp4.partial").write_bytes(b"z")  # a copy in progress is not a video yet
    videos = _tick(first.cursor, raw_dir, root)
    assert _selected(videos) == {"raw_videos", "video_probe", "video_features"}
    assert json.loads(videos.cursor)["videos"]["files"] == 3
    assert videos.run_requests[0].tags["vidrec/changed"] == "videos"

    # The service lands feedback for a new day: only interactions (and what automation derives) re-run.
    EventLanding(Paths(root).landing, key="test-key").append(
        [
            FeedbackEvent(
                user_id="u1",
                video_id="v1",
                ts=datetime(2026, 3, 3, 12, tzinfo=UTC),
                clicked=True,
                watch_s=3.0,
                propensity=0.5,
            )
        ]
    )
    landed = _tick(videos.cursor, raw_dir, root)
    assert _selected(landed) == {"interactions"}
    assert json.loads(landed.cursor)["landed_events"]["days"] == ["2026-03-03"]
    assert landed.run_requests[0].run_key != videos.run_requests[0].run_key
    assert isinstance(_tick(landed.cursor, raw_dir, root), dg.SkipReason)

    # An upload lands (file + form metadata): both media paths re-run, the next run takes it in.
    land_upload(Paths(root).landing, "up_1", raw_dir / "videos" / "v1.mp4", {"title": "t"})
    uploaded = _tick(landed.cursor, raw_dir, root)
    assert _selected(uploaded) == {"raw_videos", "video_probe", "video_features", "video_metadata", "text_features"}
    assert json.loads(uploaded.cursor)["landed_uploads"]["files"] == 2


def test_sensor_names_a_missing_raw_directory(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist"):
        _tick(None, tmp_path / "nowhere", tmp_path / "state")


def _requested(instance: dg.DagsterInstance, cursor):
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys() if result.get_num_requested(k)}
    return keys, result.cursor


def test_features_follow_new_data_without_a_full_rebuild() -> None:
    """Declarative automation: new raw files -> the probe, then (once its blocking check passed) the
    features; nothing in training/evaluation, which is the nightly job's work."""
    with dg.instance_for_test() as instance:
        for key in ("video_metadata", "interactions"):
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        requested, cursor = _requested(instance, None)
        assert not requested  # nothing new yet

        instance.report_runless_asset_event(dg.AssetMaterialization("raw_videos"))
        requested, cursor = _requested(instance, cursor)
        assert requested == {"video_probe"}  # features wait for the probe's blocking contract check

        instance.report_runless_asset_event(dg.AssetMaterialization("video_probe"))
        requested, cursor = _requested(instance, cursor)
        assert "video_features" not in requested  # the contract check has not passed yet

        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("video_probe"), check_name="video_probe_contract", passed=True
            )
        )
        requested, cursor = _requested(instance, cursor)
    assert "video_features" in requested
    assert not requested & {"multimodal_encoder", "ranker", "offline_evaluation", "promoted_model"}


def test_warehouse_writers_share_a_pool_of_one_and_retry_with_backoff(tmp_path: Path) -> None:
    assets = _assets_by_name()
    writers = {
        name for name, a in assets.items() if a.get_io_manager_key_for_asset_key(dg.AssetKey(name)) == "warehouse_io"
    }
    assert WAREHOUSE_WRITERS <= writers
    for name in writers:  # any asset added later that writes the warehouse must join the pool too
        assert assets[name].op.pool == WAREHOUSE_POOL, f"{name} writes the warehouse outside the pool"
    for name in WAREHOUSE_WRITERS:
        policy = assets[name].op.retry_policy
        assert policy and policy.max_retries >= 2 and policy.backoff == dg.Backoff.EXPONENTIAL, name
    assert assets["promoted_model"].op.retry_policy.backoff == dg.Backoff.EXPONENTIAL
    # The instance the UI, daemon and CLI use: every pool limited to one step at a time, runs queued.
    home = Paths(tmp_path).ensure().dagster_home
    with dg.DagsterInstance.from_config(str(home)) as instance:
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_every_asset_is_described_for_the_ui() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description, f"{name}: no description"
        assert node.group_name and node.group_name != "default", f"{name}: no group"
        assert node.owners, f"{name}: no owners"
        assert node.kinds, f"{name}: no kinds"


@pytest.fixture()
def broken_world(tmp_path: Path) -> Path:
    world = tmp_path / "world"
    generate_world(world, size="tiny", progress=False)
    (world / "events.parquet").write_bytes(b"this is not parquet\n" * 50)
    return world


def test_a_failed_run_leaves_production_untouched(broken_world: Path, tmp_path: Path) -> None:
    root = tmp_path / "state"
    pointer = ProductionPointer(Paths(root).ensure().registry)
    pointer.promote("vidrec-recommender:champion")
    before = pointer.read()
    result = dg.materialize(
        [*all_assets, *all_checks],
        selection=PIPELINE,
        resources=build_resources(
            root,
            broken_world,
            "test-key",
            training_settings=TrainingSettings(encoder_epochs=1, ranker_epochs=1, retrieval_epochs=1),
        ),
        raise_on_error=False,
    )
    assert not result.success
    failed = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failed] == ["interactions"]
    assert "cannot read the event log" in str(failed[0].event_specific_data.error.message)
    # A broken file is not transient: no retry was spent on it.
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "video_features" in materialized and "promoted_model" not in materialized
    assert pointer.read() == before
