"""Probe raw video files into rows of the ``videos`` table, accepting or quarantining each.

Probing opens and decodes the main video stream of untrusted files, so it runs in isolated worker
processes (see ``vidrec.media.pool``); the accept/quarantine rules are pure functions in
``vidrec.media.rules``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pebble import ProcessExpired

from vidrec.media.cache import MediaCache
from vidrec.media.file_facts import _PROBE_FIELDS
from vidrec.media.file_facts import CRASH_HOOK_ENV_VAR as CRASH_HOOK_ENV_VAR
from vidrec.media.file_facts import VIDEOS_COLUMNS as VIDEOS_COLUMNS
from vidrec.media.file_facts import probe_file as probe_file
from vidrec.media.hashing import file_sha256, hash_files, stat_files, unreadable_reason  # noqa: F401 (file_sha256 re-exported)
from vidrec.media.pool import describe_failure, run_isolated
from vidrec.media.rules import RE_EXPORT, ProbeLimits, decide_status, header_reason  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

_DTYPES = {
    "bytes": "Int64",
    "width": "Int64",
    "height": "Int64",
    "fps": "float64",
    "duration_s": "float64",
    "n_frames_expected": "Int64",
    "n_frames_decoded": "Int64",
    "has_audio": "boolean",
    "sample_rate": "Int64",
    "rotation": "Int64",
    "video_stream": "Int64",
}


def _quarantine_row(video_id: str, path: str, reason: str, **known: Any) -> dict[str, Any]:
    row = dict.fromkeys(VIDEOS_COLUMNS)
    row.update(known, video_id=video_id, path=path, status="quarantined", reason=reason)
    return row


def probe_videos(
    items: Sequence[tuple[str, str]],
    limits: ProbeLimits = ProbeLimits(),
    workers: int = 2,
    progress: bool = True,
    cache: MediaCache | None = None,
    rehash: bool = False,
) -> pd.DataFrame:
    """One ``videos`` row per ``(video_id, path)``, probing in isolated worker processes.

    Missing, unreadable and empty files are quarantined without starting a worker; crashes,
    hangs and decode errors quarantine only the file that caused them. Identical bytes are
    probed once; ``duplicate_of`` names the first video_id (sorted) with the same sha256.
    With ``cache`` (the media catalogue), unchanged files are neither re-hashed nor re-probed;
    ``frame.attrs`` then says how many files were hashed and probed.
    """
    paths = [str(path) for _, path in items]
    stats = stat_files(paths)
    hashes, read_errors, n_hashed = hash_files(stats, cache, rehash)
    stat_of = {row["path"]: row for row in stats.to_dict("records")}
    rows: dict[int, dict[str, Any]] = {}
    pending: dict[str, list[int]] = {}  # sha256 -> item indexes waiting for its probe
    first_path: dict[str, str] = {}
    for index, (video_id, path) in enumerate(items):
        path = str(path)
        stat = stat_of[path]
        if not stat["is_file"]:
            rows[index] = _quarantine_row(video_id, path, unreadable_reason(stat))
            continue
        if path in read_errors:
            rows[index] = _quarantine_row(video_id, path, read_errors[path])
            continue
        sha256 = hashes[path]
        known = {"sha256": sha256, "bytes": int(stat["bytes"])}
        if stat["bytes"] == 0:
            rows[index] = _quarantine_row(
                video_id, path, "empty file (0 bytes): the upload or copy did not finish; copy the file again", **known
            )
            continue
        rows[index] = known
        pending.setdefault(sha256, []).append(index)
        first_path.setdefault(sha256, path)

    probed = cache.known_probes(pending, limits.key()) if cache is not None else {}
    jobs = [(sha, (first_path[sha], limits)) for sha in pending if sha not in probed]
    log.info(
        "probe: %d files, %d distinct contents, %d known, %d to probe",
        len(items),
        len(pending),
        len(pending) - len(jobs),
        len(jobs),
    )
    outcomes = run_isolated(
        probe_file,
        jobs,
        timeout_s=limits.timeout_s,
        memory_mb=limits.memory_mb,
        workers=workers,
        progress=progress,
        label="probe",
    )
    fresh: dict[str, dict[str, Any]] = {}
    for sha, outcome in outcomes.items():
        if outcome.error is None:
            fresh[sha] = outcome.value
        else:
            reason = describe_failure(
                outcome.error,
                label="probe",
                timeout_s=limits.timeout_s,
                memory_mb=limits.memory_mb,
            )
            # Timeouts and crashes may be the machine's fault: retried next run, not cached.
            transient = isinstance(outcome.error, (TimeoutError, ProcessExpired))
            probed[sha] = {"_error": reason}
            if not transient:
                fresh[sha] = probed[sha]
    probed.update(fresh)
    if cache is not None:
        cache.remember_probes(fresh, limits.key())

    for sha, indexes in pending.items():
        facts = probed[sha]
        for index in indexes:
            video_id, path = items[index][0], str(items[index][1])
            if "_error" in facts:
                rows[index] = _quarantine_row(video_id, path, facts["_error"], **rows[index])
                continue
            status, reason = decide_status(facts, limits)
            rows[index] = {
                "video_id": video_id,
                "path": path,
                **rows[index],
                **{k: facts.get(k) for k in _PROBE_FIELDS},
                "status": status,
                "reason": reason,
            }
    frame = pd.DataFrame([rows[index] for index in range(len(items))], columns=VIDEOS_COLUMNS)
    frame["duplicate_of"] = duplicate_of(frame)
    frame = frame.astype(_DTYPES)
    # How much work this call did (the rest came from the media catalogue), for run metadata.
    frame.attrs = {"hashed": n_hashed, "probed": len(jobs)}
    return frame


def duplicate_of(videos: pd.DataFrame) -> pd.Series:
    """For each row, the smallest other video_id with the same sha256 (None if unique)."""
    hashed = videos[videos["sha256"].notna()]
    first = hashed.groupby("sha256")["video_id"].min()
    owner = videos["sha256"].map(first)
    return owner.where(owner.notna() & (owner != videos["video_id"]), None)


def deleted_rows(deleted: pd.DataFrame) -> pd.DataFrame:
    """``videos`` rows (quarantined) for files seen in an earlier run and gone now.

    ``deleted`` comes from ``MediaCache.record_sightings``; the rows keep the last known path
    and sha256 so downstream tables can drop the video's features and events explicitly.
    """
    rows = [
        _quarantine_row(
            r.video_id,
            r.path,
            f"deleted: file no longer in the source (last seen {r.last_seen:%Y-%m-%d %H:%M:%S} UTC); "
            "put it back to keep the video, nothing to do if it was removed on purpose",
            sha256=r.sha256,
        )
        for r in deleted.itertuples(index=False)
    ]
    return pd.DataFrame(rows, columns=VIDEOS_COLUMNS).astype(_DTYPES)
