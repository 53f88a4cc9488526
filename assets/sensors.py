"""Sensors: new raw files and newly landed events start runs of only the assets they affect, and
declarative automation carries the feature layer along when its inputs change.

The raw-data sensor compares a cheap fingerprint (file names, sizes, modification times; no file
is read) of each source with the one stored in its cursor. Feature extraction and text embedding
are cached by content hash, so a run after a few new files costs about those files.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from assets.resources import RawData, VidrecStorage
from vidrec.landing import EVENTS_DIR, uploads_dir

# Which assets a change in each source affects, in the order they run. Training, evaluation and
# promotion are not here: they follow on the nightly schedule, behind the promotion gate.
AFFECTED: dict[str, tuple[str, ...]] = {
    "videos": ("raw_videos", "video_probe", "video_features"),
    "metadata": ("video_metadata", "text_features"),
    "events": ("interactions",),
    "landed_events": ("interactions",),
    # Uploads the service landed: a second source of files and metadata (vidrec/upload_source.py).
    "landed_uploads": ("raw_videos", "video_probe", "video_features", "video_metadata", "text_features"),
}
FEATURE_LAYER = dg.AssetSelection.assets(*sorted({key for keys in AFFECTED.values() for key in keys}))


def _files(paths: list[Path], base: Path) -> list[tuple[str, int, int]]:
    out = []
    for path in paths:
        if path.is_file() and not path.name.startswith("."):  # dot-files are writers' temporaries
            stat = path.stat()
            out.append((str(path.relative_to(base)), stat.st_size, stat.st_mtime_ns))
    return sorted(out)


def source_files(raw_dir: Path, landing: Path) -> dict[str, list[tuple[str, int, int]]]:
    """(relative name, bytes, mtime in ns) of every file each source holds."""
    videos = raw_dir / "videos"
    return {
        "videos": _files(list(videos.iterdir()) if videos.is_dir() else [], raw_dir),
        "metadata": _files([raw_dir / "metadata.csv", raw_dir / "metadata.jsonl"], raw_dir),
        "events": _files([raw_dir / "events.parquet"], raw_dir),
        # One folder per day (date=YYYY-MM-DD), appended to by the service's POST /events.
        "landed_events": _files(sorted((landing / EVENTS_DIR).glob("date=*/*.jsonl")), landing),
        "landed_uploads": _files(sorted(uploads_dir(landing).glob("*")), landing),  # <video_id>.mp4 + .json
    }


def fingerprint(files: dict[str, list[tuple[str, int, int]]]) -> dict[str, dict]:
    """A small cursor-sized summary per source: file count, digest, and the day partitions seen."""
    out = {}
    for source, entries in files.items():
        digest = hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]
        out[source] = {"files": len(entries), "digest": digest}
    out["landed_events"]["days"] = sorted({name.split("/")[1][len("date=") :] for name, _, _ in files["landed_events"]})
    return out


def changed_sources(previous: dict[str, dict], current: dict[str, dict]) -> list[str]:
    """Sources whose digest moved since the cursor (all of them on the first evaluation)."""
    return [s for s in AFFECTED if previous.get(s, {}).get("digest") != current[s]["digest"]]


def affected_assets(changed: list[str]) -> list[str]:
    """The union of the assets the changed sources affect, without duplicates, in run order."""
    return list(dict.fromkeys(key for source in changed for key in AFFECTED[source]))


def describe(previous: dict[str, dict], current: dict[str, dict], changed: list[str]) -> str:
    parts = []
    for source in changed:
        before, now = previous.get(source, {}).get("files", 0), current[source]["files"]
        parts.append(f"{source}: {before} -> {now} files")
    new_days = sorted(set(current["landed_events"]["days"]) - set(previous.get("landed_events", {}).get("days", [])))
    if new_days:
        parts.append(f"new event days landed: {', '.join(new_days)}")
    return "; ".join(parts)


@dg.sensor(target=FEATURE_LAYER, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def raw_data_sensor(
    context: dg.SensorEvaluationContext, raw_data: RawData, storage: VidrecStorage
) -> dg.SensorResult | dg.SkipReason:
    """Watches the raw-data directory (videos/, the metadata sidecar, events.parquet) and the landing
    area (events the service received, one folder per day; uploaded videos) and materialises only the assets
    each change affects: new videos -> probe + features; metadata -> text features; events -> interactions;
    uploads -> both media paths."""
    previous = json.loads(context.cursor) if context.cursor else {}
    current = fingerprint(source_files(raw_data.directory, storage.paths.landing))
    changed = changed_sources(previous, current)
    if not changed:
        return dg.SkipReason(f"no new or changed files under {raw_data.directory} or the landing area")
    summary = describe(previous, current, changed)
    context.log.info("changes: %s", summary)
    request = dg.RunRequest(
        # Same files, same key: a re-evaluated tick never starts a second run for one change.
        run_key="raw-" + "-".join(f"{s}:{current[s]['digest']}" for s in changed),
        asset_selection=[dg.AssetKey(key) for key in affected_assets(changed)],
        tags={"vidrec/trigger": "raw_data_sensor", "vidrec/changed": ",".join(changed)},
    )
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(current))


# Declarative automation: when an upstream of a feature-layer asset is materialised by anything (a
# sensor run, a manual run in the UI), the eager condition on that asset requests it, so features
# follow new data without a full rebuild. Off until turned on, like the schedule.
feature_automation = dg.AutomationConditionSensorDefinition(
    "feature_automation",
    target=FEATURE_LAYER,
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=60,
    description="Evaluates the automation conditions of the media and events assets "
    "(eager: re-materialise when an upstream changed).",
)

SENSORS = (raw_data_sensor, feature_automation)
