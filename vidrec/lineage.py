"""Lineage labels for stored models: code version and the data version a run read."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_version(directory: Path) -> str:
    """A content fingerprint of the raw-data directory's tables and file listing (name, size)."""
    digest = hashlib.sha256()
    for name in ("metadata.csv", "metadata.jsonl", "events.parquet"):
        path = directory / name
        if path.exists():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    videos = directory / "videos"
    if videos.is_dir():
        for path in sorted(videos.iterdir()):
            digest.update(f"{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()[:16]
