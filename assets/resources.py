"""Resources: where run state lives, where raw data comes from, and the pseudonymisation key."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from vidrec.config import Paths


class VidrecStorage(dg.ConfigurableResource):
    """The run-state root (DuckDB warehouse, shards, checkpoints, reports, model store)."""

    root: str

    @property
    def paths(self) -> Paths:
        return Paths(Path(self.root)).ensure()

    def warehouse(self) -> duckdb.DuckDBPyConnection:
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
    """Keyed hash for user ids; the key is a secret supplied through ``EnvVar``."""

    key: str


class GatePolicy(dg.ConfigurableResource):
    """Which promotion policy file applies; empty means the versioned vidrec/policies/gate.yaml."""

    path: str = ""
