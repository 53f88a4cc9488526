"""Run a function over many inputs in isolated, memory-capped worker processes.

Media libraries can segfault, hang or allocate without bound on hostile input; a worker
process per task slot (with a timeout and an address-space cap) turns each of those into
a per-input failure instead of a dead run.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pebble import ProcessExpired, ProcessPool
from threadpoolctl import threadpool_limits
from tqdm import tqdm

log = logging.getLogger(__name__)

_LOG_EVERY = 50


class MediaError(Exception):
    """A failure whose message is already a complete, human readable quarantine reason."""


@dataclass(frozen=True)
class Outcome:
    """What one task produced: a value, or the exception that stopped it."""

    key: str
    value: Any = None
    error: BaseException | None = None


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _init_worker(memory_mb: int, preload: tuple[str, ...]) -> None:
    """No core dumps; import the task modules, then cap address-space growth at ``memory_mb``.

    The cap is headroom over the worker's size after imports: numpy, PyAV and pandas
    alone map ~0.6 GB of address space, so an absolute cap would be mostly spent on them.
    """
    # A crash on hostile input must not drop a core file (as large as the worker) into cwd.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for module in preload:
        importlib.import_module(module)
    # Workers run one per core: BLAS threads (the log-mel projection) would oversubscribe the
    # machine, and under load they made extraction 2x slower and erratic (measured).
    threadpool_limits(1)
    if memory_mb > 0:
        limit = _virtual_memory_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def describe_failure(error: BaseException, *, label: str, timeout_s: float, memory_mb: int) -> str:
    """A quarantine reason for an exception raised by, or instead of, a worker task."""
    if isinstance(error, MediaError):
        return str(error)
    if isinstance(error, TimeoutError):
        return (
            f"{label} timed out after {timeout_s:g} s: it is retried on the next run; if it keeps timing "
            "out, re-encode the file at a lower resolution or bitrate"
        )
    if isinstance(error, ProcessExpired):
        return (
            f"{label} worker crashed (exit code {error.exitcode}): it is retried on the next run; if it "
            "keeps crashing, re-export the file as MP4 (H.264 video, AAC audio)"
        )
    if isinstance(error, MemoryError):
        return (
            f"{label} ran out of memory (limit {memory_mb} MB over baseline): re-encode the file at a lower resolution"
        )
    return (
        f"{label} failed: {type(error).__name__}: {error}; re-export the file as MP4 (H.264 video, AAC "
        "audio), and report the file if that does not help"
    )


def run_isolated(
    fn: Callable[..., Any],
    jobs: Sequence[tuple[str, tuple[Any, ...]]],
    *,
    timeout_s: float,
    memory_mb: int,
    workers: int = 2,
    progress: bool = True,
    label: str = "task",
) -> dict[str, Outcome]:
    """Call ``fn(*args)`` for each ``(key, args)`` in a pool; every key gets one Outcome.

    ``fn`` must be a module-level function (workers are spawned, not forked, so they start
    clean even when the parent holds threads or a large heap). A crash surfaces as
    ``ProcessExpired``, a hang as ``TimeoutError``; the pool replaces the dead worker.
    """
    if not jobs:
        return {}
    preload = (fn.__module__,)
    outcomes: dict[str, Outcome] = {}
    started = time.monotonic()
    failed = 0
    bar = tqdm(total=len(jobs), desc=label, unit="file", disable=not progress)
    with ProcessPool(
        max_workers=max(1, min(workers, len(jobs))),
        initializer=_init_worker,
        initargs=(memory_mb, preload),
        context=multiprocessing.get_context("spawn"),
    ) as pool:
        futures: list[tuple[str, Future[Any]]] = [
            (key, pool.schedule(fn, args=args, timeout=timeout_s)) for key, args in jobs
        ]
        for done, (key, future) in enumerate(futures, start=1):
            try:
                outcomes[key] = Outcome(key, value=future.result())
            except BrokenProcessPool as error:
                # The pool itself failed (workers could not start): not any one input's fault.
                raise RuntimeError(
                    f"{label}: worker pool broke ({error}); if called from a script, start it "
                    "under `if __name__ == '__main__':` (workers are spawned and import __main__)"
                ) from error
            except Exception as error:  # every other failure becomes this key's outcome
                outcomes[key] = Outcome(key, error=error)
                failed += 1
            bar.update(1)
            if done % _LOG_EVERY == 0 or done == len(futures):
                elapsed = time.monotonic() - started
                log.info(
                    "%s: %d/%d done, %d failed, %.1f files/s",
                    label,
                    done,
                    len(futures),
                    failed,
                    done / max(elapsed, 1e-9),
                )
    bar.close()
    return outcomes
