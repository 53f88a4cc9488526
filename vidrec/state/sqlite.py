"""The embedded user-state store: one SQLite database in WAL mode under ``VIDREC_HOME``.

Every BentoML worker opens its own connection (one per process and thread). WAL lets readers run
while one writer commits, so a ``/recommend`` never waits on an ``/events`` write; writers take the
lock with ``BEGIN IMMEDIATE`` for one short transaction and wait up to ``busy_timeout_s`` for each
other. ``synchronous=NORMAL``: the store is a cache of the landing area (which fsyncs every batch), so
a power cut may lose its last commits but never corrupts it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from vidrec.state.base import (
    SEED_CLAIM_S,
    StateEvent,
    StateUnavailable,
    StoreSettings,
    check_user_key,
    checked_events,
    seed_items,
)

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    user_key TEXT NOT NULL, ts REAL NOT NULL, event_id TEXT NOT NULL, video_id TEXT NOT NULL, kind TEXT NOT NULL,
    PRIMARY KEY (user_key, ts, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (user_key TEXT PRIMARY KEY, last_seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_by_last_seen ON users (last_seen);
CREATE TABLE IF NOT EXISTS seeds (tag TEXT PRIMARY KEY, state TEXT NOT NULL, at REAL NOT NULL);
"""
# Keep the newest ``max_items`` of a user: delete everything older than the max_items-th newest row.
_TRIM = """
DELETE FROM events WHERE user_key = ?1 AND (ts, event_id) < (
    SELECT ts, event_id FROM events WHERE user_key = ?1 ORDER BY ts DESC, event_id DESC LIMIT 1 OFFSET ?2 - 1)
"""
_TOUCH = """
INSERT INTO users (user_key, last_seen) VALUES (?1, ?2)
ON CONFLICT (user_key) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
"""
_RECENT = """
SELECT video_id, kind, ts, event_id FROM events
WHERE user_key = ?1 AND EXISTS (SELECT 1 FROM users WHERE user_key = ?1 AND last_seen >= ?2)
ORDER BY ts DESC, event_id DESC LIMIT ?3
"""
PURGE_EVERY = 256  # writes between two purges of idle users (each purge is one indexed range scan)
PURGE_BATCH = 1000  # users purged at most per purge, so a backlog never makes one write slow
SEED_CHUNK = 500  # users per seeding transaction: /events writers wait for one chunk, not the whole seed


class SqliteStore:
    """``StateStore`` over the SQLite database at ``path`` (created with its folder when missing)."""

    def __init__(self, path: Path, settings: StoreSettings = StoreSettings(), busy_timeout_s: float = 5.0) -> None:
        self.path, self.settings, self.busy_timeout_s = Path(path), settings, busy_timeout_s
        self._local = threading.local()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateUnavailable(f"cannot create the state store folder {self.path.parent}: {error}") from error
        with self._failures("creating the schema"):
            self._connection().executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened anew in a forked child (a connection must not cross a fork)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            local.connection.execute("PRAGMA journal_mode=WAL")
            local.connection.execute("PRAGMA synchronous=NORMAL")
            local.pid = os.getpid()
        return local.connection

    @contextmanager
    def _failures(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:  # locked past busy_timeout, disk full or gone, a corrupt file
            raise StateUnavailable(f"the state store {self.path} failed {doing}: {error}") from error

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        with self._failures(doing):
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def record(self, events: Sequence[tuple[str, StateEvent]]) -> None:
        events = checked_events(events)
        if not events:
            return
        now = time.time()
        users = list(dict.fromkeys(u for u, _ in events))
        with self._write("recording events") as db:
            db.executemany(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)",
                [(u, e.ts, e.event_id, e.video_id, e.kind) for u, e in events],
            )
            db.executemany(_TRIM, [(u, self.settings.max_items) for u in users])
            db.executemany(_TOUCH, [(u, now) for u in users])
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            self.purge_idle()

    def purge_idle(self, now: float | None = None) -> int:
        """Delete up to PURGE_BATCH users idle beyond the TTL with their events; the number deleted."""
        limit = (now or time.time()) - self.settings.ttl_s
        with self._write("purging idle users") as db:
            rows = db.execute("SELECT user_key FROM users WHERE last_seen < ? LIMIT ?", (limit, PURGE_BATCH))
            idle = [row[0] for row in rows]
            db.executemany("DELETE FROM events WHERE user_key = ?", [(u,) for u in idle])
            db.executemany("DELETE FROM users WHERE user_key = ?", [(u,) for u in idle])
        return len(idle)

    def recent(self, user_key: str, n: int | None = None) -> list[StateEvent]:
        check_user_key(user_key)
        limit = self.settings.max_items if n is None else min(n, self.settings.max_items)
        with self._failures("reading a user's events"):
            rows = self._connection().execute(_RECENT, (user_key, time.time() - self.settings.ttl_s, limit)).fetchall()
        rows.reverse()
        return [StateEvent._make(row) for row in rows]

    def _claim_seed(self, tag: str, now: float) -> bool:
        with self._write("claiming a seed") as db:
            row = db.execute("SELECT state, at FROM seeds WHERE tag = ?", (tag,)).fetchone()
            if row is not None and (row[0] == "done" or now - row[1] < SEED_CLAIM_S):
                return False
            db.execute("INSERT OR REPLACE INTO seeds VALUES (?, 'running', ?)", (tag, now))
        return True

    def seed(self, tag: str, histories: Mapping[str, Sequence[str]], cutoff: float) -> bool:
        for user_key in histories:
            check_user_key(user_key)
        now = time.time()
        if not self._claim_seed(tag, now):
            return False
        users = list(histories)
        for start in range(0, len(users), SEED_CHUNK):
            chunk = users[start : start + SEED_CHUNK]
            with self._write("seeding") as db:
                db.executemany("DELETE FROM events WHERE user_key = ? AND ts <= ?", [(u, cutoff) for u in chunk])
                db.executemany(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?)",
                    [
                        (u, e.ts, e.event_id, e.video_id, e.kind)
                        for u in chunk
                        for e in seed_items(tag, histories[u], cutoff, self.settings.max_items)
                    ],
                )
                db.executemany(_TRIM, [(u, self.settings.max_items) for u in chunk])
                db.executemany(_TOUCH, [(u, now) for u in chunk])
        with self._write("finishing a seed") as db:
            db.execute("UPDATE seeds SET state = 'done', at = ? WHERE tag = ?", (time.time(), tag))
        log.info("seeded the state store %s from %s: %d users", self.path, tag, len(users))
        return True

    def health(self) -> None:
        """Checks that a write could start now (in WAL mode a read succeeds even while writes are locked out)."""
        with self._write("a health check"):
            pass

    def bytes_used(self) -> int:
        """The database's size on disk with its WAL (for the benchmark's bytes per user)."""
        wal = self.path.with_name(self.path.name + "-wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None and self._local.pid == os.getpid():
            connection.close()
        self._local = threading.local()
