"""vidrec on a Celery cluster: the assets, checks, resources, schedules and sensors of
assets/definitions.py, plus `nightly_celery`, whose steps run as Celery tasks (dagster-celery).

    dagster-webserver -w deploy/celery/workspace.yaml          # and dagster-daemon run
    dagster-celery worker start -A dagster_celery.app -y deploy/celery/worker.yaml
"""

import dagster as dg
from dagster_celery import celery_executor

import assets.definitions as local  # a module, so this file holds exactly one Definitions
from assets.jobs import PIPELINE
from assets.schedules import NIGHTLY_CRON

nightly_celery = dg.define_asset_job(
    "nightly_celery",
    selection=PIPELINE,
    executor_def=celery_executor,
    description="The nightly retraining job with each step sent to a Celery worker "
    "(run config: deploy/celery/run_config.yaml).",
    tags={"vidrec/trigger": "nightly", "vidrec/executor": "celery"},
)

nightly_retraining_celery = dg.ScheduleDefinition(
    name="nightly_retraining_celery",
    job=nightly_celery,
    cron_schedule=NIGHTLY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

defs = dg.Definitions.merge(local.defs, dg.Definitions(jobs=[nightly_celery], schedules=[nightly_retraining_celery]))
