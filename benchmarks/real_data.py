"""vidrec's models on a real interaction log (HetRec 2011 Last.fm, lastfm-2k), side by side with RecBole.

The log goes in through the documented import path (``vidrec.imports.logs.import_logs``), is cut by the
per-user 80/10/10 ratio split with a fixed seed (``Protocol(split="ratio_by_user")``, RecBole's ``RS``
with ``group_by: user``), and every model is scored by full ranking at K=10 (``models.offline.baselines``). The
split is written in RecBole's atomic format (``<name>.train.inter`` / ``.valid.inter`` / ``.test.inter``);
with ``--compare-recbole`` RecBole 1.2.1 trains BPR and LightGCN on exactly those files, in a virtual
environment this script creates (``benchmarks/recbole_runner.py`` runs inside it).

    .venv/bin/python benchmarks/real_data.py [--quick] [--out PATH] [--data DIR] [--compare-recbole]

lastfm-2k has no timestamps: ``weight`` (the play count) is imported as ``ts`` so each row is accepted;
nothing here reads order (the split shuffles each user's interactions).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import write_result  # noqa: E402
from models.fit.id_models import FitSettings  # noqa: E402
from models.offline.baselines import baseline_table  # noqa: E402
from vidrec.config import Paths, resolve_root  # noqa: E402
from vidrec.imports.logs import LogFormat, import_logs  # noqa: E402
from vidrec.imports.tables import ImportResult  # noqa: E402
from vidrec.protocols import Protocol, Split  # noqa: E402

log = logging.getLogger("benchmarks.real_data")
DATASET = "lastfm_2k"
SEED = 2020
# RecBole 1.2.1's own pins do not hold on this stack: numpy 2 removed the aliases its metrics use and
# pandas 3 changed its dtype handling; torch is the machine's CPU wheel (an unpinned one pulls CUDA).
RECBOLE_PINS = ["torch==2.13.0", "recbole==1.2.1", "numpy==1.26.4", "pandas==2.2.3", "scipy==1.13.1"]
# RecBole 1.2's defaults for both models, written out so the comparison does not depend on them.
RECBOLE_SETTINGS = {
    "embedding_size": 64,
    "learning_rate": 1e-3,
    "train_batch_size": 2048,
    "epochs": 300,
    "stopping_step": 10,
    "eval_step": 1,
    "valid_metric": "NDCG@10",
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1},
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
    "n_layers": 2,
    "reg_weight": 1e-5,
}


def import_lastfm(data: Path, workdir: Path, max_users: int | None = None) -> ImportResult:
    """user_artists.dat (userID, artistID, weight) + artists.dat (id, name) through ``import_logs``.
    The artist table is tab-separated, which the item-table reader takes as Parquet, so it is
    converted into ``workdir`` (never into the repository)."""
    artists = pd.read_csv(data / "artists.dat", sep="\t", dtype=str, quoting=3, keep_default_na=False)
    events = data / "user_artists.dat"
    if max_users:  # --quick: the first users' rows and their artists only, through the same import
        frame = pd.read_csv(events, sep="\t", dtype=str)
        frame = frame[frame["userID"].isin(frame["userID"].drop_duplicates().head(max_users))]
        events = workdir / "user_artists.dat"
        frame.to_csv(events, sep="\t", index=False)
        artists = artists[artists["id"].isin(frame["artistID"])]
    items = workdir / "artists.parquet"
    artists.rename(columns={"id": "video_id", "name": "title"})[["video_id", "title"]].to_parquet(items)
    return import_logs(
        str(events),
        str(items),
        LogFormat(sep="\t"),
        rename={"userID": "user_id", "artistID": "video_id", "weight": "ts"},
    )


def write_atomic(split: Split, folder: Path, name: str) -> dict[str, str]:
    """RecBole atomic files ``<name>.{train,valid,test}.inter`` (``user_id:token  item_id:token``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for suffix, part in (("train", split.train), ("valid", split.val), ("test", split.test)):
        frame = pd.DataFrame(
            {
                "user_id:token": split.user_ids[part["user_idx"].to_numpy()],
                "item_id:token": split.item_ids[part["item_idx"].to_numpy()],
            }
        )
        path = folder / f"{name}.{suffix}.inter"
        frame.to_csv(path, sep="\t", index=False)
        paths[suffix] = str(path)
    return paths


def recbole_python(venv: Path) -> Path:
    """RecBole's interpreter, creating its virtual environment first if it is missing."""
    python = venv / "bin" / "python"
    if (
        python.exists()
        and subprocess.run([str(python), "-c", "import recbole"], capture_output=True, check=False).returncode == 0
    ):
        return python
    log.info("creating %s with %s (a few minutes, once)", venv, " ".join(RECBOLE_PINS))
    subprocess.run(
        [sys.executable if sys.version_info[:2] == (3, 11) else "python3.11", "-m", "venv", str(venv)], check=True
    )
    subprocess.run([str(python), "-m", "pip", "install", "-q", *RECBOLE_PINS], check=True)
    return python


def run_recbole(python: Path, model: str, data_path: Path, seed: int, workdir: Path, epochs: int) -> dict:
    """One RecBole model on the atomic split files; its stdout's last line is the result."""
    config = {
        "model": model,
        "dataset": DATASET,
        "data_path": str(data_path),
        "seed": seed,
        "reproducibility": True,
        "use_gpu": False,
        "show_progress": False,
        "state": "WARNING",
        "checkpoint_dir": str(workdir / "saved"),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "threads": 1,
        **RECBOLE_SETTINGS,
        "epochs": epochs,
    }
    path = workdir / f"recbole_{model}.json"
    path.write_text(json.dumps(config))
    log.info("RecBole %s ...", model)
    done = subprocess.run(
        [str(python), str(ROOT / "benchmarks" / "recbole_runner.py"), str(path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"RecBole {model} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log.info("RecBole %s: %s", model, result["test"])
    return result


def _recbole_summary(r: dict) -> dict:
    return {
        "ndcg10": round(r["test"]["ndcg@10"], 6),
        "recall10": round(r["test"]["recall@10"], 6),
        "fit_s": r["fit_s"],
        "epochs_run": r["epochs_run"],
        "best_epoch": r["best_epoch"],
        "best_valid_ndcg10": round(r["best_valid_ndcg10"], 6),
        "users": r["users"],
        "items": r["items"],
        "interactions": r["interactions"],
    }


def merged_rows(path: Path, counts: dict, seed: int, split: str, quick: bool) -> tuple[dict, dict]:
    """Model rows and RecBole results of another result file of this script (each marked with that run's
    time), refused unless it cut the same split."""
    record = json.loads(path.read_text())
    other = record["datasets"][DATASET]
    same = (
        other["seed"] == seed
        and other["split"] == split
        and other["split_counts"] == counts
        and record["quick"] == quick
    )
    if not same:
        raise SystemExit(
            f"error: {path} was measured on another split (seed {other['seed']}, {other['split']}, "
            f"{other['split_counts']}); merge only results of the same split"
        )
    mark = {"measured_in_run": record["when"]}
    # A row that file had itself merged keeps the run it was measured in.
    return (
        {name: {**mark, **row} for name, row in other["models"].items()},
        {name: {**mark, **row} for name, row in (other.get("recbole") or {}).items()},
    )


def _row_summary(row: dict) -> dict:
    keep = (
        "ndcg@10",
        "recall@10",
        "hit@10",
        "mrr@10",
        "fit_s",
        "eval_s",
        "users_evaluated",
        "fitted_on",
        "epochs_run",
        "best_epoch",
        "best_val_ndcg",
    )
    out = {k: row[k] for k in keep if k in row and not (isinstance(row[k], float) and pd.isna(row[k]))}
    for k in ("epochs_run", "best_epoch", "users_evaluated"):  # floats only because other rows lack them
        if k in out:
            out[k] = int(out[k])
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 200 users, at most 15 epochs")
    parser.add_argument("--out", help="default benchmarks/results/real_data.json")
    parser.add_argument(
        "--data",
        default=str(ROOT.parent / "shared" / "datasets" / "lastfm-2k"),
        help="folder with user_artists.dat and artists.dat (default ../shared/datasets/lastfm-2k)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="split and model seed")
    parser.add_argument("--models", default="most_popular,bpr,lightgcn,text_content")
    parser.add_argument("--compare-recbole", action="store_true", help="also run RecBole BPR and LightGCN")
    parser.add_argument("--epochs", type=int, help="most epochs of the id-only models (default 300, RecBole's)")
    parser.add_argument(
        "--retrieval-epochs",
        type=int,
        default=100,
        help="most epochs of the served retrieval model (early stopping on validation loss; default 100)",
    )
    parser.add_argument("--recbole-models", default="BPR,LightGCN", help="the RecBole models --compare-recbole runs")
    parser.add_argument(
        "--note",
        action="append",
        default=[],
        help="a remark to keep in the result (repeatable), e.g. why a model is missing",
    )
    parser.add_argument("--recbole-venv", help="RecBole's virtual environment (default $VIDREC_HOME/recbole-venv)")
    parser.add_argument(
        "--merge",
        action="append",
        default=[],
        metavar="JSON",
        help="add the model rows of an earlier result of this script on the same split (same "
        "seed, split and counts; checked), e.g. a slow model run alone on another core",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data = Path(args.data)
    if not (data / "user_artists.dat").exists():
        raise SystemExit(f"error: {data / 'user_artists.dat'} not found; pass --data with the lastfm-2k folder")
    paths = Paths(resolve_root()).ensure()
    settings = FitSettings(epochs=args.epochs or (15 if args.quick else 300))
    protocol = Protocol(split="ratio_by_user", ratios=(0.8, 0.1, 0.1), seed=args.seed, ks=(10,))
    with tempfile.TemporaryDirectory(prefix="real-data-", dir=paths.root) as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        result = import_lastfm(data, workdir, max_users=200 if args.quick else None)
        import_s = time.perf_counter() - started
        table, split = baseline_table(
            result,
            protocol,
            tuple(m for m in args.models.split(",") if m),
            state=paths,
            settings=settings,
            retrieval_epochs=min(args.retrieval_epochs, 15) if args.quick else args.retrieval_epochs,
            seed=args.seed,
        )
        files = write_atomic(split, workdir / "atomic" / DATASET, DATASET)
        rows = {row["model"]: _row_summary(row) for row in table.to_dict(orient="records")}
        recbole: dict[str, dict] = {}
        if args.compare_recbole:
            venv = Path(args.recbole_venv) if args.recbole_venv else paths.root / "recbole-venv"
            python = recbole_python(venv.absolute())  # not resolve(): that leaves the venv for its base python
            for model in args.recbole_models.split(","):
                recbole[model] = _recbole_summary(
                    run_recbole(python, model, workdir / "atomic", args.seed, workdir, settings.epochs)
                )
    for other in args.merge:
        more, their_recbole = merged_rows(Path(other), split.counts, args.seed, protocol.split, args.quick)
        rows = {**more, **rows}  # this run's own rows win
        recbole = {**their_recbole, **recbole}
    scored = {name: row["ndcg@10"] for name, row in rows.items()}
    best = max(scored, key=scored.get) if scored else None
    key = {
        "model": best,
        "vidrec_best_ndcg10": scored.get(best),
        "vidrec_bpr_ndcg10": scored.get("bpr"),
        "vidrec_lightgcn_ndcg10": scored.get("lightgcn"),
    }
    targets: dict[str, bool] = {}
    if "LightGCN" in recbole and best is not None:
        key["recbole_lightgcn_ndcg10"] = recbole["LightGCN"]["ndcg10"]
        key["best_over_recbole_lightgcn"] = round(key["vidrec_best_ndcg10"] / key["recbole_lightgcn_ndcg10"], 4)
        targets["best_ge_recbole_lightgcn"] = key["best_over_recbole_lightgcn"] >= 1.0
    if "retrieval" in scored:  # the model the service retrieves with (SASRec user tower, content + id items)
        key["vidrec_served_retrieval_ndcg10"] = scored["retrieval"]
        if "LightGCN" in recbole:
            ratio = round(scored["retrieval"] / recbole["LightGCN"]["ndcg10"], 4)
            key["served_retrieval_over_recbole_lightgcn"] = ratio
            targets["served_retrieval_ge_0.95_recbole_lightgcn"] = ratio >= 0.95
    if "BPR" in recbole and key["vidrec_bpr_ndcg10"]:
        key["recbole_bpr_ndcg10"] = recbole["BPR"]["ndcg10"]
        key["bpr_over_recbole_bpr"] = round(key["vidrec_bpr_ndcg10"] / key["recbole_bpr_ndcg10"], 4)
        targets["bpr_within_5pct_of_recbole"] = abs(key["bpr_over_recbole_bpr"] - 1) <= 0.05
    if targets:
        key["targets"] = targets
    for name, value in (("BPR", "recbole_bpr_ndcg10"), ("LightGCN", "recbole_lightgcn_ndcg10")):
        if value not in key:  # None: not measured (run_notes say why)
            key[value] = recbole[name]["ndcg10"] if name in recbole else None
    dataset = {
        **{k: key.pop(k) for k in list(key) if k != "model"},
        "best_model": key["model"],
        "split": protocol.split,
        "seed": args.seed,
        "protocol": protocol.label(),
        "split_counts": split.counts,
        "notes": split.notes,
        "run_notes": args.note,
        "import_s": round(import_s, 2),
        "import": result.report.to_dict(),
        "settings": {**vars(settings), "retrieval_epochs": args.retrieval_epochs},
        "models": rows,
        "recbole": recbole,
        "recbole_settings": {**RECBOLE_SETTINGS, "pins": RECBOLE_PINS} if recbole else None,
        "split_files": {k: Path(v).name for k, v in files.items()},
    }
    payload = {
        "sizes": {
            DATASET: {
                "users": split.counts["users"],
                "items": split.counts["items"],
                "interactions": split.counts["positives"],
            }
        },
        "datasets": {DATASET: dataset},
    }
    path = write_result("real_data", payload, args.out, args.quick)
    log.info("wrote %s: %s", path, {k: v for k, v in dataset.items() if k.endswith("ndcg10")})
    return path


if __name__ == "__main__":
    main()
