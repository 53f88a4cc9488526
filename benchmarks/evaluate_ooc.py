"""Out-of-core evaluation for benchmarks/evaluate.py --out-of-core: the synthetic log written to Parquet in
chunks (never the whole frame in memory), evaluated by vidrec.evaluation.metrics.evaluate() through DuckDB
views over the Parquet under a memory limit with a spill directory, each mode in a child process so its
peak RSS (a psutil sampling thread, every 0.1 s; getrusage's ru_maxrss is not used because Linux carries
the parent's high-water mark into a forked child) is its own. The pandas
reference is measured at small sizes (its peak RSS, extrapolated) and attempted at the full size in a
child under an address-space cap (RLIMIT_AS), so it fails with MemoryError instead of swapping."""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import resource
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

log = logging.getLogger("benchmarks.evaluate_ooc")
GB = 2**30
TABLE_NAMES = ("impressions", "scores", "top_k", "catalogue")


def write_parquet(directory: Path, impressions: int, users: int, items: int, chunk: int = 2_000_000) -> dict:
    """Write ``impressions`` synthetic impressions (benchmarks.evaluate.synthetic, one seed per chunk) as
    Parquet parts under ``directory/<table>/``; event and session ids are offset so they stay unique.
    Returns the row counts per table."""
    from benchmarks.evaluate import SLATE, synthetic

    if chunk % SLATE or impressions % SLATE:
        raise ValueError(f"impressions ({impressions}) and chunk ({chunk}) must be multiples of the slate {SLATE}")
    for name in TABLE_NAMES:
        shutil.rmtree(directory / name, ignore_errors=True)
        (directory / name).mkdir(parents=True)
    rows = dict.fromkeys(TABLE_NAMES, 0)
    for part, start in enumerate(range(0, impressions, chunk)):
        size = min(chunk, impressions - start)
        t = synthetic(size, users, items, seed=part)
        t["impressions"]["event_id"] += start
        t["scores"]["event_id"] += start
        for name in ("impressions", "top_k"):
            t[name]["session_id"] += start // SLATE
        if part > 0:  # one catalogue: the item popularity of the first chunk
            del t["catalogue"]
        for name, frame in t.items():
            frame.to_parquet(directory / name / f"part-{part:05d}.parquet", index=False)
            rows[name] += len(frame)
        del t
    return rows


class PeakRss:
    """Samples this process's RSS every ``every_s`` seconds on a thread; ``peak_gb`` is the largest seen."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s, self.peak = every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gb(self) -> float:
        return self.peak / GB


def _evaluate_child(directory: str, resamples: int, memory_limit: str, temp: str, users: int, items: int, q) -> None:
    import duckdb

    from benchmarks.evaluate import BINS, EPS, MAX_WEIGHT, K
    from vidrec.evaluation.metrics import SuiteSettings, evaluate
    from vidrec.evaluation.parquet import attach_parquet, limit_memory

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    limit_memory(con, memory_limit, temp)
    attach_parquet(con, directory)
    settings = SuiteSettings(
        resamples=resamples, slices=False, reliability=False, logging_policy=False, bins=BINS, eps=EPS,
        max_weight=MAX_WEIGHT, k=K,
    )  # fmt: skip
    with PeakRss() as sampler:
        start, cpu = time.perf_counter(), time.process_time()
        result = evaluate(con, settings, catalogue_size=items, n_users=users, baselines=())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    spilled = sum(f.stat().st_size for f in Path(temp).rglob("*") if f.is_file())
    values = result.table[result.table["model"] == "candidate"].set_index("metric")["value"]
    q.put(
        {
            "wall_s": wall,
            "cpu_s": cpu,
            "peak_rss_gb": sampler.peak_gb,
            "spill_dir_bytes_at_end": spilled,
            "query_s": result.timings_s,
            "metrics": {m: float(v) for m, v in values.items()},
        }
    )


def evaluate_out_of_core(directory: Path, resamples: int, memory_limit: str, users: int, items: int) -> dict:
    """Run the suite over ``directory``'s Parquet in a fresh child process; its wall, CPU and peak RSS."""
    temp = directory / f"spill-{resamples}"
    shutil.rmtree(temp, ignore_errors=True)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    child = ctx.Process(
        target=_evaluate_child, args=(str(directory), resamples, memory_limit, str(temp), users, items, q)
    )
    child.start()
    result = q.get()
    child.join()
    shutil.rmtree(temp, ignore_errors=True)
    return result


def _pandas_child(directory: str | None, impressions: int, users: int, items: int, cap_gb: float | None, q) -> None:
    from benchmarks.evaluate import pandas_suite, synthetic

    if cap_gb is not None:  # virtual address space cap: an allocation past it raises MemoryError, no swapping
        cap = int(cap_gb * GB)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    start = time.perf_counter()
    with PeakRss() as sampler:
        try:
            if directory is None:
                tables = synthetic(impressions, users, items)
            else:
                tables = {name: pd.read_parquet(Path(directory) / name) for name in TABLE_NAMES}
            pandas_suite(tables, users, items)
            outcome = {"ok": True, "wall_s": time.perf_counter() - start}
        except MemoryError as error:  # pyarrow's ArrowMemoryError is a MemoryError too
            outcome = {"ok": False, "error": f"{type(error).__name__}: {str(error)[:200]}"}
            outcome["after_s"] = time.perf_counter() - start
    q.put({**outcome, "peak_rss_gb": sampler.peak_gb})


