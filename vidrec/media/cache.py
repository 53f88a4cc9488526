"""The media catalogue: a DuckDB file that makes re-running an unchanged catalogue cheap.

Tables (all keyed by content, so renaming or re-uploading identical bytes costs nothing):

- ``file_hashes``: (path, bytes, mtime_ns) -> sha256. A file whose size and modification time
  are unchanged is not re-hashed (the same trust ``make`` and ``rsync`` place in them).
- ``probes``: (sha256, limits_key) -> probe facts or a deterministic failure reason.
- ``shards``: (sha256, config_key) -> the feature shard and its sampling plan and shapes.
- ``sightings``: (source, video_id) -> where and when a file was last seen, so a file that
  disappears from its source is reported as deleted instead of silently kept.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hashes (
    path VARCHAR PRIMARY KEY, bytes BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS probes (
    sha256 VARCHAR NOT NULL, limits_key VARCHAR NOT NULL, facts VARCHAR NOT NULL,
    probed_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (sha256, limits_key));
CREATE TABLE IF NOT EXISTS shards (
    sha256 VARCHAR NOT NULL, config_key VARCHAR NOT NULL, shard_path VARCHAR NOT NULL,
    n_frames INTEGER, has_audio BOOLEAN, frames_shape VARCHAR, mel_shape VARCHAR,
    plan VARCHAR, extracted_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (sha256, config_key));
CREATE TABLE IF NOT EXISTS sightings (
    source VARCHAR NOT NULL, video_id VARCHAR NOT NULL, path VARCHAR, sha256 VARCHAR,
    first_seen TIMESTAMPTZ NOT NULL, last_seen TIMESTAMPTZ NOT NULL, deleted_at TIMESTAMPTZ,
    PRIMARY KEY (source, video_id));
ALTER TABLE shards ADD COLUMN IF NOT EXISTS notes VARCHAR;
"""

SHARD_FIELDS = ("shard_path", "n_frames", "has_audio", "frames_shape", "mel_shape", "plan", "notes")


def _now() -> datetime:
    return datetime.now(UTC)


