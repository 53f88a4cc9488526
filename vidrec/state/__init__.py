"""Online user state: each user's last engagements, written by ``/events`` and read by ``/recommend``, so
that what a user just did changes their next recommendation on every worker within a second.

Two backends behind one contract (``vidrec.state.base.StateStore``):

- **embedded (default)**: SQLite in WAL mode at ``<VIDREC_HOME>/state/user_state.sqlite``
  (``vidrec.state.sqlite``). Chosen because it is shared safely by every worker process of one
  machine with no server to run, and is the cheapest to read: measured on this 2-core machine
  (``benchmarks/realtime.py``; a read of a 50-item user, a 1-event write): SQLite read ~25 us and
  commit ~60 us of CPU, against ~80 us of client CPU per Redis round trip on loopback. A shared-memory
  dict (multiprocessing.Manager) is a server process of its own with a pickling round trip per call
  and loses everything on restart; DuckDB allows one writing process, so two workers cannot share it;
  a JSON file per user needs its own locking and fsyncs.
- **Redis** (``VIDREC_STATE_URL=redis://host:port/db``, ``vidrec.state.redis_store``): for several
  machines (Kubernetes replicas), which cannot share one SQLite file safely over a network volume.

``VIDREC_STATE_MAX_ITEMS`` (default 50) bounds the items kept per user and ``VIDREC_STATE_TTL_S``
(default 30 days) forgets users idle that long.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from vidrec.state.base import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_TTL_S,
    SEED,
    StateEvent,
    StateStore,
    StateUnavailable,
    StoreSettings,
    check_user_key,
)

URL_ENV_VAR = "VIDREC_STATE_URL"
MAX_ITEMS_ENV_VAR = "VIDREC_STATE_MAX_ITEMS"
TTL_ENV_VAR = "VIDREC_STATE_TTL_S"
SQLITE_NAME = "state/user_state.sqlite"

__all__ = [
    "SEED",
    "StateEvent",
    "StateStore",
    "StateUnavailable",
    "StoreSettings",
    "URL_ENV_VAR",
    "check_user_key",
    "open_store",
    "store_from_env",
]


def open_store(url: str | None, root: Path, settings: StoreSettings = StoreSettings()) -> StateStore:
    """The store ``url`` names: ``redis://`` / ``rediss://`` for Redis, ``sqlite:///path`` or None for
    the embedded SQLite store (under ``root`` when no path is given). Raises ValueError for other schemes."""
    if url and url.startswith(("redis://", "rediss://", "unix://")):
        from vidrec.state.redis_store import RedisStore

        return RedisStore(url, settings)
    if not url or url.startswith("sqlite://"):
        from vidrec.state.sqlite import SqliteStore

        path = url.removeprefix("sqlite://") if url else ""
        return SqliteStore(Path(path) if path else Path(root) / SQLITE_NAME, settings)
    raise ValueError(f"{URL_ENV_VAR}={url!r}: expected redis://host:port/db, sqlite:///path, or unset (embedded)")


def store_from_env(root: Path, environ: Mapping[str, str] | None = None) -> StateStore:
    """The store the environment selects (read when called, never at import)."""
    env = os.environ if environ is None else environ
    settings = StoreSettings(
        max_items=int(env.get(MAX_ITEMS_ENV_VAR) or DEFAULT_MAX_ITEMS),
        ttl_s=float(env.get(TTL_ENV_VAR) or DEFAULT_TTL_S),
    )
    return open_store(env.get(URL_ENV_VAR) or None, root, settings)
