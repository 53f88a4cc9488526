"""Content sha256 of local files, skipping files the media catalog saw unchanged.

A file is re-hashed only when its (path, size, mtime_ns) differs from when it was last
hashed; writes through ordinary tools change mtime, so this is the trust ``rsync`` places in
it. ``rehash=True`` forces a full re-hash (e.g. after restoring files with preserved mtimes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence

import pandas as pd

from vidrec.media.cache import MediaCache

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_LOG_EVERY_S = 10.0


def file_sha256(path: str) -> str:
    """Content hash, streamed in chunks so large files are never held in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stat_files(paths: Sequence[str]) -> pd.DataFrame:
    """path, exists, is_file, bytes, mtime_ns and the OSError text (if stat failed) per path."""
    rows = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            rows.append((path, False, False, None, None, None))
            continue
        except OSError as error:
            rows.append((path, True, False, None, None, str(error)))
            continue
        regular = os.path.isfile(path)
        rows.append((path, True, regular, st.st_size, st.st_mtime_ns, None))
    return pd.DataFrame(rows, columns=["path", "exists", "is_file", "bytes", "mtime_ns", "error"])


def hash_files(
    stats: pd.DataFrame, cache: MediaCache | None = None, rehash: bool = False
) -> tuple[dict[str, str], dict[str, str], int]:
    """``(sha256 by path, read error by path, files actually hashed)`` for regular files in
    ``stats`` (from ``stat_files``)."""
    regular = stats.loc[stats["is_file"].astype(bool)].drop_duplicates("path")
    known = cache.known_hashes(regular) if cache is not None and not rehash else {}
    todo = regular[~regular["path"].isin(known)]
    hashes, errors, fresh = dict(known), {}, []
    started = last_log = time.monotonic()
    for done, row in enumerate(todo.itertuples(index=False), start=1):
        try:
            sha = file_sha256(row.path)
        except OSError as error:
            errors[row.path] = f"cannot read file: {error}"
            continue
        hashes[row.path] = sha
        fresh.append((row.path, int(row.bytes), int(row.mtime_ns), sha))
        if time.monotonic() - last_log > _LOG_EVERY_S:
            last_log = time.monotonic()
            log.info("hashing: %d/%d files, %.0f files/s", done, len(todo),
                     done / (last_log - started))
    if cache is not None:
        cache.remember_hashes(fresh)
    log.info("hashing: %d files known unchanged, %d hashed", len(known), len(fresh))
    return hashes, errors, len(fresh)
