"""marketing_audiences: materialised over a promoted (untrained) bundle, exports k-anonymous audiences of
pseudonymised keys as Parquet and CSV, says why a campaign was not exported, and shows size, lift and a plot."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

import assets.model_store as store
from assets.marketing import marketing_audiences
from assets.resources import VidrecStorage
from tests.model_fixtures import tiny_contents, untrained_models
from vidrec.config import Paths
from vidrec.registry import ProductionPointer


def test_audiences_are_exported_with_size_lift_and_a_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    histories = {f"k{u:03d}": [f"v{i}" for i in rng.choice(8, 2, replace=False)] for u in range(120)}
    contents = tiny_contents(untrained_models(tmp_path / "weights"), n=8, histories=histories)
    tag = store.save_to_store(contents, {"run_id": "marketing", "git_commit": "test"}, {"metrics": {}})
    ProductionPointer(Paths(tmp_path / "root").ensure().registry).promote(tag)
    config = {"campaigns": {"spring": ["v1", "v2"], "ghost": ["nope"]}, "n": 150, "min_size": 100}
    result = dg.materialize(
        [marketing_audiences],
        resources={"storage": VidrecStorage(root=str(tmp_path / "root"))},
        run_config={"ops": {"marketing_audiences": {"config": config}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("marketing_audiences")[0].metadata
    assert metadata["exported"].value == 1 and metadata["audience_rows"].value == 120
    assert metadata["mean_predicted_lift"].value >= 1.0  # the top users' mean predicted rate is above everyone's
    assert "data:image/png;base64," in metadata["lift_plot"].value
    audiences = pd.read_parquet(metadata["parquet"].value)
    assert set(audiences["user_key"]) <= set(histories) and audiences["campaign"].eq("spring").all()
    assert len(pd.read_csv(metadata["csv"].value)) == 120
    summary = pd.read_csv(Path(metadata["parquet"].value).parent / "summary.csv").set_index("campaign")
    assert summary.loc["ghost", "status"] == "skipped" and "no video" in summary.loc["ghost", "reason"]

    small = {**config, "min_size": 200}
    again = dg.materialize(
        [marketing_audiences],
        resources={"storage": VidrecStorage(root=str(tmp_path / "root"))},
        run_config={"ops": {"marketing_audiences": {"config": small}}},
    )
    meta = again.asset_materializations_for_node("marketing_audiences")[0].metadata
    assert meta["exported"].value == 0 and "below the minimum of 200" in meta["summary"].value
