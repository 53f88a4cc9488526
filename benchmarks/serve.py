"""Serving speed: /recommend against a served process over a 100,000-video index, the HTTP floor, the
API floor and a prior-only /recommend beside it (with the server's CPU per request for each), the IVF
index (and HNSW) versus exact search on the same vectors, and upload-to-recommendable time for a 10 s
video.

The model is trained briefly on the demo world (the encoder for its default epochs, the ranker for one):
quality is not measured here, only the cost of answering. The catalogue is grown to ``--items`` by
synthesising items between the real ones: each synthetic item copies a random real item's metadata and
takes a random convex mix (Dirichlet(1, 1, 1) weights) of that item's embedding and two other real
items' of the same category,
plus isotropic Gaussian noise of norm ~0.1, renormalised. So the synthetic items fill the region the
real items of a category span (the trained embeddings have an effective rank of ~6 of 64), as a
larger catalogue of the same kinds of video would, instead of ~330 full-rank noisy copies stacked on
each real item (the earlier generation: noise of norm 0.3 in all 64 directions, which makes every
neighbourhood a 64-dimensional ball of near-ties, where HNSW recall@10 tops out near 0.86 whatever
its settings). Synthetic items have id bucket 0, like any item the ranker never trained on.
Recall is still measured against exact brute force on the same vectors. Run the full size under the
heavy-job lock:

    flock /tmp/vidrec-heavy.lock nice -n 5 .venv/bin/python benchmarks/serve.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _common import write_result  # noqa: E402

log = logging.getLogger("benchmarks.serve")
API_KEY = "benchmark-key"
NOISE_NORM = 0.1
MIX_PARENTS = 3  # real items of one category mixed into each synthetic item


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def synthesise(
    items: pd.DataFrame, embeddings: np.ndarray, buckets: np.ndarray, n_items: int, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Grow the catalogue to ``n_items`` with mixes of same-category real items (see the module docstring)."""
    extra = n_items - len(items)
    if extra <= 0:
        return items, embeddings, buckets
    rng = np.random.default_rng(seed)
    parents = rng.integers(0, len(items), extra)
    category = items["category"].fillna("").to_numpy()
    mates = np.empty((extra, MIX_PARENTS - 1), dtype=np.int64)
    for value in np.unique(category[parents]):  # mates drawn from the parent's own category
        members = np.flatnonzero(category == value)
        here = np.flatnonzero(category[parents] == value)
        mates[here] = rng.choice(members, size=(len(here), MIX_PARENTS - 1))
    weights = rng.dirichlet(np.ones(MIX_PARENTS), extra)
    mixed = np.einsum("np,npd->nd", weights, embeddings[np.concatenate([parents[:, None], mates], axis=1)])
    noise = rng.normal(size=(extra, embeddings.shape[1])) * (NOISE_NORM / np.sqrt(embeddings.shape[1]))
    vectors = mixed + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    synthetic = items.iloc[parents].copy()
    synthetic["video_id"] = [f"syn{i:07d}" for i in range(extra)]
    grown = pd.concat([items, synthetic], ignore_index=True)
    return (
        grown,
        np.concatenate([embeddings, vectors.astype(np.float32)]),
        np.concatenate([buckets, np.zeros(extra, dtype=np.int64)]),
    )


