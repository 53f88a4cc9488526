"""Media assets: files found, probed and validated, featurised; metadata validated and embedded."""


import time

import dagster as dg
import pandas as pd

from assets.reporting import contract_check, quarantine_metadata, table_md
from assets.resources import RawData, VidrecStorage
from expectations.validate import validate_frame
from vidrec.ingest import quarantine, with_text
from vidrec.media.features import FeatureConfig, extract_features
from vidrec.media.probe import probe_videos
from vidrec.sources import list_videos, read_metadata
from vidrec.text_embedding import TextEmbedder

GROUP = "media"
WAREHOUSE = "warehouse_io"


@dg.asset(group_name=GROUP, kinds={"python"}, owners=["team:ml-platform"])
def raw_videos(raw_data: RawData) -> dg.Output[pd.DataFrame]:
    """Video files found under the raw-data directory's videos/ folder."""
    files = list_videos(raw_data.directory)
    return dg.Output(files, metadata={"files": len(files), "bytes": int(files["bytes"].sum()),
                                      "directory": str(raw_data.directory)})


@dg.asset(group_name=GROUP, kinds={"python", "duckdb"}, io_manager_key=WAREHOUSE, owners=["team:ml-platform"])
def video_probe(context: dg.AssetExecutionContext, raw_videos: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    """Every file probed in an isolated worker (time and memory limits), then checked against
    the `videos` suite; each row is accepted or quarantined with a readable reason."""
    started = time.perf_counter()
    probed = probe_videos(list(zip(raw_videos["video_id"], raw_videos["path"])), workers=2, progress=False)
    report = validate_frame(probed[probed["status"] == "accepted"], "videos", id_column="video_id")
    videos = quarantine(probed, report.row_failures, "video_id")
    context.log.info("probed %d files in %.1f s", len(videos), time.perf_counter() - started)
    return dg.Output(videos, metadata={**quarantine_metadata(videos, "video_id"),
                                       "probe_s": round(time.perf_counter() - started, 2)})


def _probe_ok(videos: pd.DataFrame) -> pd.DataFrame:
    """Rows that decoded well enough for the suite to judge (not quarantined by the probe)."""
    return videos[videos["reason"].isna() | videos["reason"].fillna("").str.startswith("failed expectation")]


@dg.asset_check(asset=video_probe, blocking=True)
def video_probe_contract(video_probe: pd.DataFrame) -> dg.AssetCheckResult:
    """Accepted videos satisfy the `videos` suite; failures are quarantined; counts reconcile."""
    return contract_check(video_probe, validate_frame(_probe_ok(video_probe), "videos", "video_id"), "video_id")


@dg.asset(group_name=GROUP, kinds={"python", "duckdb"}, io_manager_key=WAREHOUSE, owners=["team:ml-platform"])
def video_metadata(raw_data: RawData) -> dg.Output[pd.DataFrame]:
    """The metadata sidecar, typed and checked against the `video_metadata` suite, with the
    normalised item text."""
    metadata = with_text(read_metadata(raw_data.directory))
    report = validate_frame(metadata, "video_metadata", id_column="video_id")
    metadata = quarantine(metadata, report.row_failures, "video_id")
    return dg.Output(metadata, metadata=quarantine_metadata(metadata, "video_id"))


@dg.asset_check(asset=video_metadata, blocking=True)
def video_metadata_contract(video_metadata: pd.DataFrame) -> dg.AssetCheckResult:
    """Accepted metadata rows satisfy the `video_metadata` suite; counts reconcile."""
    report = validate_frame(video_metadata.drop(columns=["status", "reason", "text"]), "video_metadata", "video_id")
    return contract_check(video_metadata, report, "video_id")


@dg.asset(group_name=GROUP, kinds={"python", "duckdb"}, io_manager_key=WAREHOUSE, owners=["team:ml-platform"])
def video_features(context: dg.AssetExecutionContext, video_probe: pd.DataFrame,
                   storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """Sampled frames and audio log-mel per accepted video, in shards addressed by content hash
    (unchanged files are not re-extracted)."""
    started = time.perf_counter()
    accepted = video_probe[video_probe["status"] == "accepted"]
    features = extract_features(accepted, storage.paths.features, FeatureConfig(), workers=2, progress=False)
    cached = int(features["cached"].sum()) if "cached" in features else 0
    context.log.info("features for %d videos (%d cached)", len(features), cached)
    return dg.Output(features, metadata={**quarantine_metadata(features, "video_id"), "cached": cached,
                                         "extract_s": round(time.perf_counter() - started, 2)})


@dg.asset(group_name=GROUP, kinds={"python", "duckdb"}, io_manager_key=WAREHOUSE, owners=["team:ml-platform"])
def text_features(video_metadata: pd.DataFrame, storage: VidrecStorage) -> dg.Output[pd.DataFrame]:
    """Frozen MiniLM embeddings of each accepted item's normalised text (cached by content hash)."""
    accepted = video_metadata[video_metadata["status"] == "accepted"]
    texts = accepted["text"].fillna("").tolist()
    vectors = TextEmbedder(storage.paths.features / "text").embed(texts)
    frame = pd.DataFrame({"video_id": accepted["video_id"].to_numpy(), "text": texts,
                          "has_text": [bool(t) for t in texts], "embedding": list(vectors)})
    return dg.Output(frame, metadata={"items": len(frame), "without_text": int((~frame["has_text"]).sum()),
                                      "examples": table_md(frame[["video_id", "text"]], 5)})
