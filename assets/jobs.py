"""Jobs: the headless `main` run, the nightly retraining run, and the executors they use."""

import dagster as dg

# Everything from raw files to the promoted model. `raw_events` is external (it is the log a
# producer writes), so no job materialises it.
PIPELINE = dg.AssetSelection.all() - dg.AssetSelection.assets("raw_events")

# Run config for the nightly job's two executors. In-process is the default: on a 2-core machine
# each multiprocess step re-imports torch, GX and Dagster (~10 s), which costs more than the little
# parallelism the graph offers (benchmarks/orchestration.py measures both; docs/operations.md).
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def multiprocess_config(max_concurrent: int = 2) -> dict:
    """Run config that executes each step in its own process, ``max_concurrent`` at a time."""
    return {"execution": {"config": {"multiprocess": {"max_concurrent": max_concurrent}}}}


# In-process: each step of a multiprocess run re-imports torch, GX and Dagster (~10 s per
# step on 2 cores), which dominates a demo-sized run. `make pipeline` and `dvc repro` run this.
main_job = dg.define_asset_job(
    "main",
    selection=PIPELINE,
    executor_def=dg.in_process_executor,
    description="Every stage from raw files to the promoted model, in one process.",
    tags={"vidrec/trigger": "manual"},
)

# The same stages with the executor chosen per run: the schedule runs it in-process, a cluster
# deployment (or `-c` with multiprocess_config()) runs each step in its own process.
nightly_job = dg.define_asset_job(
    "nightly",
    selection=PIPELINE,
    executor_def=dg.multi_or_in_process_executor,
    description="Nightly retraining: features -> training -> evaluation -> gate -> promotion. "
    "The blocking promotion gate keeps production untouched unless the candidate passes.",
    tags={"vidrec/trigger": "nightly"},
)

JOBS = (main_job, nightly_job)
