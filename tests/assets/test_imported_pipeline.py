"""An imported implicit-feedback log with a text-only item table (and one cover item) through the same
Dagster pipeline as a video catalogue, up to the evaluation and its promotion gate: the items without a
video file are not quarantined, they become items with the visual and audio modalities masked and get
content embeddings; the log's absent position, propensity, watch_s and converted stay NULL (never filled
in), no event is quarantined for them, the ranker trains without those labels, and the metrics and gate
rules that need them are skipped with the reason; counts reconcile."""

import csv
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.definitions import all_assets, all_checks, build_resources
from assets.training import TrainingSettings
from expectations.suites import VIDEO_COLUMNS
from tests.vidrec.import_fixtures import write_one_frame_mp4, write_png
from vidrec.imports.logs import LogFormat, import_logs
from vidrec.imports.tables import ImportResult
from vidrec.ingest import NO_FILE_REASON
from vidrec.sources import METADATA_COLUMNS

pytestmark = pytest.mark.slow
N_ITEMS, N_USERS, COVER = 16, 12, "i03"
CATEGORIES = ("music", "sports", "cooking", "travel")
NO_FILE_ROW, BAD_KIND_ROW = "v_native_orphan", "v_bad_kind"
CLIP = "v_clip"  # one real video beside the media-less items (test_an_all_text_catalogue_runs has none)


