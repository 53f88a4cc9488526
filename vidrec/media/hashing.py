"""Content sha256 of local files, skipping files the media catalogue saw unchanged.

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
    """path, exists, is_file, bytes, mtime_ns, the OSError text (if stat failed) and, for a
    symbolic link that leads nowhere, where it points (``link_target``) per path."""
    rows = []
    for path in paths:
        target = _link_target(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            rows.append((path, target is not None, False, None, None, None, target))
            continue
        except OSError as error:  # e.g. ELOOP: a link loop; EACCES: a folder we may not enter
            rows.append((path, True, False, None, None, str(error), target))
            continue
        regular = os.path.isfile(path)
        rows.append((path, True, regular, st.st_size, st.st_mtime_ns, None, None))
    return pd.DataFrame(rows, columns=["path", "exists", "is_file", "bytes", "mtime_ns", "error", "link_target"])


def _link_target(path: str) -> str | None:
    try:
        return os.readlink(path) if os.path.islink(path) else None
    except OSError:
        return None


def unreadable_reason(stat: dict[str, object]) -> str:
    """The quarantine reason for a row of ``stat_files`` that is not a readable regular file,
    saying what to do about it."""
    path, target, error = stat["path"], stat.get("link_target"), stat.get("error")
    if target is not None and error and "symbolic links" in str(error):
        return (
            f"symbolic link loop: {path} -> {target} never reaches a file; point the link at the "
            "video file or remove it"
        )
    if target is not None:
        return (
            f"broken symbolic link: {path} -> {target} does not exist; restore the target (for DVC "
            "data, `dvc checkout`) or remove the link"
        )
    if error:
        return f"cannot read file: {error}; make it readable by the user running the pipeline"
    if not stat["exists"]:
        return f"file not found: {path}; it disappeared after it was listed, re-run once the copy is complete"
    return f"not a regular file: {path}; put video files (not folders, pipes or devices) in videos/"


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
            errors[row.path] = f"cannot read file: {error}; make it readable by the user running the pipeline"
            continue
        hashes[row.path] = sha
        fresh.append((row.path, int(row.bytes), int(row.mtime_ns), sha))
        if time.monotonic() - last_log > _LOG_EVERY_S:
            last_log = time.monotonic()
            log.info("hashing: %d/%d files, %.0f files/s", done, len(todo), done / (last_log - started))
    if cache is not None:
        cache.remember_hashes(fresh)
    log.info("hashing: %d files known unchanged, %d hashed", len(known), len(fresh))
    return hashes, errors, len(fresh)
