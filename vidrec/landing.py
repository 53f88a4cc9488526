"""The landing area: feedback events and uploaded videos appended durably for the next pipeline run.

The next run reads both: ``interactions`` the events, and ``raw_videos``/``video_metadata`` the uploads,
as a second source beside the raw-data location (``vidrec/upload_source.py``), so an upload becomes a
catalogue item and its events training data (docs/ingestion.md, "Uploads: the second source").

Events are JSON lines in ``<landing>/events/date=YYYY-MM-DD/<writer>.jsonl`` (one file per writing
process, so concurrent writers never interleave partial lines) with the ``events`` contract columns.
User ids are pseudonymised here, before anything touches the disk; a batch is one ``write`` followed
by ``fsync``, so an acknowledged batch survives a crash and an unacknowledged one is at worst a
truncated last line, which ``read_landed_events`` reports instead of dropping silently.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from vidrec.ingest import EVENT_COLUMNS
from vidrec.privacy import pseudonymise

EVENTS_DIR = "events"
UPLOADS_DIR = "videos"


@dataclass(frozen=True)
class FeedbackEvent:
    """One impression and what followed it, as a client reports it (``user_id`` in the clear)."""

    user_id: str
    video_id: str
    ts: datetime
    session_id: str = ""
    position: int = 0
    surface: str = "api"
    propensity: float | None = None
    clicked: bool = False
    watch_s: float = 0.0
    converted: bool = False
    event_id: str | None = None
    request_id: str | None = None  # the /recommend response this feedback is about (joined to its impression)

    def problems(self) -> list[str]:
        """The ``events`` contract invariants this event breaks (empty when it is valid)."""
        found = []
        if self.watch_s < 0:
            found.append("watch_s must be >= 0")
        if self.watch_s > 0 and not self.clicked:
            found.append("watch_s > 0 requires clicked")
        if self.converted and not self.clicked:
            found.append("converted requires clicked")
        if self.propensity is not None and not 0 < self.propensity <= 1:
            found.append("propensity must be in (0, 1]")
        if self.position < 0:
            found.append("position must be >= 0")
        return found


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventLanding:
    """Appends feedback events, pseudonymised, to the landing area under ``root``."""

    def __init__(self, root: Path, key: str) -> None:
        if not key:
            raise ValueError("the pseudonymisation key is empty; set VIDREC_PSEUDONYM_KEY")
        self.root = Path(root) / EVENTS_DIR
        self.key = key
        self.writer = f"{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()

    def _rows(self, events: Sequence[FeedbackEvent]) -> list[dict]:
        rows = []
        for index, event in enumerate(events):
            problems = event.problems()
            if problems:
                raise ValueError(
                    f"event {index} (video_id={event.video_id!r}) breaks the events contract: " + "; ".join(problems)
                )
            ts = event.ts if event.ts.tzinfo else event.ts.replace(tzinfo=UTC)
            rows.append(
                {
                    "event_id": event.event_id or uuid.uuid4().hex,
                    "ts": ts.astimezone(UTC).isoformat(),
                    "user_key": pseudonymise(event.user_id, self.key),
                    "video_id": event.video_id,
                    "session_id": event.session_id,
                    "position": event.position,
                    "surface": event.surface,
                    "propensity": event.propensity,
                    "clicked": event.clicked,
                    "watch_s": float(event.watch_s),
                    "converted": event.converted,
                    "request_id": event.request_id,
                }
            )
        return rows

    def append(self, events: Sequence[FeedbackEvent]) -> list[str]:
        """Validate every event, then write them all (grouped by day) and fsync; returns the event ids.

        Validation comes first, so a batch with one bad event writes nothing.
        """
        rows = self._rows(events)
        with self._lock:
            append_day_rows(self.root, self.writer, rows)
        return [r["event_id"] for r in rows]


def append_day_rows(root: Path, writer: str, rows: Sequence[dict]) -> None:
    """Append JSON rows to ``root/date=<day of row['ts']>/<writer>.jsonl``: one write and one fsync per day
    file (and an fsync of each directory an entry was created in). Callers serialise calls per writer."""
    by_day: dict[str, list[dict]] = {}
    for row in rows:
        by_day.setdefault(row["ts"][:10], []).append(row)
    for day, day_rows in by_day.items():
        folder = root / f"date={day}"
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        if created:
            _fsync_dir(folder.parent)
        path = folder / f"{writer}.jsonl"
        payload = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in day_rows).encode()
        new_file = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new_file:
            _fsync_dir(folder)


@dataclass
class LandedRows:
    rows: pd.DataFrame
    bad_lines: list[str]  # "path:line: why" for lines that are not complete JSON objects


def read_landed_rows(folder: Path, columns: Sequence[str]) -> LandedRows:
    """Every JSON line under ``folder/date=*/`` as a frame with ``columns`` (keys a row lacks are NULL)."""
    rows, bad = [], []
    for path in sorted(Path(folder).glob("date=*/*.jsonl")):
        with path.open() as handle:
            for number, line in enumerate(handle, 1):
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    bad.append(f"{path}:{number}: {error.msg}")
    return LandedRows(pd.DataFrame(rows, columns=list(columns)), bad)


def read_landed_events(landing: Path) -> LandedRows:
    """Every landed event as a frame with the ``events`` columns plus ``request_id`` (ts as UTC timestamps)."""
    landed = read_landed_rows(Path(landing) / EVENTS_DIR, (*EVENT_COLUMNS, "request_id"))
    landed.rows["ts"] = pd.to_datetime(landed.rows["ts"], utc=True)
    return landed


def uploads_dir(landing: Path) -> Path:
    """Where uploaded videos and their metadata land (``<video_id>.mp4`` + ``<video_id>.json``)."""
    return Path(landing) / UPLOADS_DIR


def land_upload(landing: Path, video_id: str, source: Path, metadata: dict) -> Path:
    """Move an uploaded file and its metadata into the landing area atomically; returns the video path."""
    folder = uploads_dir(landing)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{video_id}.mp4"
    tmp = folder / f".{video_id}.{uuid.uuid4().hex}.tmp"
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, target)
    meta_tmp = folder / f".{video_id}.{uuid.uuid4().hex}.json.tmp"
    meta_tmp.write_text(json.dumps({"video_id": video_id, **metadata}, default=str))
    os.replace(meta_tmp, folder / f"{video_id}.json")
    _fsync_dir(folder)
    return target


def landed_uploads(landing: Path, skip: Container[str] = ()) -> list[dict]:
    """Metadata of every landed upload (with ``path``), oldest first, so a new model can re-embed them;
    video_ids in ``skip`` are not read (a serving worker polls with the ids it already holds)."""
    folder = uploads_dir(landing)
    if not folder.is_dir():
        return []
    out = []
    fresh = [p for p in folder.glob("*.json") if p.stem not in skip]
    for meta in sorted(fresh, key=lambda p: p.stat().st_mtime):
        record = json.loads(meta.read_text())
        video = folder / f"{record['video_id']}.mp4"
        if video.is_file():
            out.append({**record, "path": str(video)})
    return out
