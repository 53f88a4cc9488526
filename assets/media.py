"""Media assets: files found, probed and validated, featurised; metadata validated and embedded."""

import time

import dagster as dg
import pandas as pd

from assets.data_quality import record_validation
from assets.reporting import contract_check, quarantine_metadata, table_md
from assets.resources import FOLLOW_UPSTREAM, RawData, VidrecStorage, warehouse_asset
from expectations.validate import validate_frame
from vidrec.config import resolve_backbone_cache
from vidrec.imports.covers import item_shards
from vidrec.ingest import (
    NO_METADATA_REASON,
    duplicate_groups,
    media_less_ids,
    quarantine,
    quarantine_media,
    quarantine_unmatched,
    repaired_text_count,
    with_text,
)
from vidrec.landing import uploads_dir
from vidrec.media.accounting import media_summary, probe_summary, reason_heads
from vidrec.media.cache import MediaCache
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.probe import deleted_rows, probe_videos
from vidrec.media.recognition import recognise, top_tags_md
from vidrec.sources import list_videos, localise, read_metadata, source_version
from vidrec.text_embedding import TextEmbedder
from vidrec.upload_source import (
    LOCATION,
    UPLOAD,
    probe_targets,
    quarantine_uploads,
    read_landed_uploads,
    upload_counts,
    upload_metadata,
    with_uploads,
)

GROUP = "media"
WAREHOUSE = "warehouse_io"
CATALOGUE_FILE = "catalogue.duckdb"  # the media catalogue (hashes, probes, shards), under features/


def _catalogue(storage: VidrecStorage) -> MediaCache:
    return MediaCache(storage.paths.features / CATALOGUE_FILE)


