"""The evaluation assets invoked directly on the tiny world's tables (no media decoding, untrained
modules): offline_evaluation writes its tables, report and metrics JSON; the gate check lists every
rule; promoted_model saves, verifies and moves production; a second evaluation compares with it."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch

from assets.catalogue import items
from assets.evaluation import ServedPathSettings, offline_evaluation, promoted_model, promotion_gate
from assets.resources import GatePolicy, Pseudonymiser, RawData, VidrecStorage
from tests.model_fixtures import untrained_models
from vidrec.config import Paths
from vidrec.privacy import pseudonymise_column
from vidrec.registry import ProductionPointer
from vidrec.world.generate import generate_world

KEY = "asset-test-key"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh tiny world (seconds), so the test never depends on what `make world` left behind."""
    directory = tmp_path_factory.mktemp("world")
    generate_world(directory, size="tiny", progress=False)
    return directory


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, world: Path) -> dict:
    """What the upstream assets would hand over, built from the world's tables."""
    directory = tmp_path_factory.mktemp("upstream")
    truth = pd.read_parquet(world / "ground_truth" / "items.parquet").sort_values("video_id")
    metadata = pd.read_csv(world / "metadata.csv").assign(status="accepted", reason=None)
    metadata["published_at"] = pd.to_datetime(metadata["published_at"], utc=True)
    ids = truth["video_id"].to_numpy()
    rng = np.random.default_rng(0)
    raw = pd.read_parquet(world / "events.parquet")
    events = raw.assign(user_key=pseudonymise_column(raw["user_id"], KEY), status="accepted", reason=None)
    encoder, ranker, retrieval = untrained_models(directory)
    vectors = rng.normal(size=(len(ids), 64)).astype(np.float32)
    items_output = items(
        video_probe=pd.DataFrame(
            {
                "video_id": ids,
                "sha256": [f"{i:064x}" for i in range(len(ids))],
                "duration_s": truth["duration_s"].to_numpy(),
                "has_audio": True,
                "status": "accepted",
            }
        ),
        video_metadata=metadata,
        video_features=pd.DataFrame({"video_id": ids, "shard_path": "unused", "status": "accepted"}),
        text_features=pd.DataFrame(
            {"video_id": ids, "has_text": True, "embedding": list(rng.normal(size=(len(ids), 384)))}
        ),
        raw_data=RawData(path=str(world)),
    )
    return {
        "world": world,
        "items": items_output.value,
        "interactions": events.drop(columns=["user_id"]),
        "item_embeddings": pd.DataFrame({"video_id": ids, "embedding": list(vectors)}),
        "ranker": ranker,
        "retrieval_model": retrieval,
        "multimodal_encoder": encoder,
    }


def test_the_items_asset_joins_the_tables_once_and_names_what_it_left_out(upstream: dict) -> None:
    assert len(upstream["items"]) == upstream["items"]["video_id"].nunique() > 0
    assert {"video_id", "shard_path", "embedding", "has_text", "published_at"} <= set(upstream["items"].columns)


def _evaluate(upstream: dict, root: Path, policy: str = "") -> dg.Output:
    names = ("ranker", "retrieval_model", "item_embeddings", "interactions", "items")
    return offline_evaluation(
        dg.build_asset_context(),
        **{n: upstream[n] for n in names},
        storage=VidrecStorage(root=str(root)),
        raw_data=RawData(path=str(upstream["world"])),
        pseudonymiser=Pseudonymiser(key=KEY),
        gate_policy=GatePolicy(path=policy),
        served_path=ServedPathSettings(),
    )


def test_evaluate_gate_promote_then_compare_with_the_champion(
    upstream: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("models.offline.holdout.LATENCY_REPEATS", 10)
    first = _evaluate(upstream, tmp_path)
    table = first.value
    assert {"slice", "model", "metric", "value", "ci_low", "ci_high"} <= set(table.columns)
    assert {"candidate", "candidate_catalogue", "random", "logging_policy", "oracle"} <= set(table["model"])
    assert "retrieval_recall_at_100" in set(table["metric"]) and "catalogue_ndcg_at_10" in set(table["metric"])
    assert "champion" not in set(table["model"])
    reports = Paths(tmp_path).reports
    assert json.loads((reports / "metrics.json").read_text())["candidate"]["click_auc"] > 0
    assert "## Gate" in first.metadata["report"].value and Path(first.metadata["report_path"].value).is_file()
    # The MMR λ trade-off is in the report; the world's orders are recorded as a signal the GMV rule reads.
    assert "## Diversity: the MMR λ trade-off" in first.metadata["report"].value
    orders = table[(table["model"] == "holdout") & (table["metric"] == "holdout_share_orders")]
    assert orders["value"].tolist() == [1.0]

    check = promotion_gate(offline_evaluation=table, gate_policy=GatePolicy())
    rules = check.metadata["rules"].value
    assert "skipped: no champion" in rules and "verdict" in rules and "threshold" in rules

    promoted = promoted_model(
        dg.build_asset_context(),
        offline_evaluation=table,
        storage=VidrecStorage(root=str(tmp_path)),
        raw_data=RawData(path=str(upstream["world"])),
        gate_policy=GatePolicy(),
        served_path=ServedPathSettings(),
        **{
            n: upstream[n]
            for n in ("multimodal_encoder", "ranker", "retrieval_model", "item_embeddings", "interactions", "items")
        },
    )
    tag = promoted.value["tag"]
    assert ProductionPointer(Paths(tmp_path).registry).tag == tag
    from assets.model_store import champion_directory
    from models.serving.bundle import load_bundle

    bundle = load_bundle(champion_directory(Paths(tmp_path).registry)[1])
    assert bundle.live is not None and len(bundle.live) == len(pd.read_csv(upstream["world"] / "live_sessions.csv"))
    assert bundle.items["brand"].notna().sum() == upstream["items"]["sku"].notna().sum() > 0
    labels = promoted.metadata["labels"].value
    assert {"git_commit", "data_version", "dvc_data_version", "run_id", "click_auc"} <= set(labels)

    # The second evaluation finds the champion in the store and compares with it (content tensors faked:
    # these untrained modules never saw real shards).
    from models.fit.data import ItemTensors
    from models.offline import holdout

    def fake_tensors(items: pd.DataFrame) -> ItemTensors:
        n = len(items)
        return ItemTensors(
            items["video_id"].tolist(),
            torch.zeros(n, 8, 3, 32, 32, dtype=torch.uint8),
            torch.zeros(n, 198, 40).half(),
            torch.zeros(n, 384),
            torch.ones(n, 3, dtype=torch.bool),
        )

    monkeypatch.setattr(holdout, "item_tensors", fake_tensors)
    second = _evaluate(upstream, tmp_path).value
    assert "champion" in set(second["model"]) and "candidate_vs_champion" in set(second["model"])
    verdicts = promotion_gate(offline_evaluation=second, gate_policy=GatePolicy()).metadata["rules"].value
    assert "skipped: no champion" not in verdicts
    assert "GMV@10 (SNIPS) not worse than the champion" in verdicts
