"""assets.run_outcome: `make demo` goes on after a run that only blocking checks stopped, and stops
after any other failure, on real Dagster runs in an ephemeral instance."""

import dagster as dg
import pytest

from assets.run_outcome import outcome

JOB = "__ephemeral_asset_job__"  # the job name dg.materialize gives its runs


@dg.asset
def candidate() -> int:
    return 1


@dg.asset_check(asset=candidate, blocking=True)
def gate(candidate: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"failed_rules": ["click AUC not worse than the champion"]},
    )


@dg.asset(deps=[candidate])
def promoted() -> None:
    raise AssertionError("a blocked candidate must never be promoted")


@dg.asset
def broken() -> int:
    raise ValueError("disk full")


def _run(instance: dg.DagsterInstance, *defs) -> None:
    dg.materialize(list(defs), instance=instance, raise_on_error=False)


def test_a_run_stopped_only_by_a_blocking_check_serves_the_champion() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        _run(instance, candidate, gate, promoted)
        code, message = outcome(instance, "vidrec-recommender:champion", job=JOB)
    assert code == 0
    assert "candidate:gate (ERROR): click AUC not worse than the champion" in message
    assert "vidrec-recommender:champion keeps serving" in message


def test_a_blocked_candidate_with_nothing_in_production_is_a_failure() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        _run(instance, candidate, gate, promoted)
        code, message = outcome(instance, None, job=JOB)
    assert code == 1 and "no production model" in message


@pytest.mark.parametrize("production", ["vidrec-recommender:champion", None])
def test_any_other_failure_stops_the_demo(production) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        _run(instance, candidate, gate, promoted, broken)
        code, message = outcome(instance, production, job=JOB)
    assert code == 1 and "broken" in message


def test_a_successful_or_missing_run() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        assert outcome(instance, None, job=JOB)[0] == 1  # nothing ran
        _run(instance, candidate)
        assert outcome(instance, None, job=JOB)[0] == 0
