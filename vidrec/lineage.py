"""Lineage labels for stored models: code version and the data version a run read."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import yaml


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def dvc_version(directory: Path) -> str | None:
    """The md5 DVC recorded for ``directory`` (a stage output in a ``dvc.lock`` or a ``.dvc`` file
    beside it), or None when DVC does not track it."""
    directory = directory.resolve()
    candidates = [directory.parent / f"{directory.name}.dvc"]
    candidates += [parent / "dvc.lock" for parent in directory.parents]
    for path in candidates:
        if not path.is_file():
            continue
        document = yaml.safe_load(path.read_text()) or {}
        stages = document.get("stages", {}).values() if path.name == "dvc.lock" else [document]
        for stage in stages:
            for out in stage.get("outs", []):
                if (path.parent / out.get("path", "")).resolve() == directory and out.get("md5"):
                    return str(out["md5"])
    return None


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
            digest.update(f"{path.name}:{_size(path)}\n".encode())
    return digest.hexdigest()[:16]


def _size(path: Path) -> str:
    """The size of what ``path`` leads to; for a link that leads nowhere (missing target, loop) the
    link itself and where it points, so the fingerprint still changes when the link is mended."""
    try:
        return str(path.stat().st_size)
    except OSError:
        try:
            return f"link->{os.readlink(path)}"
        except OSError as error:
            return f"unreadable:{error.errno}"
