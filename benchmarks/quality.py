"""Ranking quality on a generated world's hold-out window: the ranker versus the oracle, the id-only
baselines (most-popular, BPR matrix factorisation), cold-start items, and a modality ablation.

    .venv/bin/python benchmarks/quality.py [--quick] [--world data/demo] [--out PATH]

Trains the encoder and ranker exactly as the pipeline does (models.steps, temporal split of
vidrec.splits), then scores every hold-out impression with each ordering. ``--quick`` uses the
tiny world and short epoch budgets (a smoke check, not a quality claim).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402
from models.config import RankerConfig  # noqa: E402
from models.encoders import MODALITIES  # noqa: E402
from models.quality import (attribute_ceiling_scores, baseline_scores, cold_only,  # noqa: E402
                            impressions_table, measure, oracle_scores, over, scored)
from models.steps import (StepSettings, fit_encoder, fit_ranker, item_embedding_matrix,  # noqa: E402
                          ranker_inputs, score_impressions)
from vidrec.config import DEMO_PSEUDONYM_KEY, Paths, resolve_root  # noqa: E402
from vidrec.items import tables_from_directory  # noqa: E402
from vidrec.splits import temporal_split  # noqa: E402
from vidrec.world.oracle import Oracle  # noqa: E402

log = logging.getLogger("benchmarks.quality")


def embeddings_frame(items: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"video_id": items["video_id"], "embedding": list(vectors)})


def run(world: Path, settings: StepSettings, bpr_epochs: int) -> dict:
    paths = Paths(resolve_root()).ensure()
    started = time.perf_counter()
    items, events = tables_from_directory(world, paths.features, DEMO_PSEUDONYM_KEY)
    log.info("tables: %d items, %d events (%.1f s)", len(items), len(events), time.perf_counter() - started)
    split = temporal_split(events)
    holdout = split.part(events, "holdout").reset_index(drop=True)
    fit_window = split.part(events, "fit")
    cold = set(holdout["video_id"]) - set(fit_window["video_id"])
    oracle = Oracle.load(world)

    with tempfile.TemporaryDirectory(prefix="quality-", dir=paths.checkpoints) as tmp:
        t0 = time.perf_counter()
        encoder = fit_encoder(items, events, Path(tmp) / "encoder", settings)
        embeddings = embeddings_frame(items, item_embedding_matrix(encoder, items))
        ranker = fit_ranker(items, embeddings, events, Path(tmp) / "ranker", settings)
        train_s = time.perf_counter() - t0
        log.info("trained encoder + ranker in %.1f s", train_s)
        inputs = ranker_inputs(items, embeddings, events, RankerConfig(**ranker.config))
        main = score_impressions(ranker, inputs, holdout, events)
        frames = [scored(holdout, "ranker", main.score, main.p_click),
                  scored(holdout, "ranker_click", main.p_click),
                  scored(holdout, "oracle", oracle_scores(holdout, oracle)),
                  scored(holdout, "attribute_ceiling", attribute_ceiling_scores(fit_window, holdout, oracle)),
                  scored(holdout, "random", np.random.default_rng(settings.seed).random(len(holdout)))]
        for name, values in baseline_scores(split.part(events, "fit"), holdout, inputs.item_index,
                                            settings.seed, bpr_epochs).items():
            frames.append(scored(holdout, name, values))
        for modality in MODALITIES:
            ablated = embeddings_frame(items, item_embedding_matrix(encoder, items, without=modality))
            s = score_impressions(ranker, ranker_inputs(items, ablated, events, RankerConfig(**ranker.config)),
                                  holdout, events)
            frames.append(scored(holdout, f"without_{modality}", s.score, s.p_click))
    scores = pd.concat(frames, ignore_index=True)
    impressions = impressions_table(holdout, items, cold, set(fit_window["user_key"]))
    table = measure(impressions, scores)
    cold_table = measure(*cold_only(impressions, scores))
    cold_sessions = int(cold_only(impressions, scores)[0]["session_id"].nunique())
    log.info("all items:\n%s", table[["click_auc", "ndcg_at_10"]].round(4).to_string())
    log.info("cold items:\n%s", cold_table[["click_auc", "ndcg_at_10"]].round(4).to_string())
    ndcg = "ndcg_at_10"

    def row(name: str) -> dict:
        return {"ndcg10": round(float(table.at[name, ndcg]), 4), "cold_ndcg10": round(float(cold_table.at[name, ndcg]), 4),
                "click_auc": round(float(table.at[name, "click_auc"]), 4)}

    return {
        "sizes": {"world": world.name, "items": len(items), "events": len(events), "holdout_impressions": len(holdout),
                  "holdout_sessions": int(holdout["session_id"].nunique()), "cold_items": len(cold),
                  "cold_sessions": cold_sessions},
        "click_auc_over_oracle": round(over(table, "ranker_click", "oracle", "click_auc"), 4),
        "ndcg10_over_oracle": round(over(table, "ranker", "oracle", ndcg), 4),
        "cold_ndcg10_over_oracle": round(over(cold_table, "ranker", "oracle", ndcg), 4),
        "baselines": {name: row(name) for name in ("most_popular", "bpr_mf", "random")},
        "ablation": {m: round(float(table.at[f"without_{m}", ndcg]), 4) for m in MODALITIES},
        "ablation_cold": {m: round(float(cold_table.at[f"without_{m}", ndcg]), 4) for m in MODALITIES},
        "models": {name: row(name) for name in ("oracle", "attribute_ceiling", "ranker", "ranker_click")},
        "attribute_ceiling_click_auc_over_oracle": round(over(table, "attribute_ceiling", "oracle", "click_auc"), 4),
        "attribute_ceiling_ndcg10_over_oracle": round(over(table, "attribute_ceiling", "oracle", ndcg), 4),
        "train_s": round(train_s, 1),
        "settings": {"encoder_epochs": settings.encoder_epochs, "ranker_epochs": settings.ranker_epochs,
                     "patience": settings.patience, "seed": settings.seed, "bpr_epochs": bpr_epochs},
        "notes": "oracle = true click probability without position bias; attribute_ceiling = per-user logistic "
                 "regression on the TRUE item attributes fitted on the fit window (what perfect item features "
                 "could learn from this log); ranker NDCG uses the blended serving "
                 "score, its click AUC p(click); cold = hold-out items never shown in the fit window, ranked "
                 "within sessions showing >= 2 of them; ablation hides one modality from every item at "
                 "embedding time and rescores with the same ranker",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny world, short budgets (smoke check)")
    parser.add_argument("--world", type=Path, default=None, help="generated world (default data/demo, tiny if --quick)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    world = args.world or Path("data/tiny" if args.quick else "data/demo")
    settings = (StepSettings(encoder_epochs=1, ranker_epochs=2, patience=1, seed=args.seed) if args.quick
                else StepSettings(seed=args.seed))
    result = run(world, settings, bpr_epochs=5 if args.quick else 20)
    path = write_result("quality", result, args.out, args.quick)
    print(path)


if __name__ == "__main__":
    main()