def pandas_run(directory: Path | None, impressions: int, users: int, items: int, cap_gb: float | None) -> dict:
    """The pandas reference (tables in memory, then pandas_suite) in a child, optionally under RLIMIT_AS."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    child = ctx.Process(
        target=_pandas_child, args=(None if directory is None else str(directory), impressions, users, items, cap_gb, q)
    )
    child.start()
    child.join()  # the results are small: the queue's feeder has flushed before the child exits
    if child.exitcode != 0 or q.empty():
        return {"ok": False, "error": f"child exited with code {child.exitcode}", "peak_rss_gb": None}
    return q.get()


def fit_slope(sizes: list[float], values: list[float]) -> tuple[float, float]:
    """Least-squares line through (size, value): (slope per unit size, intercept)."""
    slope, intercept = np.polyfit(np.asarray(sizes, float), np.asarray(values, float), 1)
    return float(slope), float(intercept)


def log_log_exponent(sizes: list[float], values: list[float]) -> float:
    """The slope of log(value) against log(size): how the value grows with the size."""
    return float(np.polyfit([math.log(s) for s in sizes], [math.log(max(v, 1e-9)) for v in values], 1)[0])


def merge_result(path: Path, payload: dict) -> dict:
    """``payload`` over what ``path`` (scale.json) already holds: evaluate.py and scale.py each own their keys."""
    import json

    record = json.loads(path.read_text()) if path.is_file() else {}
    for key in ("machine", "when", "quick"):
        record.pop(key, None)
    record.update(payload)
    return record


def run(target: int, measure: list[int], data: Path, memory_limit: str, resamples: int, cap_gb: float) -> dict:
    """Measure the out-of-core suite at each size in ``measure`` (the largest also with bootstrap) and report
    ``target``: measured if it is in ``measure``, otherwise extrapolated along the fitted line."""
    runs = []
    for impressions in sorted(measure):
        users, items = max(impressions // 100, 1000), 50_000  # 100 impressions per user, as at 10M
        with PeakRss() as gen:
            start = time.perf_counter()
            rows = write_parquet(data, impressions, users, items)
            gen_s = time.perf_counter() - start
        parquet_gb = sum(f.stat().st_size for f in data.rglob("*.parquet")) / GB
        log.info(
            "%d impressions to Parquet (%.2f GB) in %.0f s, peak %.2f GB", impressions, parquet_gb, gen_s, gen.peak_gb
        )
        plain = evaluate_out_of_core(data, 0, memory_limit, users, items)
        log.info("out of core, no bootstrap: %.1f s, peak RSS %.2f GB", plain["wall_s"], plain["peak_rss_gb"])
        boot = evaluate_out_of_core(data, resamples, memory_limit, users, items)
        per_resample = max(boot["wall_s"] - plain["wall_s"], 0.0) / resamples
        log.info(
            "with %d resamples: %.1f s (%.2f s each), peak %.2f GB",
            resamples,
            boot["wall_s"],
            per_resample,
            boot["peak_rss_gb"],
        )
        runs.append(
            {
                "impressions": impressions, "users": users, "items": items, "rows": rows, "parquet_gb": parquet_gb,
                "generate_s": gen_s, "generate_peak_rss_gb": gen.peak_gb, "no_bootstrap": plain,
                "bootstrap": {**boot, "resamples": resamples}, "bootstrap_s_per_resample": per_resample,
            }
        )  # fmt: skip
    largest = runs[-1]
    guarded = pandas_run(data, largest["impressions"], largest["users"], largest["items"], cap_gb)
    log.info("pandas at %d impressions under a %.0f GB cap: %s", largest["impressions"], cap_gb, guarded)
    small = [1_000_000, 3_000_000]
    pandas_small = [pandas_run(None, n, n // 100, 50_000, None) for n in small]
    slope, intercept = fit_slope(small, [p["peak_rss_gb"] for p in pandas_small])
    sizes = [r["impressions"] for r in runs]

    def at_target(values: list[float]) -> float:
        if target in sizes:
            return values[sizes.index(target)]
        if len(sizes) < 2:
            raise ValueError("extrapolating needs at least two measured sizes")
        s, c = fit_slope(sizes, values)
        return s * target + c

    eval_100m = {
        "impressions": target,
        "wall_s": at_target([r["no_bootstrap"]["wall_s"] for r in runs]),
        "peak_rss_gb": at_target([r["no_bootstrap"]["peak_rss_gb"] for r in runs]),
        "wall_s_with_bootstrap": at_target([r["bootstrap"]["wall_s"] for r in runs]),
        "peak_rss_gb_with_bootstrap": at_target([r["bootstrap"]["peak_rss_gb"] for r in runs]),
        "bootstrap_s_per_resample": at_target([r["bootstrap_s_per_resample"] for r in runs]),
        "resamples_timed": resamples,
        "memory_limit": memory_limit,
        "runs": runs,
        "pandas": {
            "guarded_attempt": {"impressions": largest["impressions"], "rlimit_as_gb": cap_gb, **guarded},
            "measured_peak_rss_gb": dict(zip(map(str, small), [p["peak_rss_gb"] for p in pandas_small], strict=True)),
            "measured_wall_s": dict(zip(map(str, small), [p.get("wall_s") for p in pandas_small], strict=True)),
            "peak_rss_gb_per_million": slope * 1e6,
            "extrapolated_peak_rss_gb_at_target": slope * target + intercept,
            "how": "peak RSS (sampled every 0.1 s in a child) of synthetic() + pandas_suite() at the measured sizes, "
            "line fitted and evaluated at the target size",
        },
    }
    if target not in sizes:
        eval_100m["extrapolated_from"] = sizes
    return eval_100m
