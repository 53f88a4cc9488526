"""The one Definitions object: assets, checks, resources, jobs, schedules and sensors."""

from pathlib import Path

import dagster as dg

from assets import catalogue, drift, evaluation, events, experiment, marketing, media, recognition, training
from assets import data_quality as quality
from assets.evaluation import ServedPathSettings
from assets.jobs import JOBS, main_job
from assets.resources import GatePolicy, Pseudonymiser, RawData, VidrecStorage
from assets.schedules import SCHEDULES
from assets.sensors import SENSORS
from assets.training import TrainingSettings
from assets.warehouse_io import WarehouseIOManager
from vidrec.config import Paths

ASSET_MODULES = (media, recognition, catalogue, events, training, evaluation, quality, drift, experiment, marketing)

__all__ = ["ASSET_MODULES", "all_assets", "all_checks", "build_resources", "defs", "main_job"]


def build_resources(
    root: Path | str | dg.EnvVar,
    data: Path | str | dg.EnvVar,
    key: str | dg.EnvVar,
    warehouse: str | dg.EnvVar | None = None,
    io_dir: str | dg.EnvVar | None = None,
    training_settings: TrainingSettings | None = None,
    gate_policy: str = "",
    allow_demo_key: str | dg.EnvVar = "0",
) -> dict:
    """Resources for a run; tests pass a temporary root, the CLI passes ``EnvVar``s."""
    if warehouse is None:
        warehouse = str(Paths(Path(root)).warehouse)
    if io_dir is None:
        io_dir = str(Paths(Path(root)).dagster_home / "storage")
    return {
        "storage": VidrecStorage(root=str(root) if isinstance(root, Path) else root),
        "raw_data": RawData(path=str(data) if isinstance(data, Path) else data),
        "pseudonymiser": Pseudonymiser(
            key=key, data_path=str(data) if isinstance(data, Path) else data, allow_demo_key=allow_demo_key
        ),
        "training": training_settings or TrainingSettings(),
        "gate_policy": GatePolicy(path=gate_policy),
        "served_path": ServedPathSettings(),
        "warehouse_io": WarehouseIOManager(database=warehouse, schema="vidrec"),  # stores empty frames too
        "io_manager": dg.FilesystemIOManager(base_dir=io_dir),
    }


all_assets = dg.load_assets_from_modules(list(ASSET_MODULES))
all_checks = dg.load_asset_checks_from_modules(list(ASSET_MODULES))

defs = dg.Definitions(
    assets=[*all_assets, events.raw_events],
    asset_checks=all_checks,
    jobs=list(JOBS),
    schedules=list(SCHEDULES),
    sensors=list(SENSORS),
    resources=build_resources(
        root=dg.EnvVar("VIDREC_HOME"),
        data=dg.EnvVar("VIDREC_DATA"),
        key=dg.EnvVar("VIDREC_PSEUDONYM_KEY"),
        warehouse=dg.EnvVar("VIDREC_WAREHOUSE"),
        io_dir=dg.EnvVar("VIDREC_IO_DIR"),
        allow_demo_key=dg.EnvVar("VIDREC_ALLOW_DEMO_KEY"),
    ),
)
