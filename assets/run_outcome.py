"""What stopped the last ``main`` run, for ``make demo`` to decide whether to go on.

    python -m assets.run_outcome

A run that only blocking checks stopped (the promotion gate, the drift checks) ended the way the
platform is built to end when a retrained candidate is not good enough: the candidate stays in the
store for inspection, out of production, and the champion keeps serving. This prints which checks and
rules kept the candidate out and exits 0 when there is a production model to serve. Any other failure,
or no production model at all, prints why and exits 1. ``make pipeline`` itself still fails on a
blocked candidate, so a scheduler or CI sees it.
"""

import sys

import dagster as dg
from dagster_shared.error import SerializableErrorInfo

from assets.reporting import failed_check_lines
from vidrec.config import Paths, resolve_root
from vidrec.registry import ProductionPointer

JOB = "main"
CHECK_FAILED = "DagsterAssetCheckFailedError"


def _error_classes(error: SerializableErrorInfo | None) -> set[str]:
    """The class names along an error's cause and context chain."""
    names = set()
    while error is not None:
        names.add(error.cls_name)
        error = error.cause or error.context
    return names


def step_failures(instance: dg.DagsterInstance, run_id: str) -> dict[str, bool]:
    """Each failed step -> whether a blocking check's failure is what failed it."""
    failures = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        failures[event.step_key] = CHECK_FAILED in _error_classes(event.step_failure_data.error)
    return failures


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """``asset:check (SEVERITY): rule; rule`` for each check of the run that did not pass."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    return failed_check_lines(entry.dagster_event.event_specific_data for entry in entries)


def outcome(instance: dg.DagsterInstance, production_tag: str | None, job: str = JOB) -> tuple[int, str]:
    """(exit code, message) for the latest run of ``job``."""
    records = instance.get_run_records(dg.RunsFilter(job_name=job), limit=1)
    if not records:
        return 1, f"no {job} run is recorded in this Dagster instance"
    run = records[0].dagster_run
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return 0, f"the last {job} run ({run.run_id}) succeeded"
    failures = step_failures(instance, run.run_id)
    others = sorted(step for step, by_check in failures.items() if not by_check)
    if others or not failures:
        return 1, (
            f"the last {job} run ({run.run_id}) ended {run.status.value}; failed steps: "
            f"{', '.join(others) or 'none recorded'} (its log is above, and in `make ui`)"
        )
    checks = "\n  ".join(failed_checks(instance, run.run_id))
    if production_tag is None:
        return 1, f"blocking checks stopped the candidate and there is no production model to serve:\n  {checks}"
    return 0, (
        f"blocking checks kept the retrained candidate out of production:\n  {checks}\n"
        f"The champion {production_tag} keeps serving; the candidate stays in the model store for "
        "inspection, and each rule's value, interval and threshold are in the check's metadata "
        "(`make ui`) and the evaluation report."
    )


def main() -> None:
    code, message = outcome(dg.DagsterInstance.get(), ProductionPointer(Paths(resolve_root()).registry).tag)
    print(f"\n{message}", file=sys.stderr if code else sys.stdout, flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
