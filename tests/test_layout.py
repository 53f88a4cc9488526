"""The project's shape: definitions load, and imports point one way."""

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# package -> top-level modules it must never pull in (directly or transitively)
FORBIDDEN = {
    "vidrec": {"dagster", "bentoml", "models", "assets", "bentos", "expectations", "lightning"},
    "models": {"dagster", "bentoml", "assets", "bentos", "expectations"},
    "expectations": {"dagster", "bentoml", "torch", "models", "assets", "bentos"},
    "bentos": {"dagster", "assets", "expectations", "great_expectations"},
    "assets": {"bentos"},
}


def _modules(package: str) -> list[str]:
    names = [package]
    for info in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {_modules(package)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert not (loaded & FORBIDDEN[package]), f"{package} pulled in {sorted(loaded & FORBIDDEN[package])}"


def test_definitions_load(vidrec_env: dict[str, str]) -> None:
    import dagster as dg

    from assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "raw_videos",
        "video_probe",
        "video_features",
        "video_metadata",
        "text_features",
        "interactions",
        "multimodal_encoder",
        "item_embeddings",
        "ranker",
        "offline_evaluation",
        "promoted_model",
    } <= keys
    assert defs.resolve_job_def("main") is not None


def test_every_asset_has_a_description() -> None:
    from assets.definitions import all_assets

    for assets_def in all_assets:
        for key in assets_def.keys:
            assert assets_def.descriptions_by_key.get(key), f"{key.to_user_string()} has no description"
