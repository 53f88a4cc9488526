"""Shared set-up: a temporary state root with every tool offline and telemetry off.

The environment is set in ``pytest_configure`` (before test modules are imported) because
BentoML and Dagster read their home directories when first imported.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from vidrec.config import BACKBONE_CACHE_ENV_VAR, ROOT_ENV_VAR, Paths, tool_env

_ROOT: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _ROOT
    _ROOT = Path(tempfile.mkdtemp(prefix="vidrec-test-"))
    os.environ.update(tool_env(_ROOT, {"VIDREC_PSEUDONYM_KEY": "test-key"}))
    # Pretrained frame features are content-addressed: every test world (the same bytes) shares one cache,
    # kept across runs on this machine, so the backbone runs once per distinct video, not once per test.
    os.environ.setdefault(BACKBONE_CACHE_ENV_VAR, str(Path(tempfile.gettempdir()) / "vidrec-test-backbone-cache"))
    Paths(_ROOT).ensure()


def pytest_unconfigure(config: pytest.Config) -> None:
    if _ROOT is not None:
        shutil.rmtree(_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def vidrec_root() -> Path:
    return Path(os.environ[ROOT_ENV_VAR])


@pytest.fixture(scope="session")
def vidrec_env(vidrec_root: Path) -> dict[str, str]:
    return {k: os.environ[k] for k in tool_env(vidrec_root)}


@pytest.fixture()
def redis_server(tmp_path: Path):
    """A real redis-server on 127.0.0.1 and a free port for one test (tests/redis_server.py)."""
    from tests.redis_server import running_redis

    with running_redis(tmp_path / "redis") as server:
        yield server
