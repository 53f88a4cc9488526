"""The tiny world end to end: dagster.materialize into a temporary root, a corrupt file
quarantined, the gate enforced, and the promoted model answering over HTTP."""

import csv
import json
from pathlib import Path

import dagster as dg
import duckdb
import httpx
import pytest
import yaml

from assets.definitions import all_assets, all_checks, build_resources
from assets.training import TrainingSettings
from bentos import server
from vidrec.config import Paths
from vidrec.evaluation.metrics import headline
from vidrec.registry import ProductionPointer
from vidrec.sources import METADATA_COLUMNS
from vidrec.world.generate import generate_world

pytestmark = pytest.mark.slow
CORRUPT = "v_corrupt"


def _policy(path: Path, floor: float) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "model": "candidate",
                "rules": [{"name": "click AUC floor", "metric": "click_auc", "at_least": floor}],
            }
        )
    )
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-world")
    generate_world(directory, size="tiny", progress=False)
    (directory / "videos" / f"{CORRUPT}.mp4").write_bytes(b"definitely not an mp4 file\n" * 200)
    with (directory / "metadata.csv").open("a", newline="") as handle:
        row = dict.fromkeys(METADATA_COLUMNS, "")
        row.update(
            video_id=CORRUPT,
            title="broken upload",
            category="music",
            creator_id="c000",
            is_product="false",
            is_live_host="false",
            published_at="2024-03-01T00:00:00Z",
        )
        csv.DictWriter(handle, fieldnames=list(METADATA_COLUMNS)).writerow(row)
    return directory


def _materialize(root: Path, world: Path, policy: str, selection=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*all_assets, *all_checks],
        resources=build_resources(
            root,
            world,
            "test-key",
            gate_policy=policy,
            training_settings=TrainingSettings(encoder_epochs=2, ranker_epochs=3, retrieval_epochs=2),
        ),
        selection=selection,
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def run(world: Path, vidrec_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dg.ExecuteInProcessResult:
    policy = _policy(tmp_path_factory.mktemp("policy") / "lenient.yaml", floor=0.0)
    return _materialize(vidrec_root, world, policy)


def _table(root: Path, name: str):
    with duckdb.connect(str(Paths(root).warehouse), read_only=True) as con:
        return con.execute(f"SELECT * FROM vidrec.{name}").df()  # table names are ours


def test_pipeline_succeeds_with_every_check_passing(run: dg.ExecuteInProcessResult) -> None:
    assert run.success
    evaluations = run.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {
        "video_probe_contract",
        "video_metadata_contract",
        "interactions_contract",
        "promotion_gate",
        "video_tags_contract",
    }
    assert all(e.passed for e in evaluations)


def test_recognised_tags_reach_the_table_the_ui_and_the_api(run) -> None:
    tags = run.output_for_node("video_tags")
    features = run.output_for_node("video_features")
    accepted = features[features["status"] == "accepted"]
    assert set(tags["video_id"]) == set(accepted.loc[accepted["recognised"].notna(), "video_id"])
    assert (tags.groupby("video_id").size() == 5).all() and tags["confidence"].between(0, 1).all()
    events = [e for e in run.get_asset_materialization_events() if e.asset_key.to_user_string() == "video_features"]
    metadata = events[-1].materialization.metadata
    assert "recognised_tags" in metadata and metadata["recognition_failed"].value == 0


def test_corrupt_file_is_quarantined_with_a_reason(run, vidrec_root: Path) -> None:
    videos = _table(vidrec_root, "video_probe")
    bad = videos[videos["video_id"] == CORRUPT].iloc[0]
    assert bad["status"] == "quarantined" and "open" in bad["reason"]
    assert len(videos) == 25 == (videos["status"] == "accepted").sum() + (videos["status"] == "quarantined").sum()


def test_users_are_pseudonymised_before_storage(run, vidrec_root: Path, world: Path) -> None:
    events = _table(vidrec_root, "interactions")
    assert "user_id" not in events.columns
    raw = set(__import__("pandas").read_parquet(world / "events.parquet")["user_id"])
    assert not raw & set(events["user_key"])


def test_evaluation_has_the_headline_metrics(run, vidrec_root: Path) -> None:
    table = headline(_table(vidrec_root, "offline_evaluation")).set_index("model")
    assert {"candidate", "random", "logging_policy"} <= set(table.index)
    for metric in ("click_auc", "ndcg_at_10", "ctr_at_10", "watch_s_at_10", "conversion_at_10"):
        assert 0 <= table.loc["candidate", metric] and table.loc["candidate", metric] == table.loc["candidate", metric]
    metrics = json.loads((Paths(vidrec_root).reports / "metrics.json").read_text())  # what `dvc metrics show` reads
    assert metrics["candidate"]["click_auc"] == pytest.approx(table.loc["candidate", "click_auc"])


def test_promoted_model_serves_over_http(run, vidrec_root: Path, vidrec_env: dict, world: Path) -> None:
    tag = ProductionPointer(Paths(vidrec_root).registry).tag
    assert tag and tag.startswith("vidrec-recommender:")
    port = server.free_port()
    process = server.start(port, vidrec_env, log_path=vidrec_root / "test_server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        user = __import__("pandas").read_parquet(world / "events.parquet").query("clicked")["user_id"].iloc[0]
        reply = httpx.post(f"{base}/recommend", json={"user_id": user, "k": 5}, timeout=30)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["known_user"] and body["model_tag"] == tag and len(body["items"]) == 5
        assert all(item["title"] for item in body["items"])
        assert all(item["tags"] and 0 <= item["tags"][0]["confidence"] <= 1 for item in body["items"])
        wordless = httpx.post(f"{base}/search", json={"query": "🙂 <script>", "k": 3}, timeout=30).json()
        assert wordless["items"] == [] and wordless["reason"]
        assert {i["video_id"] for i in body["items"]}.isdisjoint({h["video_id"] for h in body["history"]})
        cold = httpx.post(f"{base}/recommend", json={"user_id": "never-seen", "k": 3}, timeout=30).json()
        assert not cold["known_user"] and len(cold["items"]) == 3
        for bad in ({"user_id": user, "k": 0}, {"user_id": user, "k": 101}, {"k": 5}):
            assert 400 <= httpx.post(f"{base}/recommend", json=bad, timeout=30).status_code < 500
    finally:
        server.stop(process)
    assert process.poll() is not None


def test_failing_gate_blocks_promotion(run, world: Path, vidrec_root: Path, tmp_path: Path) -> None:
    before = ProductionPointer(Paths(vidrec_root).registry).read()
    strict = _policy(tmp_path / "strict.yaml", floor=0.999)
    result = _materialize(
        vidrec_root, world, strict, selection=dg.AssetSelection.assets("offline_evaluation", "promoted_model")
    )
    gate = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate"]
    assert gate and not gate[0].passed
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "offline_evaluation" in materialized and "promoted_model" not in materialized
    assert ProductionPointer(Paths(vidrec_root).registry).read() == before