def build_model(
    root: Path, world: Path, n_items: int, key: str, features: Path
) -> tuple[str, pd.Series, np.ndarray, int]:
    """Train briefly on ``world``, grow the catalogue, save to the store and promote; returns
    (tag, raw user ids with clicks, grown embeddings, number of real items). ``features`` is the shard cache
    to reuse."""
    from dataclasses import replace

    from assets.model_store import save_to_store
    from models.fit.candidate import bundle_contents, train_candidate
    from models.fit.steps import StepSettings
    from vidrec.config import Paths
    from vidrec.items import tables_from_directory
    from vidrec.registry import ProductionPointer

    paths = Paths(root).ensure()
    started = time.perf_counter()
    items, events = tables_from_directory(world, features, key)
    log.info("tables: %d items, %d events (%.0f s)", len(items), len(events), time.perf_counter() - started)
    # The encoder gets its default epochs (seconds on 300 items): a barely trained encoder collapses every
    # item onto one direction, and noise around a collapsed catalogue is uniform noise, not a catalogue.
    settings = StepSettings(ranker_epochs=1, retrieval_epochs=2, patience=1)
    # Training resumes from last.ckpt where one exists: an earlier run's (possibly of another
    # architecture) must not be continued, every run trains afresh.
    shutil.rmtree(paths.checkpoints / "bench", ignore_errors=True)
    candidate = train_candidate(items, events.drop(columns=["user_id"]), paths.checkpoints / "bench", settings)
    contents = bundle_contents(
        candidate.encoder, candidate.ranker, candidate.retrieval, items, candidate.embeddings, events, []
    )
    log.info("trained (%.0f s); synthesising %d items", time.perf_counter() - started, n_items)
    grown, vectors, buckets = synthesise(items, contents.embeddings, contents.id_buckets, n_items)
    labels = {
        "git_commit": "benchmark",
        "data_version": world.name,
        "run_id": "benchmarks/serve.py",
        "bench_items": str(len(grown)),
    }
    tag = save_to_store(replace(contents, items=grown, embeddings=vectors, id_buckets=buckets), labels, {"metrics": {}})
    ProductionPointer(paths.registry).promote(tag)
    users = events.loc[events["clicked"], "user_id"].drop_duplicates()
    return tag, users, vectors, len(items)


def measure_index(vectors: np.ndarray, queries: int, seed: int = 1) -> dict:
    """The service's ANN (IVF) versus exact on the same vectors: single-query latencies alternating,
    recall@10; HNSW's recall and latency on the same queries are reported beside it (the alternative)."""
    from vidrec.index import ExactIndex, HnswIndex, IvfIndex, recall_at_k

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(vectors), queries)
    q = vectors[picks] + rng.normal(size=(queries, vectors.shape[1])) * (0.2 / np.sqrt(vectors.shape[1]))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    started = time.perf_counter()
    ann = IvfIndex(vectors)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    hnsw = HnswIndex(vectors)
    hnsw_build_s = time.perf_counter() - started
    exact = ExactIndex(vectors)
    ann_ms, exact_ms, hnsw_ms, found, truth, graph = [], [], [], [], [], []
    for i, query in enumerate(q):
        order = ((ann, ann_ms, found), (exact, exact_ms, truth), (hnsw, hnsw_ms, graph))
        for index, times, out in order if i % 2 == 0 else order[::-1]:
            t = time.perf_counter()
            rows, _ = index.search(query, 10)
            times.append((time.perf_counter() - t) * 1000)
            out.append(rows)
    return {
        "ann_p99_ms": _percentile(ann_ms, 99),
        "exact_p99_ms": _percentile(exact_ms, 99),
        "ann_p50_ms": _percentile(ann_ms, 50),
        "exact_p50_ms": _percentile(exact_ms, 50),
        "ann_p99_over_exact": _percentile(ann_ms, 99) / _percentile(exact_ms, 99),
        "ann_recall_at_10": recall_at_k(found, truth),
        "ann_build_s": build_s,
        "index_queries": queries,
        "hnsw": {
            "recall_at_10": recall_at_k(graph, truth),
            "p50_ms": _percentile(hnsw_ms, 50),
            "p99_ms": _percentile(hnsw_ms, 99),
            "build_s": hnsw_build_s,
        },
    }


