"""The public demo key: loud on a demo world, refused on other data unless explicitly allowed."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidrec.config import ALLOW_DEMO_KEY_ENV_VAR, DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV_VAR, tool_env
from vidrec.privacy import DemoKeyRefused, guard_key, is_demo_world, pseudonymise

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def demo_world(tmp_path: Path) -> Path:
    (tmp_path / "demo" / "ground_truth").mkdir(parents=True)
    return tmp_path / "demo"


@pytest.fixture()
def real_data(tmp_path: Path) -> Path:
    (tmp_path / "shop" / "videos").mkdir(parents=True)
    return tmp_path / "shop"


def test_a_demo_world_is_recognised_by_its_ground_truth(demo_world: Path, real_data: Path) -> None:
    assert is_demo_world(demo_world) and not is_demo_world(real_data)


def test_the_demo_key_warns_on_a_demo_world(demo_world: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vidrec.privacy"):
        assert guard_key(DEMO_PSEUDONYM_KEY, demo_world) == DEMO_PSEUDONYM_KEY
    assert "PUBLIC demo key" in caplog.text and PSEUDONYM_KEY_ENV_VAR in caplog.text


def test_the_demo_key_is_refused_on_other_data(real_data: Path) -> None:
    with pytest.raises(DemoKeyRefused, match=rf"{real_data}.*not a demo world.*{ALLOW_DEMO_KEY_ENV_VAR}=1"):
        guard_key(DEMO_PSEUDONYM_KEY, real_data)


def test_an_explicit_flag_allows_it_with_a_warning(real_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vidrec.privacy"):
        assert guard_key(DEMO_PSEUDONYM_KEY, real_data, allow_demo_key=True) == DEMO_PSEUDONYM_KEY
    assert "not a demo world" in caplog.text


def test_a_secret_key_passes_silently(real_data: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vidrec.privacy"):
        assert guard_key("a-real-secret", real_data) == "a-real-secret"
    assert caplog.text == ""
    assert pseudonymise("alice", "a-real-secret") != pseudonymise("alice", DEMO_PSEUDONYM_KEY)


def test_tool_env_passes_the_flag_on(tmp_path: Path) -> None:
    assert tool_env(tmp_path, {})[ALLOW_DEMO_KEY_ENV_VAR] == "0"
    assert tool_env(tmp_path, {ALLOW_DEMO_KEY_ENV_VAR: "1"})[ALLOW_DEMO_KEY_ENV_VAR] == "1"


def test_the_makefile_environment_warns_when_no_key_is_set(tmp_path: Path) -> None:
    """`eval "$(python -m vidrec.config)"`, which every make target runs, says so on stderr."""
    env = {k: v for k, v in os.environ.items() if k != PSEUDONYM_KEY_ENV_VAR}
    env["VIDREC_HOME"] = str(tmp_path / "root")
    unset = subprocess.run(
        [sys.executable, "-m", "vidrec.config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "WARNING" in unset.stderr and "PUBLIC demo key" in unset.stderr
    assert f"export {PSEUDONYM_KEY_ENV_VAR}='{DEMO_PSEUDONYM_KEY}'" in unset.stdout
    env[PSEUDONYM_KEY_ENV_VAR] = "a-real-secret"
    set_ = subprocess.run(
        [sys.executable, "-m", "vidrec.config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert set_.stderr == ""