def _reason_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Quarantine reasons grouped by their leading phrase (before any ':' or '(')."""
    return reason_heads(frame.loc[frame["status"] != "accepted", "reason"])


@dg.asset(group_name=GROUP, kinds={"python"}, owners=["team:ml-platform"])
def raw_videos(raw_data: RawData, storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """Video files under the raw-data location's videos/ folder (a local folder or any fsspec URL) and the
    uploads the service landed (`source` says which), each marked with whether it has a metadata row;
    a landed upload that cannot enter the catalogue carries the reason in `upload_problem`."""
    location = raw_data.path  # not .directory: a URL is not a local directory
    with _catalogue(storage) as catalogue:
        files = localise(list_videos(location), storage.paths.landing / "raw", catalogue)
    metadata_ids = set(read_metadata(location)["video_id"].astype(str))
    uploads = read_landed_uploads(storage.paths.landing)
    files = with_uploads(files, uploads)
    from_location = files["source"] == LOCATION
    files["has_metadata"] = files["video_id"].isin(metadata_ids) & from_location
    files.loc[~from_location, "has_metadata"] = files.loc[~from_location, "upload_problem"].isna()
    orphans = sorted(metadata_ids - set(files.loc[from_location, "video_id"]))
    unlisted = files.loc[from_location & ~files["has_metadata"], "video_id"].tolist()
    landed = files[~from_location]
    problems = landed[landed["upload_problem"].notna()]
    return dg.Output(
        files,
        metadata={
            "files": len(files),
            "bytes": int(files["bytes"].sum()),
            "location": str(location),
            **source_version(location, files[from_location]),
            "location_files": int(from_location.sum()),
            # files = location_files + uploads_landed; each landed upload enters the catalogue or is quarantined.
            "uploads_landed": len(landed),
            "uploads_with_problems": len(problems),
            "upload_problems": table_md(problems[["video_id", "upload_problem"]]),
            "files_without_metadata_row": len(unlisted),
            "examples_files_without_metadata": unlisted[:5],
            "metadata_rows_without_file": len(orphans),
            "examples_metadata_without_file": orphans[:5],
        },
    )


@warehouse_asset(GROUP, automation_condition=FOLLOW_UPSTREAM)
def video_probe(
    context: dg.AssetExecutionContext, raw_videos: pd.DataFrame, raw_data: RawData, storage: VidrecStorage
) -> dg.Output[pd.DataFrame]:
    """Every file probed in an isolated worker (time and memory limits), then checked against
    the `videos` suite; each row is accepted or quarantined with a readable reason. Unchanged
    files are neither re-hashed nor re-probed; deleted files stay as quarantined rows."""
    started = time.perf_counter()
    targets = probe_targets(raw_videos)
    with _catalogue(storage) as catalogue:
        probed = probe_videos(
            list(zip(targets["video_id"], targets["path"])), workers=2, progress=False, cache=catalogue
        )
        work = dict(probed.attrs)
        # Landed uploads apply their own rules (form fields, missing file, changed bytes, duplicate content).
        probed = quarantine_uploads(probed, raw_videos)
        # Each source keeps its own sightings, so a file gone from either is reported as deleted.
        deleted = pd.concat(
            [
                deleted_rows(catalogue.record_sightings(probed[probed["source"] == source], source=name)).assign(
                    source=source
                )
                for source, name in ((LOCATION, raw_data.path), (UPLOAD, str(uploads_dir(storage.paths.landing))))
            ],
            ignore_index=True,
        )
    with_metadata = set(raw_videos.loc[raw_videos["has_metadata"], "video_id"].astype(str))
    probed = quarantine_unmatched(probed, with_metadata, NO_METADATA_REASON)
    report = validate_frame(probed[probed["status"] == "accepted"], "videos", id_column="video_id")
    videos = quarantine(probed, report.row_failures, "video_id")
    videos = pd.concat([videos, deleted], ignore_index=True) if len(deleted) else videos
    duplicates = duplicate_groups(videos[~videos["reason"].fillna("").str.startswith("deleted")])
    elapsed = time.perf_counter() - started
    context.log.info("probed %d files in %.1f s (%s)", len(probed), elapsed, work)
    return dg.Output(
        videos,
        metadata={
            **quarantine_metadata(videos, "video_id"),
            "quarantine_reasons": _reason_counts(videos),
            **probe_summary(videos),
            **upload_counts(videos),
            "files_hashed": work.get("hashed", 0),
            "files_probed": work.get("probed", 0),
            "duplicate_groups": len(duplicates),
            "duplicates": table_md(duplicates),
            "probe_s": round(elapsed, 2),
        },
    )


def _probe_ok(videos: pd.DataFrame) -> pd.DataFrame:
    """Rows that decoded well enough for the suite to judge (not quarantined by the probe)."""
    return videos[videos["reason"].isna() | videos["reason"].fillna("").str.startswith("failed expectation")]


@dg.asset_check(asset=video_probe, blocking=True)
def video_probe_contract(
    context: dg.AssetCheckExecutionContext, video_probe: pd.DataFrame, storage: VidrecStorage
) -> dg.AssetCheckResult:
    """Accepted videos satisfy the `videos` suite; failures are quarantined; counts reconcile."""
    report = validate_frame(_probe_ok(video_probe), "videos", "video_id")
    return record_validation(context, storage, "video_probe", report, contract_check(video_probe, report, "video_id"))


@warehouse_asset(GROUP)
def video_metadata(raw_data: RawData, raw_videos: pd.DataFrame, storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """The metadata sidecar plus the form metadata of the uploads raw_videos took in, typed and checked
    against the `video_metadata` suite, with the normalised item text; rows without a video file are
    quarantined."""
    sidecar = read_metadata(raw_data.path)
    uploaded = upload_metadata(read_landed_uploads(storage.paths.landing), raw_videos)
    if "media_kind" in sidecar:  # an upload is always a video file
        uploaded = uploaded.assign(media_kind="video")
    metadata = with_text(pd.concat([sidecar, uploaded], ignore_index=True) if len(uploaded) else sidecar)
    report = validate_frame(metadata, "video_metadata", id_column="video_id")
    metadata = quarantine(metadata, report.row_failures, "video_id")
    metadata = quarantine_media(metadata, set(raw_videos["video_id"].astype(str)))
    return dg.Output(
        metadata,
        metadata={
            **quarantine_metadata(metadata, "video_id"),
            "quarantine_reasons": _reason_counts(metadata),
            "rows_with_repaired_text": repaired_text_count(metadata),
            "rows_from_uploads": len(uploaded),
        },
    )


@dg.asset_check(asset=video_metadata, blocking=True)
def video_metadata_contract(
    context: dg.AssetCheckExecutionContext, video_metadata: pd.DataFrame, storage: VidrecStorage
) -> dg.AssetCheckResult:
    """Accepted metadata rows satisfy the `video_metadata` suite; counts reconcile."""
    report = validate_frame(video_metadata.drop(columns=["status", "reason", "text"]), "video_metadata", "video_id")
    return record_validation(
        context, storage, "video_metadata", report, contract_check(video_metadata, report, "video_id")
    )


@warehouse_asset(GROUP, automation_condition=FOLLOW_UPSTREAM)
def video_features(
    context: dg.AssetExecutionContext, video_probe: pd.DataFrame, raw_data: RawData, storage: VidrecStorage
) -> dg.Output[pd.DataFrame]:
    """Sampled frames and audio log-mel per accepted video, in shards addressed by content hash;
    this table is the catalogue pointing at them (shard path, sampling plan, shapes), with what the
    pretrained backbone recognises in the picture (``recognised`` tags, cached per-frame features).
    Unchanged files are not re-extracted nor re-recognised."""
    started = time.perf_counter()
    accepted = video_probe[video_probe["status"] == "accepted"]
    config = FeatureConfig()
    with _catalogue(storage) as catalogue:
        features = extract_features(
            accepted, storage.paths.features, config, workers=2, progress=False, cache=catalogue
        )
    # What the pretrained backbone sees in each extracted video (per-frame features cached by content hash).
    recognition_started = time.perf_counter()
    extracted = features.loc[features["status"] == "accepted", "video_id"]
    backbone_cache = resolve_backbone_cache(storage.paths.features)
    recognised, tags = recognise(accepted[accepted["video_id"].isin(extracted)], backbone_cache)
    features = features.merge(recognised, on="video_id", how="left")
    recognition_s = round(time.perf_counter() - recognition_started, 2)
    # Imported items without a video file (sidecar media_kind image/none): a cover is a one-frame video,
    # a text-only item an all-zero shard; has_visual says which (docs/import.md). The sidecar is read here,
    # not taken as an input, so new video files still trigger only probe -> features (automation).
    sidecar = quarantine_media(read_metadata(raw_data.path), set(video_probe["video_id"].astype(str)))
    media_less = sidecar[sidecar["video_id"].astype(str).isin(media_less_ids(sidecar))]
    if len(media_less):
        features = pd.concat(
            [features.assign(has_visual=True), item_shards(media_less, storage.paths.features, config)],
            ignore_index=True,
        )
    # Rows without recognition (quarantined or media-less) hold nulls: one nullable type for the warehouse.
    features["recognition_cached"] = features["recognition_cached"].astype("boolean")
    summary = media_summary(video_probe, features)  # files seen = probe + feature quarantine + accepted
    cached = int(features["cached"].sum())
    context.log.info("features for %d videos (%d cached); %s", len(features), cached, summary)
    return dg.Output(
        features,
        metadata={
            **quarantine_metadata(features, "video_id"),
            "cached": cached,
            **summary,
            "extracted": int((~features["cached"] & (features["status"] == "accepted")).sum()),
            "items_without_video": len(media_less),
            "feature_config": config.key(),
            "frames_shape": list(config.frames_shape()),
            "mel_shape": list(config.mel_shape()),
            "seek": config.seek,
            "catalogue": str(storage.paths.features / CATALOGUE_FILE),
            "extract_s": round(time.perf_counter() - started, 2),
            "recognition_s": recognition_s,
            "recognition_cached": int(recognised["recognition_cached"].sum()),
            "recognition_failed": int(recognised["recognition_reason"].notna().sum()),
            "recognised_tags": dg.MetadataValue.md(top_tags_md(tags)),
        },
    )


@warehouse_asset(GROUP, automation_condition=FOLLOW_UPSTREAM)
def text_features(video_metadata: pd.DataFrame, storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """Frozen MiniLM embeddings of each accepted item's normalised text (cached by content hash)."""
    accepted = video_metadata[video_metadata["status"] == "accepted"]
    texts = accepted["text"].fillna("").tolist()
    vectors = TextEmbedder(storage.paths.features / "text").embed(texts)
    frame = pd.DataFrame(
        {
            "video_id": accepted["video_id"].to_numpy(),
            "text": texts,
            "has_text": [bool(t) for t in texts],
            "embedding": list(vectors),
        }
    )
    return dg.Output(
        frame,
        metadata={
            "items": len(frame),
            "without_text": int((~frame["has_text"]).sum()),
            "examples": table_md(frame[["video_id", "text"]], 5),
        },
    )