def payloads(users: list[str], categories: list[str], n: int, seed: int = 2) -> list[dict]:
    """70% known users, 15% known users with a category filter, 15% users the model does not know."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.70:
            out.append({"user_id": rng.choice(users), "k": 10})
        elif roll < 0.85:
            out.append({"user_id": rng.choice(users), "k": 10, "filters": {"category": rng.choice(categories)}})
        else:
            out.append({"user_id": f"bench-new-{i}", "k": 10})
    return out


Call = tuple[str, str, "dict | None"]  # (method, path, JSON body)


async def _send_all(base: str, calls: list[Call], concurrency: int) -> tuple[dict[str, list[float]], Counter]:
    """Send ``calls`` from ``concurrency`` clients; latencies (ms) per path and a count of each status
    (0: the connection failed)."""
    import aiohttp

    latencies: dict[str, list[float]] = {}
    statuses: Counter = Counter()
    queue: asyncio.Queue = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector, headers={"X-API-Key": API_KEY}) as session:

        async def worker() -> None:
            while not queue.empty():
                method, path, body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    async with session.request(method, path, json=body) as reply:
                        await reply.read()
                        status = reply.status
                except aiohttp.ClientError:
                    status = 0
                latencies.setdefault(path, []).append((time.perf_counter() - started) * 1000)
                statuses[status] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses


async def _load(
    base: str, method: str, path: str, bodies: list[dict | None], concurrency: int
) -> tuple[list[float], int]:
    latencies, statuses = await _send_all(base, [(method, path, b) for b in bodies], concurrency)
    return latencies.get(path, []), sum(n for status, n in statuses.items() if status != 200)


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by the server process and its workers."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for process in (root, *root.children(recursive=True)):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:  # a worker gone between listing and reading
            pass
    return total


# Phases of each round: (label, method, path). "recommend" is the measured mix; "floor" a plain route
# that skips BentoML's API path (body parsing, validation, serialisation, the metrics and tracing
# middleware); "api_floor" an authenticated API that does nothing, so api_floor over floor is what the
# API path costs before any work of ours; "prior_only" /recommend for users the model does not know
# (no index search, no ranker pass: the content-only prior's top 10), i.e. the endpoint's own path
# with almost no model work in it.
PHASES = (
    ("recommend", "POST", "/recommend"),
    ("floor", "GET", "/healthz"),
    ("api_floor", "POST", "/ping"),
    ("prior_only", "POST", "/recommend"),
    ("mixed", "", ""),
)
PHASE_NOTES = {
    "recommend": "the measured mix: 70% known users, 15% known users with a category filter, 15% unknown users",
    "floor": "GET /healthz, a plain route outside BentoML's API path (the HTTP floor)",
    "api_floor": "POST /ping, an authenticated API that does nothing (BentoML's API path alone)",
    "prior_only": "POST /recommend for users the model does not know: no index search, no ranker pass",
    "mixed": "every endpoint in turn (the recommend mix, /similar, /search, /creators, /rank of 100 candidates, "
    "/events of one event, GET /model), so the endpoints share the workers as in production",
}
MIXED = ("/recommend", "/similar", "/search", "/creators", "/rank", "/events", "/model")
QUERIES = ("guitar concert", "cooking pasta", "mountain travel", "live music", "funny cat", "street food")


def mixed_calls(part: list[dict], users: list[str], videos: list[str], seed: int) -> list[Call]:
    """One call per body of ``part``, cycling through ``MIXED`` (the /recommend ones are the mix's bodies)."""
    rng = random.Random(seed)
    calls: list[Call] = []
    for i, body in enumerate(part):
        path, user = MIXED[i % len(MIXED)], rng.choice(users)
        if path == "/recommend":
            calls.append(("POST", path, body))
        elif path == "/similar":
            calls.append(("POST", path, {"video_id": rng.choice(videos), "k": 10}))
        elif path == "/search":
            calls.append(("POST", path, {"query": rng.choice(QUERIES), "k": 10}))
        elif path == "/creators":
            calls.append(("POST", path, {"user_id": user, "k": 5}))
        elif path == "/rank":
            calls.append(("POST", path, {"requests": [{"user_id": user, "video_ids": rng.sample(videos, 100)}]}))
        elif path == "/events":
            event = {"user_id": user, "video_id": rng.choice(videos), "clicked": True, "watch_s": 3.0, "position": 1}
            calls.append(("POST", path, {"events": [event]}))
        else:
            calls.append(("GET", path, None))
    return calls


def _phase_bodies(label: str, part: list[dict], round_index: int) -> list[dict | None]:
    if label == "recommend":
        return part
    if label == "prior_only":
        return [{"user_id": f"bench-unknown-{round_index}-{i}", "k": 10} for i in range(len(part))]
    return [None if label == "floor" else {}] * len(part)


def run_load(
    base: str, bodies: list[dict], concurrency: int, rounds: int, server_pid: int, users: list[str], videos: list[str]
) -> dict:
    """Alternate the ``PHASES`` in rounds (reversed every other round) so all of them see the same machine
    state. The server's CPU time per request (all workers) is read around each phase: at concurrency 8 on
    2 shared cores the latency is mostly queueing, so it follows what each request costs (server + client)."""
    latencies: dict[str, list[float]] = {label: [] for label, _, _ in PHASES}
    server_cpu_s = {label: 0.0 for label, _, _ in PHASES}
    errors, per_round = 0, []
    statuses: Counter = Counter()
    endpoint_ms: dict[str, list[float]] = {path: [] for path in MIXED}
    client_cpu_s = load_s = 0.0  # the client shares the cores with the server: its CPU use is reported
    chunk = max(1, len(bodies) // rounds)
    for r in range(rounds):
        part = bodies[r * chunk : (r + 1) * chunk] if r < rounds - 1 else bodies[r * chunk :]
        round_stats = {}
        started = time.perf_counter()
        for label, method, path in PHASES if r % 2 == 0 else PHASES[::-1]:
            if label == "mixed":
                calls = mixed_calls(part, users, videos, seed=r)
            else:
                calls = [(method, path, body) for body in _phase_bodies(label, part, r)]
            served = _tree_cpu_s(server_pid)  # read outside the timers: psutil's own work is not the client's
            t, cpu = time.perf_counter(), time.process_time()
            by_path, counts = asyncio.run(_send_all(base, calls, concurrency))
            elapsed, client_cpu = time.perf_counter() - t, time.process_time() - cpu
            got = [ms for values in by_path.values() for ms in values]
            failed = sum(n for status, n in counts.items() if status != 200)
            statuses.update(counts)
            if label == "mixed":
                for endpoint, values in by_path.items():
                    endpoint_ms[endpoint] += values
            server_cpu_s[label] += _tree_cpu_s(server_pid) - served
            round_stats[label] = (got, elapsed)
            latencies[label] += got
            if label == "recommend":
                client_cpu_s += client_cpu
                load_s += elapsed
            errors += failed
        rec, rec_s = round_stats["recommend"]
        p99 = {label: _percentile(got, 99) for label, (got, _) in round_stats.items()}
        per_round.append(
            {
                "recommend_p99_ms": p99["recommend"],
                "floor_p99_ms": p99["floor"],
                "api_floor_p99_ms": p99["api_floor"],
                "prior_only_p99_ms": p99["prior_only"],
                "mixed_p99_ms": p99["mixed"],
                "rps": len(rec) / rec_s,
            }
        )
        log.info(
            "round %d/%d: /recommend p50 %.1f ms p99 %.1f ms, %.0f rps; p99 floor %.1f, API floor %.1f, "
            "prior only %.1f ms (%.0f s)",
            r + 1,
            rounds,
            _percentile(rec, 50),
            p99["recommend"],
            len(rec) / rec_s,
            p99["floor"],
            p99["api_floor"],
            p99["prior_only"],
            time.perf_counter() - started,
        )
    p99 = {label: _percentile(values, 99) for label, values in latencies.items()}

    def median_round(label: str) -> float:
        return statistics.median(r[f"{label}_p99_ms"] / r["floor_p99_ms"] for r in per_round)

    cpu_ms = {label: 1000 * server_cpu_s[label] / max(len(latencies[label]), 1) for label in latencies}
    return {
        "requests": len(latencies["recommend"]),
        "errors": errors,
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors_5xx": sum(n for status, n in statuses.items() if status >= 500 or status == 0),
        "endpoints": {
            path: {"p50_ms": _percentile(values, 50), "p99_ms": _percentile(values, 99), "requests": len(values)}
            for path, values in endpoint_ms.items()
        },
        "endpoints_over_recommend_p50": {
            path: _percentile(values, 50) / _percentile(endpoint_ms["/recommend"], 50)
            for path, values in endpoint_ms.items()
        },
        "recommend_p50_ms": _percentile(latencies["recommend"], 50),
        "recommend_p99_ms": p99["recommend"],
        "floor_p50_ms": _percentile(latencies["floor"], 50),
        "floor_p99_ms": p99["floor"],
        "p99_over_floor": p99["recommend"] / p99["floor"],
        "rps": statistics.median(r["rps"] for r in per_round),
        "median_round_p99_over_floor": median_round("recommend"),
        "api_floor_p50_ms": _percentile(latencies["api_floor"], 50),
        "api_floor_p99_ms": p99["api_floor"],
        "api_floor_p99_over_floor": p99["api_floor"] / p99["floor"],
        "median_round_api_floor_over_floor": median_round("api_floor"),
        "prior_only_p50_ms": _percentile(latencies["prior_only"], 50),
        "prior_only_p99_ms": p99["prior_only"],
        "prior_only_p99_over_floor": p99["prior_only"] / p99["floor"],
        "median_round_prior_only_over_floor": median_round("prior_only"),
        "server_cpu_ms_per_request": {
            **cpu_ms,
            # Differences between the phases: what each layer of a /recommend adds to the one below it.
            "recommend_breakdown": {
                "http_server": cpu_ms["floor"],
                "bentoml_api_path": cpu_ms["api_floor"] - cpu_ms["floor"],
                "endpoint_path": cpu_ms["prior_only"] - cpu_ms["api_floor"],
                "model_work": cpu_ms["recommend"] - cpu_ms["prior_only"],
                "notes": {
                    "http_server": "GET /healthz: uvicorn and BentoML's middleware, no API",
                    "bentoml_api_path": "POST /ping over /healthz: body parsing, validation, serialisation, the guard",
                    "endpoint_path": "prior-only /recommend over /ping: pseudonymisation, the prior's "
                    "top 10, a 10-item response",
                    "model_work": "the measured mix over prior only: history lookup, index search, ranker pass, merge",
                },
            },
        },
        "client_cpu_ms_per_request": 1000 * client_cpu_s / max(len(latencies["recommend"]), 1),
        "client_cpu_share": client_cpu_s / max(load_s, 1e-9),
        "rounds": per_round,
    }


def measure_stages(root: Path, tag: str, key: str, bodies: list[dict]) -> dict:
    """The model's work per /recommend by stage, in this process over the promoted model (``serve_stages``)."""
    import bentoml
    from serve_stages import stage_breakdown

    return stage_breakdown(Path(bentoml.models.get(tag).path), tag, key, root, bodies)


def render_clip(path: Path, seconds: float = 10.0) -> Path:
    """A 10 s 320x240 24 fps H.264 + AAC clip rendered by the demo world's renderer."""
    from vidrec.world.render import RenderJob, render_video

    render_video(
        RenderJob(
            video_id="bench_upload",
            path=str(path),
            hue=0.31,
            pitch_hz=330.0,
            style=1,
            energy=0.6,
            quality=0.9,
            has_audio=True,
            n_frames=int(seconds * 24),
            fps=24,
            width=320,
            height=240,
            sample_rate=16000,
            seed=7,
            index=0,
        )
    )
    return path


def measure_upload(base: str, clip: Path, repeats: int) -> dict:
    """Seconds from sending the upload until /similar and /rank both know the new video (median)."""
    import httpx

    times = []
    with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=120) as client:
        for i in range(repeats):
            data = clip.read_bytes() + b"\0" * i  # new bytes each time: a fresh video, not a duplicate
            started = time.perf_counter()
            reply = client.post(
                "/videos",
                files={"file": ("clip.mp4", data, "video/mp4")},
                data={
                    "title": f"benchmark upload {i}",
                    "category": "music",
                    "creator_id": "c_bench",
                    "tags": "guitar,live",
                    "description": "a ten second upload",
                },
            )
            reply.raise_for_status()
            video_id = reply.json()["video_id"]
            while True:
                similar = client.post("/similar", json={"video_id": video_id, "k": 5})
                rank = client.post("/rank", json={"requests": [{"user_id": "u", "video_ids": [video_id]}]})
                if similar.status_code == 200 and rank.status_code == 200 and not rank.json()[0]["unknown_video_ids"]:
                    break
                time.sleep(0.05)
            times.append(time.perf_counter() - started)
    return {"upload_to_recommendable_s": statistics.median(times), "upload_runs_s": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny world, 5,000 items, 1,000 requests")
    parser.add_argument("--out", default=None)
    parser.add_argument("--items", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--root", default=None, help="state root for the benchmark (default: <VIDREC_HOME>/benchmarks/serve[-quick])"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    n_items = args.items or (5_000 if args.quick else 100_000)
    n_requests = args.requests or (1_000 if args.quick else 10_000)

    from bentos import server
    from vidrec.config import Paths, resolve_data, resolve_root, tool_env
    from vidrec.world.generate import generate_world

    main_root = resolve_root()
    root = (
        Path(args.root).resolve()
        if args.root
        else main_root / "benchmarks" / ("serve-quick" if args.quick else "serve")
    )
    workdir = root / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    key = "benchmark-pseudonym-key"
    env = {**tool_env(root, {"VIDREC_PSEUDONYM_KEY": key}), "VIDREC_API_KEY": API_KEY}
    os.environ.update(env)  # BentoML reads its home when first imported (below, via the model store)
    world = resolve_data() if not args.quick else workdir / "tiny"
    if args.quick:
        generate_world(world, size="tiny", progress=False)
    # Shards and text embeddings are content-addressed: reuse the main root's cache.
    tag, users, vectors, n_real = build_model(root, world, n_items, key, Paths(main_root).features)
    from bentos.service import WORKERS as workers  # after the environment: BentoML reads its home on import
    from models.serving.path import PathSettings
    from vidrec.index import HnswSettings, IvfSettings

    index = measure_index(vectors, queries=500 if args.quick else 2_000)
    log.info("index: %s", {k: v for k, v in index.items()})
    categories = sorted({c for c in pd.read_csv(world / "metadata.csv")["category"].dropna()})
    bodies = payloads(users.tolist(), categories, n_requests)
    stages = measure_stages(root, tag, key, bodies[: min(len(bodies), 3000)])
    log.info("model stages: %s", stages["ms_per_request"])

    port = server.free_port()
    started = time.perf_counter()
    process = server.start(port, env, timeout_s=900, log_path=workdir / "server.log")
    startup_s = time.perf_counter() - started
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        info = httpx.get(f"{base}/model", headers={"X-API-Key": API_KEY}, timeout=60).json()
        asyncio.run(_load(base, "POST", "/recommend", bodies[:200], args.concurrency))  # warm-up, not counted
        # Synthetic ids only: every one is in the catalogue (a real id may have been quarantined, and /similar
        # would answer 404), and each copies a real item's metadata.
        videos = [f"syn{i:07d}" for i in range(min(2000, info["items"] - n_real))]
        load = run_load(
            base, bodies, args.concurrency, rounds=10, server_pid=process.pid, users=users.tolist(), videos=videos
        )
        clip = render_clip(workdir / "clip10s.mp4")
        upload = measure_upload(base, clip, repeats=3)
    finally:
        server.stop(process)
    payload = {
        "sizes": {
            "items": info["items"],
            "requests": load["requests"],
            "concurrency": args.concurrency,
            "world": world.name,
            "index": info["index"],
            "upload_clip_s": 10.0,
            "real_items": n_real,
            "index_settings": {**vars(IvfSettings()), "hnsw": vars(HnswSettings())},
            "synthetic_items": (
                f"{info['items'] - n_real} items: Dirichlet(1,1,1) mix of {MIX_PARENTS} same-category "
                f"real embeddings + isotropic noise of norm {NOISE_NORM}, renormalised"
            ),
            "index_queries": "catalogue vectors + isotropic noise of norm 0.2; recall vs exact brute force",
            "candidates_per_request": PathSettings().n_candidates,
            "phases": PHASE_NOTES,
        },
        "items": info["items"],
        "requests": load["requests"],
        "concurrency": args.concurrency,
        **{k: v for k, v in load.items() if k != "requests"},
        **index,
        "model_stages": stages,
        **upload,
        "server_startup_s": startup_s,
        "model_tag": tag,
        "workers": workers,
    }
    path = write_result("serve", payload, args.out, args.quick)
    print(json.dumps({k: v for k, v in payload.items() if k != "rounds"}, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
