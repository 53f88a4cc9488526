"""Real-time user state: how soon an acknowledged click shows in /recommend, what the store costs per
/recommend, and what it holds per user, for the embedded (SQLite) and the Redis backend.

Three served processes run side by side on one trained model (the tiny world, the catalogue grown to
``--items`` as in benchmarks/serve.py), 2 workers each: the store off (``VIDREC_STATE_URL=off``, the
histories frozen at promotion), embedded, and Redis (a real redis-server on 127.0.0.1).

- ``event_to_visible``: a client posts a click for a user, then asks /recommend for that user until
  its ``history`` ends with the clicked video; the time from sending the event to that answer (so it
  includes both requests' latency). ``--concurrency`` clients at once, each request on a new connection
  so the two workers share them (the event and the read often land on different workers). Half the
  clicks are by users the model never saw (they become known), half by users it trained on.
- ``recommend_cpu_ms_delta``: server CPU (the process tree: main process and workers) per /recommend for
  users the model trained on, each round measuring the three servers back to back (order rotated); with
  the store minus off, the median of the rounds' paired differences. The Redis server's own CPU is not
  in it; the in-process micro-benchmark (``store_calls``) gives each store call's client CPU.
- ``store_bytes_per_user``: a user with ``max_items`` (50) events, on disk (SQLite with its WAL, after a
  checkpoint) and in Redis (MEMORY USAGE).

    nice -n 5 .venv/bin/python benchmarks/realtime.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _common import write_result  # noqa: E402
from serve import API_KEY, _load, _percentile, _tree_cpu_s, build_model  # noqa: E402

log = logging.getLogger("benchmarks.realtime")
BACKENDS = ("embedded", "redis")
WORKER_LOG = re.compile(r"\[entry_service:Recommender:(\d+)\]")
GIVE_UP_S = 5.0  # a click not visible after this long counts as not visible (and as 5,000 ms)
HISTORY = 20  # the ranker's history length: what /recommend reads from the store


def measure_store(store, users: list[str], max_items: int) -> dict:  # noqa: ANN001 (a StateStore)
    """In-process cost of the store calls the service makes: a one-click write and a read of the ranker's
    history length (``read``; ``read_full``: all ``max_items``)
    (CPU and wall per call, medians of 5 batches), and bytes per user holding ``max_items`` events."""
    from vidrec.state import StateEvent

    now = time.time()
    for i in range(max_items):  # every user full
        store.record([(u, StateEvent(f"v{i}", "click", now + i)) for u in users])
    per: dict[str, list[tuple[float, float]]] = {"write": [], "read": [], "read_full": []}
    for batch in range(5):
        for name in per:
            wall, cpu = time.perf_counter(), time.process_time()
            for j, user in enumerate(users):
                if name == "write":
                    store.record([(user, StateEvent(f"w{batch}-{j}", "click", now + 1000 + batch))])
                else:
                    store.recent(user, HISTORY if name == "read" else None)
            per[name].append(((time.perf_counter() - wall) / len(users), (time.process_time() - cpu) / len(users)))
    if hasattr(store, "path"):  # SQLite: fold the WAL in so the file holds what the users need
        store._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        used = store.bytes_used()
    else:
        used = store.bytes_used(users)
    out = {
        f"{n}_{k}_us": statistics.median(v[i] for v in per[n]) * 1e6 for n in per for i, k in ((0, "wall"), (1, "cpu"))
    }
    return {**out, "store_bytes_per_user": used / len(users), "users": len(users), "items_per_user": max_items}


async def fresh_cycles(base: str, cycles: int, concurrency: int, users: list[str], videos: list[str]) -> dict:
    """``cycles`` click → visible measurements from ``concurrency`` clients (see the module docstring)."""
    import aiohttp

    totals, after_ack, reads_needed, errors, invisible = [], [], [], 0, 0
    rng = random.Random(7)
    remaining = cycles
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
    async with aiohttp.ClientSession(base, connector=connector, headers={"X-API-Key": API_KEY}) as session:

        async def worker(own: list[str]) -> None:
            nonlocal remaining, errors, invisible
            while remaining > 0:
                remaining -= 1
                # A known user clicks through one client only: another client's click could otherwise end
                # the history first and the wait for this one would never end.
                user = rng.choice(own) if own and rng.random() < 0.5 else f"rt-{uuid.uuid4().hex[:12]}"
                video = rng.choice(videos)
                event = {"user_id": user, "video_id": video, "clicked": True, "watch_s": 4.0}
                started = time.perf_counter()
                async with session.post("/events", json={"events": [event]}) as reply:
                    await reply.read()
                    if reply.status != 200:
                        errors += 1
                        continue
                acked, reads = time.perf_counter(), 0
                while True:
                    reads += 1
                    async with session.post("/recommend", json={"user_id": user, "k": 10}) as reply:
                        body = await reply.json() if reply.status == 200 else {}
                    errors += reply.status != 200
                    history = body.get("history") or []
                    if history and history[-1]["video_id"] == video:
                        break
                    if time.perf_counter() - started > GIVE_UP_S:
                        invisible += 1
                        break
                done = time.perf_counter()
                totals.append((done - started) * 1000)
                after_ack.append((done - acked) * 1000)
                reads_needed.append(reads)

        await asyncio.gather(*(worker(users[w::concurrency]) for w in range(concurrency)))
    return {
        "event_to_visible_p50_ms": _percentile(totals, 50),
        "event_to_visible_p99_ms": _percentile(totals, 99),
        "event_to_visible_max_ms": max(totals),
        "ack_to_visible_p50_ms": _percentile(after_ack, 50),
        "ack_to_visible_p99_ms": _percentile(after_ack, 99),
        "visible_on_first_read_share": sum(r == 1 for r in reads_needed) / len(reads_needed),
        "cycles": len(totals),
        "not_visible_within_5s": invisible,
        "errors": errors,
    }


def events_by_worker(log_path: Path) -> dict[str, int]:
    """/events calls per worker from the server's access log: the clicks really went through both workers
    (and every first read after them was fresh, whichever worker answered it)."""
    counts: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = WORKER_LOG.search(line)
        if match and "path=/events" in line:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return dict(sorted(counts.items()))


def cpu_rounds(bases: dict[str, str], pids: dict[str, int], users: list[str], per_round: int, rounds: int, c: int):
    """Server CPU ms per /recommend of known users, per server, one list entry per round (order rotated)."""
    rng = random.Random(3)
    out: dict[str, list[float]] = {label: [] for label in bases}
    labels = list(bases)
    for r in range(rounds):
        bodies = [{"user_id": rng.choice(users), "k": 10} for _ in range(per_round)]
        for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
            before = _tree_cpu_s(pids[label])
            _, failed = asyncio.run(_load(bases[label], "POST", "/recommend", bodies, c))
            out[label].append(1000 * (_tree_cpu_s(pids[label]) - before) / per_round)
            if failed:
                raise RuntimeError(f"{failed} /recommend calls failed on the {label} server")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cycles and rounds")
    parser.add_argument("--out", default=None)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--root", default=None, help="default: <VIDREC_HOME>/benchmarks/realtime[-quick]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cycles, rounds, per_round = (100, 3, 200) if args.quick else (600, 10, 500)

    from bentos import server
    from vidrec.config import Paths, resolve_root, tool_env
    from vidrec.world.generate import generate_world

    main_root = resolve_root()
    root = Path(args.root).resolve() if args.root else main_root / "benchmarks" / f"realtime{'-quick' * args.quick}"
    workdir = root / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    key = "benchmark-pseudonym-key"
    env = {**tool_env(root, {"VIDREC_PSEUDONYM_KEY": key}), "VIDREC_API_KEY": API_KEY}
    os.environ.update(env)  # BentoML reads its home when first imported (below, via the model store)
    world = workdir / "tiny"
    if not (world / "metadata.csv").exists():
        generate_world(world, size="tiny", progress=False)
    tag, users, _, n_real = build_model(root, world, args.items, key, Paths(main_root).features)
    users = users.astype(str).tolist()
    videos = [f"syn{i:07d}" for i in range(min(2000, args.items - n_real))]

    from tests.redis_server import running_redis
    from vidrec.privacy import pseudonymise
    from vidrec.state import StoreSettings, open_store

    sqlite_path = root / "state" / "bench.sqlite"
    for stale in root.glob("state/bench.sqlite*"):
        stale.unlink()
    with running_redis(workdir / "redis") as redis_server:
        keys = [pseudonymise(f"micro-{i}", key) for i in range(500 if args.quick else 2000)]
        micro = {
            "embedded": measure_store(open_store(f"sqlite://{root / 'state' / 'micro.sqlite'}", root), keys, 50),
            "redis": measure_store(open_store(redis_server.url(1), root, StoreSettings()), keys, 50),
        }
        log.info("store micro-benchmark: %s", micro)
        urls = {"off": "off", "embedded": f"sqlite://{sqlite_path}", "redis": redis_server.url(0)}
        processes, bases = {}, {}
        try:
            for label, url in urls.items():
                port = server.free_port()
                processes[label] = server.start(
                    port, {**env, "VIDREC_STATE_URL": url}, timeout_s=600, log_path=workdir / f"server-{label}.log"
                )
                bases[label] = f"http://127.0.0.1:{port}"
            warm = [{"user_id": random.choice(users), "k": 10} for _ in range(200)]
            for base in bases.values():
                asyncio.run(_load(base, "POST", "/recommend", warm, args.concurrency))
            pids = {label: p.pid for label, p in processes.items()}
            cpu = cpu_rounds(bases, pids, users, per_round, rounds, args.concurrency)
            log.info("cpu ms per /recommend by round: %s", cpu)
            fresh: dict[str, dict] = {}
            for label in BACKENDS:
                fresh[label] = asyncio.run(fresh_cycles(bases[label], cycles, args.concurrency, users, videos))
                log.info("%s freshness: %s", label, fresh[label])
        finally:
            for process in processes.values():
                server.stop(process)
    cpu_ms = {label: statistics.median(v) for label, v in cpu.items()}
    per_backend = {
        label: {
            **fresh[label],
            "events_by_worker": events_by_worker(workdir / f"server-{label}.log"),
            "recommend_cpu_ms": cpu_ms[label],
            # Paired by round (each round measures the three servers back to back, the order rotated), so
            # the machine's load, which moves between rounds, cancels out of the difference.
            "recommend_cpu_ms_delta": statistics.median(a - b for a, b in zip(cpu[label], cpu["off"])),
            "recommend_cpu_ms_delta_of_medians": cpu_ms[label] - cpu_ms["off"],
            "store_bytes_per_user": micro[label]["store_bytes_per_user"],
            "store_calls": {k: v for k, v in micro[label].items() if k.endswith("_us")},
        }
        for label in BACKENDS
    }
    payload = {
        "sizes": {
            "items": args.items,
            "real_items": n_real,
            "known_users": len(users),
            "workers_per_server": 2,
            "concurrency": args.concurrency,
            "cycles_per_backend": cycles,
            "cpu_rounds": rounds,
            "recommends_per_round": per_round,
            "micro_users": len(keys),
            "max_items": 50,
        },
        "model_tag": tag,
        # Top level: the worse backend, so one number answers "is the target met".
        "event_to_visible_p50_ms": max(per_backend[b]["event_to_visible_p50_ms"] for b in BACKENDS),
        "event_to_visible_p99_ms": max(per_backend[b]["event_to_visible_p99_ms"] for b in BACKENDS),
        "recommend_cpu_ms_delta": max(per_backend[b]["recommend_cpu_ms_delta"] for b in BACKENDS),
        "store_bytes_per_user": max(per_backend[b]["store_bytes_per_user"] for b in BACKENDS),
        "recommend_cpu_ms_off": cpu_ms["off"],
        "recommend_cpu_ms_rounds": cpu,
        **per_backend,
        "targets": {"event_to_visible_p99_ms": 1000, "recommend_cpu_ms_delta": 0.3},
    }
    path = write_result("realtime", payload, args.out, args.quick)
    print(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
