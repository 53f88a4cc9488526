"""Generate a demo world (MP4 catalogue, metadata, event log, ground truth) into a directory; also a CLI.

python -m vidrec.world.generate --size demo --out data/demo [--seed N] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from vidrec.world import commerce
from vidrec.world.behaviour import BehaviourParams
from vidrec.world.catalogue import CATEGORIES, build_metadata, sample_items, write_metadata_csv
from vidrec.world.events import simulate_events
from vidrec.world.oracle import Oracle
from vidrec.world.policy import LoggingPolicy
from vidrec.world.render import RenderJob, render_video
from vidrec.world.spec import WorldSpec, world_spec
from vidrec.world.users import build_users

log = logging.getLogger(__name__)

# Bump when generation logic changes, so an old world on disk is not mistaken for a current one.
GENERATOR_VERSION = 2  # 2: products, brands, live sessions, orders

# Independent random streams, so changing one stage does not reshuffle the others.
_STREAM_ITEMS, _STREAM_RENDER, _STREAM_METADATA, _STREAM_USERS, _STREAM_POLICY, _STREAM_EVENTS = range(6)
_STREAM_PRODUCTS, _STREAM_TASTES, _STREAM_LIVE, _STREAM_ORDERS = range(6, 10)


@dataclass(frozen=True)
class WorldManifest:
    """Where a generated world lives and what it holds."""

    out_dir: Path
    spec: WorldSpec
    counts: dict[str, Any]
    reused: bool = False
    elapsed_s: float = 0.0
    behaviour: dict[str, Any] = field(default_factory=dict)

    @property
    def videos_dir(self) -> Path:
        return self.out_dir / "videos"

    @property
    def metadata_csv(self) -> Path:
        return self.out_dir / "metadata.csv"

    @property
    def events_parquet(self) -> Path:
        return self.out_dir / "events.parquet"

    @property
    def items_parquet(self) -> Path:
        return self.out_dir / "ground_truth" / "items.parquet"

    @property
    def users_parquet(self) -> Path:
        return self.out_dir / "ground_truth" / "users.parquet"

    @property
    def products_csv(self) -> Path:
        return self.out_dir / "products.csv"

    @property
    def orders_parquet(self) -> Path:
        return self.out_dir / "orders.parquet"

    @property
    def live_sessions_csv(self) -> Path:
        return self.out_dir / "live_sessions.csv"

    @property
    def world_json(self) -> Path:
        return self.out_dir / "world.json"

    def video_path(self, video_id: str) -> Path:
        return self.videos_dir / f"{video_id}.mp4"


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])


def _existing(out_dir: Path, spec: WorldSpec, behaviour: BehaviourParams) -> WorldManifest | None:
    path = out_dir / "world.json"
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if (
        saved.get("generator_version") == GENERATOR_VERSION
        and saved.get("spec") == spec.to_dict()
        and saved.get("behaviour") == behaviour.to_dict()
    ):
        return WorldManifest(out_dir, spec, saved["counts"], reused=True, behaviour=saved["behaviour"])
    raise FileExistsError(
        f"{out_dir} already holds a world generated with another spec or generator version "
        f"({saved.get('spec')}); delete it or choose another output directory"
    )


def _render_all(jobs: list[RenderJob], workers: int, progress: bool) -> None:
    bar = tqdm(total=len(jobs), desc="render videos", unit="video", disable=not progress)
    started = time.perf_counter()
    if workers <= 1:
        for job in jobs:
            render_video(job)
            bar.update()
    else:
        # forkserver: forking a process that already runs pyarrow/pytest threads is unsafe.
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            for _ in pool.map(render_video, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers)))):
                bar.update()
    bar.close()
    log.info("rendered %d videos in %.1f s", len(jobs), time.perf_counter() - started)


def _render_jobs(spec: WorldSpec, items: pd.DataFrame, videos_dir: Path) -> list[RenderJob]:
    return [
        RenderJob(
            video_id=row.video_id,
            path=str(videos_dir / f"{row.video_id}.mp4"),
            hue=CATEGORIES[row.hue_category_idx].hue,
            pitch_hz=CATEGORIES[row.category_idx].pitch_hz,
            style=int(row.style),
            energy=float(row.energy),
            quality=float(row.quality),
            has_audio=bool(row.has_audio),
            n_frames=int(row.n_frames),
            fps=spec.fps,
            width=spec.width,
            height=spec.height,
            sample_rate=spec.sample_rate,
            seed=spec.seed,
            index=i,
        )
        for i, row in enumerate(items.itertuples(index=False))
    ]


def _counts(
    items: pd.DataFrame, users: pd.DataFrame, events: pd.DataFrame, orders: pd.DataFrame, spec: WorldSpec
) -> dict[str, Any]:
    product_clicks = events["clicked"] & events["video_id"].isin(items.loc[items["is_product"], "video_id"])
    window_start = pd.Timestamp(spec.start)
    return {
        "videos": len(items),
        "videos_with_audio": int(items["has_audio"].sum()),
        "cold_start_videos": int((items["published_at"] >= window_start).sum()),
        "users": len(users),
        "sessions": int(events["session_id"].nunique()),
        "impressions": len(events),
        "clicks": int(events["clicked"].sum()),
        "conversions": int(events["converted"].sum()),
        "ctr": float(events["clicked"].mean()),
        "product_click_conversion_rate": float(events["converted"].sum() / max(1, product_clicks.sum())),
        "products": int(items["sku"].nunique()),
        "orders": len(orders),
        "gmv": round(float((orders["quantity"] * orders["unit_price"]).sum()), 2),
    }


def generate_world(
    out_dir: Path, size: str = "demo", seed: int | None = None, workers: int | None = None, progress: bool = True
) -> WorldManifest:
    """Generate the world of `size` into `out_dir`, or return the existing one if it is complete and identical."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    spec, behaviour = world_spec(size, seed), BehaviourParams()
    existing = _existing(out_dir, spec, behaviour)
    if existing is not None:
        log.info("world at %s is complete; reusing it", out_dir)
        return existing

    videos_dir = out_dir / "videos"
    (out_dir / "ground_truth").mkdir(parents=True, exist_ok=True)
    videos_dir.mkdir(parents=True, exist_ok=True)
    items = sample_items(spec, _rng(spec.seed, _STREAM_ITEMS))
    products, items = commerce.assign_products(items, _rng(spec.seed, _STREAM_PRODUCTS))
    metadata = build_metadata(items, _rng(spec.seed, _STREAM_METADATA))
    users = commerce.add_user_tastes(build_users(spec, _rng(spec.seed, _STREAM_USERS)), _rng(spec.seed, _STREAM_TASTES))
    live = commerce.live_sessions(spec, items, _rng(spec.seed, _STREAM_LIVE))
    # metadata.csv's category is what the uploader declared; keep it beside the truth for evaluation.
    items["declared_category"] = metadata["category"]
    items.to_parquet(out_dir / "ground_truth" / "items.parquet", index=False)
    users.to_parquet(out_dir / "ground_truth" / "users.parquet", index=False)
    live.to_parquet(out_dir / "ground_truth" / "live_sessions.parquet", index=False)
    write_metadata_csv(metadata, out_dir / "metadata.csv")
    commerce.write_products_csv(products, out_dir / "products.csv")
    commerce.write_live_csv(live, out_dir / "live_sessions.csv")

    _render_all(_render_jobs(spec, items, videos_dir), workers or os.cpu_count() or 1, progress)

    oracle = Oracle(items, users, behaviour, live)
    policy = LoggingPolicy(items, users, behaviour, _rng(spec.seed, _STREAM_POLICY))
    events = simulate_events(spec, oracle, policy, _rng(spec.seed, _STREAM_EVENTS))
    events.to_parquet(out_dir / "events.parquet", index=False)
    orders = commerce.orders_from_events(events, items, _rng(spec.seed, _STREAM_ORDERS))
    orders.to_parquet(out_dir / "orders.parquet", index=False)

    counts = _counts(items, users, events, orders, spec)
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "spec": spec.to_dict(),
        "behaviour": behaviour.to_dict(),
        "counts": counts,
    }
    # world.json is written last and atomically: its presence means the world is complete.
    tmp = out_dir / ".world.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, out_dir / "world.json")
    elapsed = time.perf_counter() - started
    log.info("generated %s world at %s in %.1f s: %s", size, out_dir, elapsed, counts)
    return WorldManifest(out_dir, spec, counts, reused=False, elapsed_s=elapsed, behaviour=behaviour.to_dict())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="demo", choices=["tiny", "demo", "large"])
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=None, help="override the spec's seed")
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: all CPUs)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    manifest = generate_world(args.out, args.size, args.seed, args.workers, progress=not args.no_progress)
    print(
        json.dumps(
            {
                "out_dir": str(manifest.out_dir),
                "reused": manifest.reused,
                "elapsed_s": round(manifest.elapsed_s, 2),
                **manifest.counts,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