class MediaCache:
    """Open (creating if needed) the catalogue at ``path``; use as a context manager.

    One process at a time writes it (the probe and feature steps run one after another);
    DuckDB refuses a second writer rather than corrupting the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path))
        self._con.execute(_SCHEMA)

    def __enter__(self) -> MediaCache:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    def _upsert(self, table: str, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        self._con.register("incoming", frame)
        try:
            columns = ", ".join(frame.columns)
            self._con.execute(f"INSERT OR REPLACE INTO {table} ({columns}) SELECT {columns} FROM incoming")
        finally:
            self._con.unregister("incoming")

    def _lookup(self, sql: str, keys: pd.DataFrame, params: list[object] | None = None) -> pd.DataFrame:
        self._con.register("wanted", keys)
        try:
            return self._con.execute(sql, params or []).df()
        finally:
            self._con.unregister("wanted")

    # --- hashes ---------------------------------------------------------------------

    def known_hashes(self, stats: pd.DataFrame) -> dict[str, str]:
        """sha256 per path for rows of ``stats`` (path, bytes, mtime_ns) unchanged since hashed."""
        if stats.empty:
            return {}
        found = self._lookup(
            "SELECT h.path, h.sha256 FROM wanted w JOIN file_hashes h "
            "ON h.path = w.path AND h.bytes = w.bytes AND h.mtime_ns = w.mtime_ns",
            stats[["path", "bytes", "mtime_ns"]],
        )
        return dict(zip(found["path"], found["sha256"]))

    def remember_hashes(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        frame = pd.DataFrame(list(rows), columns=["path", "bytes", "mtime_ns", "sha256"])
        self._upsert("file_hashes", frame)

    # --- probes ---------------------------------------------------------------------

    def known_probes(self, shas: Iterable[str], limits_key: str) -> dict[str, dict[str, Any]]:
        keys = pd.DataFrame({"sha256": sorted(set(shas))})
        if keys.empty:
            return {}
        found = self._lookup(
            "SELECT p.sha256, p.facts FROM wanted w JOIN probes p ON p.sha256 = w.sha256 AND p.limits_key = ?",
            keys,
            [limits_key],
        )
        return {sha: json.loads(facts) for sha, facts in zip(found["sha256"], found["facts"])}

    def remember_probes(self, facts: Mapping[str, Mapping[str, Any]], limits_key: str) -> None:
        now = _now()
        frame = pd.DataFrame(
            [
                (sha, limits_key, json.dumps(dict(f), sort_keys=True, default=_json_default), now)
                for sha, f in facts.items()
            ],
            columns=["sha256", "limits_key", "facts", "probed_at"],
        )
        self._upsert("probes", frame)

    # --- shards ---------------------------------------------------------------------

    def known_shards(self, shas: Iterable[str], config_key: str) -> dict[str, dict[str, Any]]:
        """Catalogue rows of shards made under ``config_key`` whose file still exists."""
        keys = pd.DataFrame({"sha256": sorted(set(shas))})
        if keys.empty:
            return {}
        found = self._lookup(
            f"SELECT s.sha256, {', '.join('s.' + f for f in SHARD_FIELDS)} FROM wanted w "
            "JOIN shards s ON s.sha256 = w.sha256 AND s.config_key = ?",
            keys,
            [config_key],
        )
        rows = found.to_dict("records")
        return {r.pop("sha256"): r for r in rows if os.path.isfile(r["shard_path"])}

    def remember_shards(self, rows: Mapping[str, Mapping[str, Any]], config_key: str) -> None:
        now = _now()
        frame = pd.DataFrame(
            [
                {"sha256": sha, "config_key": config_key, **{f: r.get(f) for f in SHARD_FIELDS}, "extracted_at": now}
                for sha, r in rows.items()
            ],
            columns=["sha256", "config_key", *SHARD_FIELDS, "extracted_at"],
        )
        self._upsert("shards", frame)

    def shard_catalogue(self) -> pd.DataFrame:
        """Every shard ever written, for inspection (``SELECT * FROM shards``)."""
        return self._con.execute("SELECT * FROM shards ORDER BY sha256, config_key").df()

    # --- sightings ------------------------------------------------------------------

    def record_sightings(self, present: pd.DataFrame, source: str = "") -> pd.DataFrame:
        """Record the files of ``source`` present now (video_id, path, sha256); return the
        ones that vanished from it.

        The result has video_id, path, sha256, last_seen and deleted_at for every video of
        ``source`` seen in an earlier run and absent now (newly or previously deleted). A video
        that comes back is un-deleted. Sources (raw-data locations) are tracked separately.
        """
        now = _now()
        frame = present[["video_id", "path", "sha256"]].copy()
        frame.insert(0, "source", source)
        frame["first_seen"] = now
        frame["last_seen"] = now
        frame["deleted_at"] = pd.NaT
        if not frame.empty:
            self._con.register("incoming", frame)
            try:
                self._con.execute(
                    "INSERT INTO sightings SELECT source, video_id, path, sha256, first_seen, "
                    "last_seen, NULL FROM incoming ON CONFLICT (source, video_id) DO UPDATE SET "
                    "path = excluded.path, "
                    "sha256 = excluded.sha256, last_seen = excluded.last_seen, deleted_at = NULL"
                )
            finally:
                self._con.unregister("incoming")
        self._con.execute(
            "UPDATE sightings SET deleted_at = ? WHERE source = ? AND deleted_at IS NULL AND last_seen < ?",
            [now, source, now],
        )
        return self._con.execute(
            "SELECT video_id, path, sha256, last_seen, deleted_at FROM sightings "
            "WHERE source = ? AND deleted_at IS NOT NULL ORDER BY video_id",
            [source],
        ).df()


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in the probe cache: {value!r}")
