"""Import and full-ranking evaluation speed on a synthetic implicit-feedback log.

Full size: 1,000,000 interactions over 4,000 items and 6,000 users (deterministic, seeded). Compared
side by side, alternating, medians reported:
  import:  vidrec.imports.logs.import_logs (all row checks + item table)  vs  bare pandas.read_csv
  ranking: full ranking over every item  vs  sampled ranking (100 negatives), same fitted BPR scores

    .venv/bin/python benchmarks/import.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from models.fit.id_models import FitSettings  # noqa: E402
from models.offline.baselines import fit_bpr, most_popular_scores  # noqa: E402
from vidrec.imports.logs import LogFormat, import_logs  # noqa: E402
from vidrec.protocols import Protocol, evaluate, split_interactions  # noqa: E402

log = logging.getLogger("benchmarks.import")
FULL = {"interactions": 1_000_000, "items": 4_000, "users": 6_000}
QUICK = {"interactions": 100_000, "items": 1_000, "users": 1_500}
WORDS = ["guitar", "football", "pasta", "hiking", "chess", "painting", "surfing", "jazz", "robots", "gardening"]


def synthetic_log(directory: Path, interactions: int, items: int, users: int, seed: int = 0) -> tuple[Path, Path]:
    """Users belong to one of 10 taste clusters; 80% of their interactions fall in their cluster's items
    (Zipf-popular inside it), 20% anywhere. Ratings 1-5; ~10% below the positive threshold of 3."""
    rng = np.random.default_rng(seed)
    n_clusters = len(WORDS)
    user_cluster = rng.integers(0, n_clusters, users)
    user = rng.integers(0, users, interactions)
    per_cluster = items // n_clusters
    in_cluster = rng.random(interactions) < 0.8
    rank = np.minimum(rng.zipf(1.3, interactions) - 1, per_cluster - 1)
    item = np.where(in_cluster, user_cluster[user] * per_cluster + rank, rng.integers(0, items, interactions))
    ts = 1_700_000_000 + np.sort(rng.integers(0, 90 * 86400, interactions))
    rating = np.where(
        rng.random(interactions) < 0.1, rng.integers(1, 3, interactions), rng.integers(3, 6, interactions)
    )
    log_path, items_path = directory / "log.csv", directory / "items.csv"
    pd.DataFrame(
        {
            "user_id": "u" + pd.Series(user).astype(str),
            "video_id": "i" + pd.Series(item).astype(str),
            "ts": ts,
            "rating": rating,
        }
    ).to_csv(log_path, index=False)
    cluster = np.minimum(np.arange(items) // per_cluster, n_clusters - 1)
    pd.DataFrame(
        {
            "video_id": [f"i{i}" for i in range(items)],
            "title": [f"{WORDS[c]} video {i}" for i, c in enumerate(cluster)],
            "tags": [WORDS[c] for c in cluster],
        }
    ).to_csv(items_path, index=False)
    return log_path, items_path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sizes = QUICK if args.quick else FULL
    fmt = LogFormat(rating_threshold=3)
    with tempfile.TemporaryDirectory(prefix="vidrec-import-bench-") as tmp:
        started = time.perf_counter()
        log_path, items_path = synthetic_log(Path(tmp), **sizes)
        log.info("wrote %d interactions in %.1f s", sizes["interactions"], time.perf_counter() - started)

        import_times, read_times, result = [], [], None
        for i in range(args.repeats):  # alternate the two readers so machine noise hits both alike
            t0 = time.perf_counter()
            result = import_logs(str(log_path), str(items_path), fmt)
            import_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pd.read_csv(log_path, dtype=str)
            read_times.append(time.perf_counter() - t0)
            log.info(
                "repeat %d/%d: import %.2f s, read_csv %.2f s", i + 1, args.repeats, import_times[-1], read_times[-1]
            )
        report = result.report.tables["events"]
        assert report.reconciles() and report.rows_read == sizes["interactions"]

        protocol = Protocol(split="leave_one_out")
        t0 = time.perf_counter()
        split = split_interactions(result.positives(), protocol, item_ids=result.items["video_id"].tolist())
        split_s = time.perf_counter() - t0
        fit = split.fit
        users, items = fit["user_idx"].to_numpy(), fit["item_idx"].to_numpy()
        t0 = time.perf_counter()
        # the first BPR's settings, so bpr_fit_s_3_epochs stays comparable with earlier results
        settings = FitSettings(dim=32, lr=0.05, epochs=3, batch_size=4096, patience=0, weight_decay=1e-4)
        bpr = fit_bpr(users, items, len(split.user_ids), len(split.item_ids), settings, seed=0, variant="biased")
        fit_s = time.perf_counter() - t0
        popularity = most_popular_scores(users, items, len(split.item_ids))
        sampled = split_interactions(
            result.positives(),
            Protocol(split="leave_one_out", ranking="sampled"),
            item_ids=result.items["video_id"].tolist(),
        )
        full_times, sampled_times, rows = [], [], {}
        for i in range(args.repeats):
            t0 = time.perf_counter()
            rows["bpr_full"] = evaluate(split, bpr.score, "bpr")
            full_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            rows["bpr_sampled"] = evaluate(sampled, bpr.score, "bpr")
            sampled_times.append(time.perf_counter() - t0)
            log.info(
                "repeat %d/%d: full ranking %.2f s, sampled %.2f s",
                i + 1,
                args.repeats,
                full_times[-1],
                sampled_times[-1],
            )
        rows["most_popular_full"] = evaluate(
            split, lambda b: np.broadcast_to(popularity, (len(b), len(popularity))), "most_popular"
        )

    payload = {
        "sizes": sizes,
        "interactions": sizes["interactions"],
        "import_s": round(statistics.median(import_times), 3),
        "full_ranking_eval_s": round(statistics.median(full_times), 3),
        "read_csv_s": round(statistics.median(read_times), 3),
        "import_over_read_csv": round(statistics.median(import_times) / statistics.median(read_times), 2),
        "sampled_ranking_eval_s": round(statistics.median(sampled_times), 3),
        "split_s": round(split_s, 3),
        "bpr_fit_s_3_epochs": round(fit_s, 2),
        "accepted_events": report.accepted,
        "skipped": report.skipped,
        "split_counts": split.counts,
        "users_evaluated": rows["bpr_full"]["users_evaluated"],
        "protocol": protocol.label(),
        "ndcg@10": {name: round(row.get("ndcg@10", row.get("sampled100_ndcg@10")), 4) for name, row in rows.items()},
        "repeats": args.repeats,
    }
    path = write_result("import", payload, args.out, args.quick)
    log.info("wrote %s: import %.2f s, full ranking %.2f s", path, payload["import_s"], payload["full_ranking_eval_s"])
    return path


if __name__ == "__main__":
    main()
