"""Peak RSS of one offline evaluation (``evaluate_candidate``, untrained models) on a world's hold-out, the
hold-out optionally replicated under new session and event ids, in batches or as one batch (issue 22).

  .venv/bin/python benchmarks/eval_memory.py data/demo /tmp/table.parquet --replicate 5 --max-sessions 1000
  .venv/bin/python benchmarks/eval_memory.py data/demo /tmp/whole.parquet --replicate 5 --max-sessions 1000 --whole

Prints one JSON line: hold-out impressions, RSS before the run and its peak (getrusage), and the peak after
``holdout_tables`` and after the DuckDB suite. The evaluation table is written to the given Parquet path
(and the λ curve beside it) so two runs can be compared row by row. ``--max-sessions`` lowers the top-K
session sample (the time goes into answering sessions, not into what grows with the log)."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import models.offline.holdout as holdout_module  # noqa: E402
import models.offline.run as run_module  # noqa: E402
import models.offline.sessions as sessions_module  # noqa: E402
from models.offline.batches import Chunking  # noqa: E402
from tests.model_fixtures import untrained_models  # noqa: E402
from vidrec.evaluation.metrics import SuiteSettings  # noqa: E402
from vidrec.gate import load_policy  # noqa: E402
from vidrec.privacy import pseudonymise_column  # noqa: E402
from vidrec.splits import temporal_split  # noqa: E402

KEY = "eval-memory-key"


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def inputs(world: Path, replicate: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(items, embeddings, events) of ``world``, the hold-out repeated ``replicate`` times in all."""
    truth = pd.read_parquet(world / "ground_truth" / "items.parquet")
    columns = ["video_id", "category", "is_product", "is_live_host", "price", "duration_s", "published_at"]
    items = truth[columns].sort_values("video_id").reset_index(drop=True)
    raw = pd.read_parquet(world / "events.parquet")
    events = raw.assign(user_key=pseudonymise_column(raw["user_id"], KEY)).drop(columns=["user_id"])
    if replicate > 1:  # the same users, times and items in new sessions
        hold = temporal_split(events).part(events, "holdout")
        copies = [
            hold.assign(event_id=hold["event_id"].astype(str) + f"-r{i}", session_id=hold["session_id"] + f"-r{i}")
            for i in range(1, replicate)
        ]
        events = pd.concat([events, *copies], ignore_index=True)
    vectors = np.random.default_rng(0).normal(size=(len(items), 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return items, pd.DataFrame({"video_id": items["video_id"], "embedding": list(vectors)}), events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--replicate", type=int, default=1)
    parser.add_argument("--whole", action="store_true", help="one batch (no chunking)")
    parser.add_argument("--resamples", type=int, default=20)
    parser.add_argument("--max-sessions", type=int, default=0)
    parser.add_argument("--memory-limit", default=run_module.MEMORY_LIMIT)
    args = parser.parse_args()
    items, embeddings, events = inputs(args.world, args.replicate)
    _, ranker, retrieval = untrained_models(Path(tempfile.mkdtemp()) / "models")
    holdout_module.LATENCY_REPEATS = 5
    if args.max_sessions:
        sessions_module.MAX_TOP_K_SESSIONS = args.max_sessions
    phases: dict[str, float] = {}

    def peak_after(name: str, fn):
        def wrapped(*a, **kw):
            out = fn(*a, **kw)
            phases[name] = round(_peak_mib())
            return out

        return wrapped

    run_module.holdout_tables = peak_after("holdout_tables", run_module.holdout_tables)
    run_module.evaluate = peak_after("evaluate", run_module.evaluate)
    chunking = Chunking(impressions=10**9, sessions=10**9) if args.whole else Chunking()
    before, start = _peak_mib(), time.perf_counter()
    run = run_module.evaluate_candidate(
        duckdb.connect(),
        ranker,
        retrieval,
        items,
        embeddings,
        events,
        None,
        args.world,
        KEY,
        load_policy(None),
        Path(tempfile.mkdtemp()),
        "memory",
        suite=SuiteSettings(k=10, resamples=args.resamples, seed=0),
        chunking=chunking,
        memory_limit=args.memory_limit,
    )
    seconds = time.perf_counter() - start
    run.table.to_parquet(args.out)
    run.tables.lambda_curve.to_parquet(f"{args.out}.curve.parquet")
    print(
        json.dumps(
            {
                "holdout_impressions": run.tables.impression_count,
                "chunking": str(chunking),
                "memory_limit": args.memory_limit,
                "rss_before_mib": round(before),
                "peak_rss_mib": round(_peak_mib()),
                "peak_mib_after": phases,
                "seconds": round(seconds, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
