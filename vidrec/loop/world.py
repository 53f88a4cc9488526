"""The loop's copy of a generated world: the newest videos are held back, to arrive through ``/videos``.

The copy keeps the world's ground truth (the oracle knows every video, held back or not) and its logged
events on the videos that stay, so day 0 trains on the world's history as usual. Video files are
symlinked, not copied.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vidrec.sources import read_metadata


@dataclass(frozen=True)
class LoopWorld:
    data: Path  # what VIDREC_DATA points at
    source: Path  # the generated world (ground truth, rendered videos)
    arrivals: list[pd.DataFrame]  # per day, the metadata rows of the videos uploaded that day


def prepare_loop_world(source: Path, out: Path, days: int, uploads_per_day: int) -> LoopWorld:
    """Copy ``source`` into ``out`` without the ``days × uploads_per_day`` newest videos (and their events)."""
    source, out = Path(source), Path(out)
    metadata = read_metadata(source)
    held = days * uploads_per_day
    if held >= len(metadata) // 2:
        raise ValueError(
            f"{days} days × {uploads_per_day} uploads would hold back {held} of {len(metadata)} videos; "
            "keep at least half of the world in the starting catalogue"
        )
    order = metadata.sort_values(["published_at", "video_id"], kind="stable")
    kept, arriving = order.iloc[: len(order) - held], order.iloc[len(order) - held :]
    if out.exists():
        shutil.rmtree(out)
    (out / "videos").mkdir(parents=True)
    for video in (source / "videos").iterdir():
        if video.stem in set(kept["video_id"]):
            (out / "videos" / video.name).symlink_to(video.resolve())
    raw = pd.read_csv(source / "metadata.csv", dtype=str, keep_default_na=False)
    raw[raw["video_id"].isin(set(kept["video_id"]))].to_csv(out / "metadata.csv", index=False)
    events = pd.read_parquet(source / "events.parquet")
    events[events["video_id"].isin(set(kept["video_id"]))].to_parquet(out / "events.parquet", index=False)
    (out / "ground_truth").symlink_to((source / "ground_truth").resolve())
    manifest = json.loads((source / "world.json").read_text())
    manifest["loop"] = {"held_back": arriving["video_id"].tolist(), "days": days, "uploads_per_day": uploads_per_day}
    (out / "world.json").write_text(json.dumps(manifest, indent=2))
    arrivals = [arriving.iloc[d * uploads_per_day : (d + 1) * uploads_per_day] for d in range(days)]
    return LoopWorld(data=out, source=source, arrivals=arrivals)


def upload_form(row: pd.Series) -> dict[str, str]:
    """The ``/videos`` form fields of a held-back video's metadata row."""
    tags = row.get("tags")
    tags = tags if isinstance(tags, list) else [t for t in str(tags or "").split("|") if t]
    price = row.get("price")
    return {
        "title": str(row["title"]),
        "category": str(row["category"]),
        "creator_id": str(row["creator_id"]),
        "description": str(row.get("description") or ""),
        "tags": ",".join(tags),
        "is_product": str(bool(row.get("is_product"))).lower(),
        **({"price": str(float(price))} if pd.notna(price) else {}),
        "is_live_host": str(bool(row.get("is_live_host"))).lower(),
    }
