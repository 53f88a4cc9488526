"""Materialise one asset group with its checks into the Dagster instance: the command each
`dvc.yaml` stage runs.

    python -m assets.dvc_stage media [--config-json '{"resources": {...}}']

It does what `dagster asset materialize -m assets.definitions --select group:media` does (same
definitions, same instance under $DAGSTER_HOME, checks of the selected assets included, a
blocking check failure stops the run), in one process that DVC starts from its own tool environment
(`.venv-dvc`), so a stage needs no `--select` string to be spelled for the shell.
"""

import argparse
import json
import sys
import time

import dagster as dg

from assets.reporting import failed_check_lines


def group_selection(group: str) -> dg.AssetSelection:
    """The group's assets that a run can materialise (not external ones such as raw_events,
    which producers outside the pipeline write)."""
    return dg.AssetSelection.groups(group).materializable()


def materialize_group(group: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """Run the group's assets and checks in-process against the configured instance."""
    from assets.definitions import all_assets, all_checks, defs

    known = {g for a in all_assets for g in a.group_names_by_key.values()}
    if group not in known:
        raise SystemExit(f"unknown asset group {group!r}; groups: {sorted(known)}")
    instance = dg.DagsterInstance.get()  # $DAGSTER_HOME, so the UI shows these runs
    return dg.materialize(
        [*all_assets, *all_checks],
        selection=group_selection(group),
        resources=defs.resources,
        run_config=run_config or {},
        instance=instance,
        tags={"vidrec/trigger": "dvc", "vidrec/group": group},
        raise_on_error=False,
    )


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    """Why each failed step failed (the innermost error, first lines), so a DVC log says why the
    stage stopped."""
    errors = []
    for event in result.all_events:
        if not (event.is_step_failure and event.step_failure_data.error):
            continue
        error = event.step_failure_data.error
        while error.cause is not None:  # Dagster wraps the asset's own exception
            error = error.cause
        lines = [line.strip() for line in error.message.strip().splitlines() if line.strip()]
        errors.append(f"{event.step_key}: {' '.join(lines[:3])}")
    return errors


def failed_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return failed_check_lines(result.get_asset_check_evaluations())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Materialise one asset group (a DVC stage).")
    parser.add_argument("group")
    parser.add_argument("--config-json", default="{}", help="run config, as for `dagster asset materialize`")
    args = parser.parse_args(argv)
    try:
        run_config = json.loads(args.config_json)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--config-json is not JSON: {error}") from error
    started = time.perf_counter()
    result = materialize_group(args.group, run_config)
    failed = failed_checks(result)
    print(
        f"group {args.group}: run {result.run_id} {'succeeded' if result.success else 'FAILED'} in "
        f"{time.perf_counter() - started:.1f} s; checks failed: {', '.join(failed) or 'none'}",
        flush=True,
    )
    for error in step_errors(result):
        print(f"  failed step {error}", file=sys.stderr, flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
