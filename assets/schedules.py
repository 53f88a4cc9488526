"""Schedules: nightly retraining."""

import dagster as dg

from assets.jobs import IN_PROCESS, nightly_job

NIGHTLY_CRON = "0 2 * * *"  # 02:00 UTC, after the day's events have landed


@dg.schedule(
    job=nightly_job,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def nightly_retraining(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Retrains every night: features (cached by content hash, so only new files cost time),
    encoder, ranker, hold-out evaluation, the blocking gate, and promotion only if it passes.
    Off until an operator turns it on in the UI (Automation tab)."""
    scheduled = context.scheduled_execution_time
    return dg.RunRequest(
        # One run per night, even if the daemon evaluates the tick twice.
        run_key=f"nightly-{scheduled:%Y-%m-%d}",
        run_config=IN_PROCESS,
        tags={"vidrec/scheduled_for": scheduled.isoformat()},
    )


SCHEDULES = (nightly_retraining,)
