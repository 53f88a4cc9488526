"""Typed settings for a vidrec run: where state lives and which tools see which environment.

This is the one place that reads the environment (never at import time) and the one place
that decides the variables handed to Dagster, BentoML, DVC, Great Expectations and
Hugging Face so they stay offline and silent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV_VAR = "VIDREC_HOME"
DATA_ENV_VAR = "VIDREC_DATA"
PSEUDONYM_KEY_ENV_VAR = "VIDREC_PSEUDONYM_KEY"
DEFAULT_ROOT = Path(".vidrec")
DEFAULT_DATA = Path("data/demo")
# Only for the simulated demo world; production deployments set VIDREC_PSEUDONYM_KEY as a secret.
DEMO_PSEUDONYM_KEY = "vidrec-demo-key-not-a-secret"

_DAGSTER_YAML = """\
telemetry:
  enabled: false
python_logs:
  # Training progress lines (epoch, losses, samples/s) show in the run's logs in the UI.
  managed_python_loggers: [models, vidrec]
  python_log_level: INFO
"""


@dataclass(frozen=True)
class Paths:
    """Every location a run writes to, all under one root directory."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def bentoml_home(self) -> Path:
        return self.root / "bentoml"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def ensure(self) -> "Paths":
        """Create the directories and Dagster's instance file (telemetry off)."""
        for path in (self.root, self.features, self.checkpoints, self.reports, self.registry,
                     self.bentoml_home, self.dagster_home, self.landing):
            path.mkdir(parents=True, exist_ok=True)
        dagster_yaml = self.dagster_home / "dagster.yaml"
        if not dagster_yaml.exists():
            dagster_yaml.write_text(_DAGSTER_YAML)
        return self


def resolve_root(environ: dict[str, str] | None = None) -> Path:
    """The run-state root: ``$VIDREC_HOME`` when set, else ``./.vidrec``."""
    env = os.environ if environ is None else environ
    return Path(env.get(ROOT_ENV_VAR) or DEFAULT_ROOT).resolve()


def resolve_data(environ: dict[str, str] | None = None) -> Path:
    """The raw-data directory: ``$VIDREC_DATA`` when set, else ``./data/demo``."""
    env = os.environ if environ is None else environ
    return Path(env.get(DATA_ENV_VAR) or DEFAULT_DATA).resolve()


def tool_env(root: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Variables that point every tool at ``root`` and switch telemetry and downloads off.

    ``VIDREC_DATA`` and ``VIDREC_PSEUDONYM_KEY`` pass through when set, else get demo defaults.
    """
    env = os.environ if environ is None else environ
    paths = Paths(root)
    return {
        ROOT_ENV_VAR: str(root),
        DATA_ENV_VAR: str(resolve_data(env)),
        PSEUDONYM_KEY_ENV_VAR: env.get(PSEUDONYM_KEY_ENV_VAR) or DEMO_PSEUDONYM_KEY,
        "VIDREC_WAREHOUSE": str(paths.warehouse),
        "VIDREC_IO_DIR": str(paths.dagster_home / "storage"),
        "DAGSTER_HOME": str(paths.dagster_home),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "1",
        "DVC_NO_ANALYTICS": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def main() -> None:
    """Print ``export`` lines for the shell (used by the Makefile), creating the root."""
    root = resolve_root()
    Paths(root).ensure()
    for key, value in tool_env(root).items():
        print(f"export {key}='{value}'")


if __name__ == "__main__":
    main()
