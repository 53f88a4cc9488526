"""Copying remote raw-data files into a local landing folder (named by content hash), since
decoders need a local path; used by ``vidrec.sources``, which re-exports ``localise``."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import fsspec
import pandas as pd

from vidrec.media.cache import MediaCache

log = logging.getLogger(__name__)

_COPY_CHUNK = 1 << 20


def localise(files: pd.DataFrame, landing: Path, cache: MediaCache | None = None) -> pd.DataFrame:
    """Give every row of ``list_videos`` a local ``path``, copying remote files into
    ``landing/<sha256><ext>`` (hashing while copying). A remote file whose (url, size, mtime)
    is unchanged since its last copy is not fetched again."""
    out = files.copy()
    remote = out["path"].isna()
    if not remote.any():
        return out
    fs = fsspec.core.url_to_fs(str(out.loc[remote, "url"].iloc[0]))[0]
    landing = Path(landing)
    landing.mkdir(parents=True, exist_ok=True)
    stamped = out[remote & out["mtime_ns"].notna()]
    keys = pd.DataFrame(
        {
            "path": stamped["url"],
            "bytes": stamped["bytes"].astype("int64"),
            "mtime_ns": stamped["mtime_ns"].astype("int64"),
        }
    )
    known = cache.known_hashes(keys) if cache is not None else {}
    fetched = []
    for index in out.index[remote]:
        url, ext = out.at[index, "url"], out.at[index, "extension"]
        sha = known.get(url)
        target = landing / f"{sha}{ext}" if sha else None
        if target is None or not target.is_file():
            sha, target = _copy_hashing(fs, url, landing, ext)
            if pd.notna(out.at[index, "mtime_ns"]):
                fetched.append((url, int(out.at[index, "bytes"]), int(out.at[index, "mtime_ns"]), sha))
        out.at[index, "path"] = str(target)
    if cache is not None:
        cache.remember_hashes(fetched)
    log.info("localised %d remote files (%d fetched)", int(remote.sum()), len(fetched))
    return out


def _copy_hashing(fs: fsspec.AbstractFileSystem, url: str, landing: Path, ext: str) -> tuple[str, Path]:
    digest = hashlib.sha256()
    tmp = landing / f".incoming.{os.getpid()}{ext}"
    with fs.open(url, "rb") as source, tmp.open("wb") as sink:
        while chunk := source.read(_COPY_CHUNK):
            digest.update(chunk)
            sink.write(chunk)
    sha = digest.hexdigest()
    target = landing / f"{sha}{ext}"
    os.replace(tmp, target)
    return sha, target
