"""The pipeline's pseudonymiser resource refuses the public demo key on data that is not a demo world,
before any step hashes a user id, unless VIDREC_ALLOW_DEMO_KEY says so."""

from pathlib import Path

import dagster as dg
import pytest

from assets.resources import Pseudonymiser
from vidrec.config import DEMO_PSEUDONYM_KEY
from vidrec.privacy import pseudonymise


@dg.asset
def hashed_user(pseudonymiser: Pseudonymiser) -> str:
    return pseudonymise("alice", pseudonymiser.key)


def _run(data: Path, key: str, allow: str = "0") -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [hashed_user],
        raise_on_error=False,
        resources={"pseudonymiser": Pseudonymiser(key=key, data_path=str(data), allow_demo_key=allow)},
    )


@pytest.fixture()
def real_data(tmp_path: Path) -> Path:
    (tmp_path / "shop").mkdir()
    return tmp_path / "shop"


def test_the_demo_key_stops_a_run_on_data_that_is_not_a_demo_world(real_data: Path) -> None:
    result = _run(real_data, DEMO_PSEUDONYM_KEY)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_failure]
    assert "refusing to pseudonymise" in str(failure.event_specific_data)
    assert not result.get_asset_materialization_events()


def test_the_flag_or_a_demo_world_or_a_secret_key_lets_it_run(real_data: Path, tmp_path: Path) -> None:
    assert _run(real_data, DEMO_PSEUDONYM_KEY, allow="1").success
    (tmp_path / "demo" / "ground_truth").mkdir(parents=True)
    assert _run(tmp_path / "demo", DEMO_PSEUDONYM_KEY).success
    assert _run(real_data, "a-real-secret").success