def _write_fixture(folder: Path) -> tuple[Path, Path]:
    """A log of (user, item, ts, rating) rows, two below the rating threshold, and a text-only item table."""
    items = folder / "items.csv"
    with items.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "title", "description", "tags", "category", "creator_id", "published_at"])
        for i in range(N_ITEMS):
            category = CATEGORIES[i % len(CATEGORIES)]
            writer.writerow(
                [
                    f"i{i:02d}",
                    f"{category} item {i}",
                    f"a short {category} description",
                    f"{category}|t{i % 3}",
                    category,
                    f"c{i % 5}",
                    "2024-01-01T00:00:00Z",
                ]
            )
    log = folder / "log.csv"
    with log.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "video_id", "ts", "rating"])
        for u in range(N_USERS):
            for k in range(6):  # each user stays mostly within one category: co-engagement to learn from
                item = (u % len(CATEGORIES)) + len(CATEGORIES) * ((u + k) % (N_ITEMS // len(CATEGORIES)))
                writer.writerow([f"u{u}", f"i{item:02d}", 1_704_067_200 + 6 * 3600 * (u * 6 + k), 5 - (k == 5) * 3])
    return log, items


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportResult, Path]:
    folder = tmp_path_factory.mktemp("imported")
    log, items_path = _write_fixture(folder)
    result = import_logs(str(log), str(items_path), LogFormat(rating_threshold=4))
    cover = result.items["video_id"] == COVER
    result.items.loc[cover, ["media_kind", "media_path"]] = ["image", str(write_png(folder / "cover.png"))]
    result.items.loc[cover, "has_visual"] = True
    clip = result.items.iloc[[0]].assign(
        video_id=CLIP, media_kind="video", has_audio=pd.NA, media_path=str(write_one_frame_mp4(folder / "clip.mp4"))
    )
    result.items = pd.concat([result.items, clip], ignore_index=True)
    raw = result.write_raw_dir(folder / "raw")  # leaves the columns the log lacks out of events.parquet
    # Two rows that must still be quarantined: a native row whose video file is missing (no media_kind),
    # and an unknown media_kind.
    with (raw / "metadata.csv").open("a", newline="") as handle:
        fields = [*METADATA_COLUMNS, "media_kind", "media_path"]
        base = dict.fromkeys(fields, "") | {
            "title": "x",
            "category": "music",
            "creator_id": "c0",
            "is_product": "false",
            "is_live_host": "false",
            "published_at": "2024-01-01T00:00:00Z",
        }
        csv.DictWriter(handle, fieldnames=fields).writerow(base | {"video_id": NO_FILE_ROW})
        csv.DictWriter(handle, fieldnames=fields).writerow(base | {"video_id": BAD_KIND_ROW, "media_kind": "hologram"})
    return result, raw


@pytest.fixture(scope="module")
def run(imported: tuple[ImportResult, Path], tmp_path_factory: pytest.TempPathFactory) -> dg.ExecuteInProcessResult:
    root = tmp_path_factory.mktemp("state")
    return dg.materialize(
        [*all_assets, *all_checks],
        resources=build_resources(
            root,
            imported[1],
            "test-key",
            training_settings=TrainingSettings(encoder_epochs=2, ranker_epochs=1, retrieval_epochs=1),
        ),
        selection=dg.AssetSelection.assets("offline_evaluation").upstream(),
        raise_on_error=False,
    )


def test_the_imported_pipeline_succeeds(run: dg.ExecuteInProcessResult) -> None:
    failures = [e.message for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
    assert run.success, failures
    assert all(c.passed for c in run.get_asset_check_evaluations())


def test_media_less_rows_are_items_not_quarantined(
    run: dg.ExecuteInProcessResult, imported: tuple[ImportResult, Path]
) -> None:
    result, _ = imported
    metadata = run.asset_value("video_metadata").set_index("video_id")
    assert len(metadata) == N_ITEMS + 3  # every sidecar row is kept, accepted or quarantined
    assert (metadata.loc[result.items["video_id"], "status"] == "accepted").all()
    assert metadata.loc[NO_FILE_ROW, "reason"] == NO_FILE_REASON  # a video catalogue's rule is unchanged
    assert metadata.loc[BAD_KIND_ROW, "reason"] == "media_kind is not one of video, image, none"

    features = run.asset_value("video_features").set_index("video_id")
    assert sorted(features.index) == sorted(result.items["video_id"])
    assert features["has_visual"].to_dict() == {v: v in (COVER, CLIP) for v in features.index}
    assert not features["has_audio"].any()
    assert features.loc[COVER, "sha256"] != features.loc["i00", "sha256"]  # the cover has its own shard


def test_text_only_items_get_embeddings_and_counts_reconcile(
    run: dg.ExecuteInProcessResult, imported: tuple[ImportResult, Path]
) -> None:
    result, _ = imported
    embeddings = run.asset_value("item_embeddings")
    assert result.report.tables["items"].accepted == N_ITEMS
    assert sorted(embeddings["video_id"]) == sorted(result.items["video_id"])  # every imported item, once
    vectors = pd.DataFrame(list(embeddings["embedding"]))
    assert vectors.notna().all().all() and len(vectors.drop_duplicates()) == N_ITEMS + 1

    interactions = run.asset_value("interactions")
    imported_events = result.report.tables["events"]
    assert imported_events.rows_read == N_USERS * 6 and imported_events.accepted == N_USERS * 5
    assert len(interactions) == imported_events.accepted  # the pipeline scanned every imported event
    on_items = interactions["reason"].fillna("").str.startswith("video is not an accepted video")
    assert not on_items.any()  # no event was refused because its item has no video file


ABSENT = ("position", "propensity", "watch_s", "converted")


def _metadata(run: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {k: v.value for k, v in run.asset_materializations_for_node(asset)[-1].metadata.items()}


def test_absent_columns_stay_null_and_no_event_is_quarantined_for_them(run: dg.ExecuteInProcessResult) -> None:
    interactions = run.asset_value("interactions")
    assert (interactions["status"] == "accepted").all(), interactions["reason"].dropna().unique()[:3]
    assert interactions[list(ABSENT)].isna().all().all()  # NULL, not a neutral value standing in
    metadata = _metadata(run, "interactions")
    assert metadata["suite"] == "events__no_converted__no_position__no_propensity__no_watch_s"
    assert metadata["absent_columns"] == list(ABSENT)


def test_the_ranker_trains_without_watch_and_conversion_labels(run: dg.ExecuteInProcessResult) -> None:
    ranker = run.asset_value("ranker")
    assert ranker.history and all(pd.notna(v) for epoch in ranker.history for v in epoch.values())
    assert ranker.extra["train_impressions"] > 0
    blend = ranker.extra["blend"]
    assert (blend["watch"], blend["conversion"]) == (0.0, 0.0)  # untrained heads do not reach the ranking


def test_metrics_and_gate_rules_that_need_absent_signals_are_skipped(run: dg.ExecuteInProcessResult) -> None:
    table = run.asset_value("offline_evaluation")
    shares = table[table["model"] == "holdout"].set_index("metric")["value"].to_dict()
    assert shares == {
        "holdout_share_position": 0.0,
        "holdout_share_propensity": 0.0,
        "holdout_share_watch_s": 0.0,
        "holdout_share_converted": 0.0,
        "holdout_share_impressions": 0.0,
        "holdout_share_orders": 0.0,  # no orders beside the import: the GMV rules are skipped
    }
    metrics = set(table["metric"])
    assert not {m for m in metrics if m.endswith(("_ips", "_snips")) or m.startswith(("click_", "conversion_"))}
    assert {"coverage_at_10", "novelty_at_10", "scoring_p99_ms"} <= metrics  # what the log does support
    skipped = _metadata(run, "offline_evaluation")["skipped_metrics"]
    assert "ctr_at_10_snips" in skipped and "source has no propensities" in skipped

    gate = next(c for c in run.get_asset_check_evaluations() if c.check_name == "promotion_gate")
    rules = gate.metadata["skipped_rules"].value
    assert (
        "off-policy CTR@10 (SNIPS) beats a random top 10 (skipped: source has no propensities; source has no "
        "non-clicked impressions (positives only))"
    ) in rules
    assert any(r.startswith("click AUC floor (skipped: source has no non-clicked impressions") for r in rules)
    assert gate.passed and not gate.metadata["failed_rules"].value


def test_an_all_text_catalogue_runs(tmp_path: Path) -> None:
    """No video file at all: video_probe is an empty table with the contract columns (the stock DuckDB I/O
    manager would store no table, and every downstream load failed), every item is still embedded, and the
    whole graph up to promotion (drift checks included) runs on a log without the optional signals."""
    log, items_path = _write_fixture(tmp_path)
    result = import_logs(str(log), str(items_path), LogFormat(rating_threshold=4))
    raw = result.write_raw_dir(tmp_path / "raw")
    assert not any((raw / "videos").iterdir())
    run = dg.materialize(
        [*all_assets, *all_checks],
        resources=build_resources(
            tmp_path / "state",
            raw,
            "test-key",
            training_settings=TrainingSettings(encoder_epochs=1, ranker_epochs=1, retrieval_epochs=1),
        ),
        selection=dg.AssetSelection.assets("promoted_model").upstream(),
        raise_on_error=False,
    )
    assert run.success, [e.message for e in run.all_events if e.event_type_value == "STEP_FAILURE"]
    assert run.asset_value("promoted_model")["tag"]
    probe = run.asset_value("video_probe")
    assert probe.empty and set(VIDEO_COLUMNS) <= set(probe.columns)
    assert sorted(run.asset_value("item_embeddings")["video_id"]) == sorted(result.items["video_id"])
    assert (run.asset_value("interactions")["status"] == "accepted").all()
