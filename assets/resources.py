"""Resources: where run state lives, where raw data comes from, and the pseudonymisation key;
plus the execution policies (concurrency pool, retries) the asset modules share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from vidrec.config import Paths
from vidrec.privacy import guard_key

if TYPE_CHECKING:  # duckdb stays out of this module's globals; see warehouse()
    import duckdb

# Every step that writes the DuckDB warehouse (or runs DVC) claims a slot in this pool. DuckDB lets
# one process hold the write lock and DVC takes a repository lock, so dagster.yaml (written by
# vidrec.config) gives every pool a limit of 1: such steps run one at a time across all runs, and
# the multiprocess executor queues them instead of failing on a lock.
WAREHOUSE_POOL = "vidrec_warehouse"

# For steps whose failures are usually transient (a lock held a moment too long, a killed worker,
# the model store's filesystem): 3 retries after ~2, 4 and 8 s. Errors in the data itself raise
# ``dg.Failure(allow_retries=False)`` and fail at once, since retrying cannot fix them.
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

# The feature layer follows new upstream data (eager) without a full rebuild, but never past a
# failed blocking check. raw_events is an external log that is never materialised, so it must not
# count as a missing dependency.
FOLLOW_UPSTREAM = (
    dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets("raw_events"))
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("follow upstream")


def warehouse_asset(group_name: str, *, kinds: set[str] | None = None, retry: bool = True, **options):
    """``dg.asset`` for a step that writes a warehouse table: the warehouse IO manager, the platform
    team as owner, a slot in the warehouse pool and (unless ``retry=False``) the transient-retry policy.
    ``options`` pass through (deps, automation_condition, ins, ...)."""
    return dg.asset(
        group_name=group_name,
        kinds=kinds or {"python", "duckdb"},
        io_manager_key="warehouse_io",
        owners=["team:ml-platform"],
        pool=WAREHOUSE_POOL,
        **({"retry_policy": TRANSIENT_RETRY} if retry else {}),
        **options,
    )


class VidrecStorage(dg.ConfigurableResource):
    """The run-state root (DuckDB warehouse, shards, checkpoints, reports, model store)."""

    root: str

    @property
    def paths(self) -> Paths:
        return Paths(Path(self.root)).ensure()

    def warehouse(self) -> duckdb.DuckDBPyConnection:
        # Imported here, not at module level: the first time a Dagster record class is built,
        # Dagster copies the calling module's globals (and locals) into a namespace that outlives
        # interpreter shutdown, and a DuckDB module or connection caught in it is reported by
        # DuckDB's nanobind binding as "leaked" at every exit (tests/test_duckdb_exit.py).
        import duckdb

        return duckdb.connect(str(self.paths.warehouse))


class RawData(dg.ConfigurableResource):
    """A raw-data directory: ``videos/``, ``metadata.csv``, ``events.parquet`` and, for the
    demo world, ``ground_truth/``."""

    path: str

    @property
    def directory(self) -> Path:
        directory = Path(self.path)
        if not directory.is_dir():
            raise FileNotFoundError(
                f"raw data directory {directory} does not exist; generate the demo world with "
                "`make world` or point VIDREC_DATA at your data"
            )
        return directory


class Pseudonymiser(dg.ConfigurableResource):
    """Keyed hash for user ids; the key is a secret supplied through ``EnvVar``.

    The public demo key warns, and stops any step that uses it on data that is not a demo world
    (``data_path`` without ``ground_truth/``) unless ``allow_demo_key`` is "1"
    (``VIDREC_ALLOW_DEMO_KEY=1``); see vidrec.privacy.guard_key.
    """

    key: str
    data_path: str = ""
    allow_demo_key: str = "0"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Before any user id is hashed, so a refused key leaves nothing pseudonymised with it.
        guard_key(
            self.key, Path(self.data_path), allow_demo_key=self.allow_demo_key.strip().lower() in {"1", "true", "yes"}
        )


class GatePolicy(dg.ConfigurableResource):
    """Which promotion policy file applies; empty means the versioned vidrec/policies/gate.yaml."""

    path: str = ""
