"""Ranking quality on a generated world's hold-out window: the served path (retrieve N → rank → blend,
exactly what /recommend answers) and the ranker versus the oracle, the id-only baselines
(most-popular, BPR matrix factorisation), cold-start items, and a modality ablation.

    .venv/bin/python benchmarks/quality.py [--quick] [--world data/demo] [--out PATH]

Trains the encoder and ranker exactly as the pipeline does (models.fit.steps, temporal split of
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
from benchmarks._visual_ablation import visual_ablation  # noqa: E402
from models.fit.retrieval_step import fit_retrieval  # noqa: E402
from models.fit.steps import (  # noqa: E402
    StepSettings,
    fit_encoder,
    fit_ranker,
    item_embedding_matrix,
    ranker_inputs,
    score_impressions,
)
from models.nn.config import RankerConfig  # noqa: E402
from models.nn.encoders import MODALITIES  # noqa: E402
from models.offline.holdout import HoldoutTables, holdout_tables  # noqa: E402
from models.offline.top_k import world_truth  # noqa: E402
from models.offline.world_quality import (  # noqa: E402
    attribute_ceiling_scores,
    baseline_scores,
    cold_only,
    impressions_table,
    measure,
    oracle_scores,
    over,
    scored,
)
from vidrec.config import DEMO_PSEUDONYM_KEY, Paths, resolve_root  # noqa: E402
from vidrec.items import tables_from_directory  # noqa: E402
from vidrec.splits import temporal_split  # noqa: E402
from vidrec.world.oracle import Oracle  # noqa: E402

log = logging.getLogger("benchmarks.quality")


def embeddings_frame(items: pd.DataFrame, vectors: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"video_id": items["video_id"], "embedding": list(vectors)})


def ceiling_top_k(
    tables: HoldoutTables, items: pd.DataFrame, fit_window: pd.DataFrame, truth, k: int = 10
) -> pd.DataFrame:
    """The attribute ceiling (a per-user logistic regression on the world's TRUE item attributes, fitted on
    the fit window) ranking every allowed item per session: what perfect item features could serve."""
    sessions = tables.sessions
    pairs = pd.DataFrame(
        {
            "user_id": np.repeat(sessions["user_key"].map(truth.user_ids).to_numpy(), len(items)),
            "video_id": np.tile(items["video_id"].to_numpy(), len(sessions)),
        }
    )
    fit = fit_window.assign(user_id=fit_window["user_key"].map(truth.user_ids))
    scores = attribute_ceiling_scores(fit, pairs, truth.oracle).reshape(len(sessions), len(items))
    masked = np.where(tables.allowed, scores, -np.inf)
    rows = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    shown = np.take_along_axis(tables.allowed, rows, axis=1)
    frame = pd.DataFrame(
        {
            "model": "attribute_ceiling",
            "session_id": np.repeat(sessions["session_id"].to_numpy(), k),
            "user_key": np.repeat(sessions["user_key"].to_numpy(), k),
            "video_id": items["video_id"].to_numpy()[rows.ravel()],
            "rank": np.tile(np.arange(1, k + 1), len(sessions)),
        }
    )
    return frame[shown.ravel()]


def served_path_quality(tables: HoldoutTables, truth, k: int = 10) -> dict:
    """NDCG@k of the served top k, of the same ranker over the whole catalogue, and of the oracle's
    top k, two ways: on the hold-out's real clicks (binary gains, the suite's catalogue_ndcg) and on
    the oracle's expected gains (click probability without position bias: what each user would click)."""
    top = tables.top_k
    holdout = tables.impressions
    clicked = holdout[holdout["clicked"]].groupby("session_id")["video_id"].agg(set)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out: dict[str, dict] = {}
    ui_all = truth.oracle.user_index(top["user_key"].map(truth.user_ids).to_numpy())
    ii_all = truth.oracle.item_index(top["video_id"].to_numpy())
    top = top.assign(gain=truth.oracle.click_prob_idx(ui_all, ii_all, None))
    oracle_dcg = None
    for model in (
        "oracle",
        "candidate",
        "candidate_catalogue",
        "attribute_ceiling",
        "incumbent",
        "most_popular",
        "random",
    ):
        part = top[top["model"] == model].sort_values(["session_id", "rank"])
        by_session = part.groupby("session_id")
        real = []
        for session, shown in by_session["video_id"]:
            relevant = clicked.get(session)
            if relevant:
                hits = np.array([v in relevant for v in shown], dtype=float)
                real.append((hits * discounts[: len(hits)]).sum() / discounts[: min(len(relevant), k)].sum())
        dcg = pd.Series(
            {session: float((g["gain"].to_numpy() * discounts[: len(g)]).sum()) for session, g in by_session}
        )
        if model == "oracle":
            oracle_dcg = dcg
        out[model] = {
            "ndcg10_clicks": round(float(np.mean(real)), 4),
            "expected_ndcg10": round(float((dcg / oracle_dcg.reindex(dcg.index)).mean()), 4),
        }
    return out


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
        retrieval = fit_retrieval(items, embeddings, events, Path(tmp) / "retrieval", settings)
        train_s = time.perf_counter() - t0
        log.info("trained encoder + ranker + retrieval in %.1f s", train_s)
        truth = world_truth(world, events, DEMO_PSEUDONYM_KEY)
        tables = holdout_tables(ranker, retrieval, items, embeddings, events, truth=truth, k=10, seed=settings.seed)
        tables.top_k = pd.concat([tables.top_k, ceiling_top_k(tables, items, fit_window, truth)], ignore_index=True)
        served = served_path_quality(tables, truth)
        recall = tables.served_rows.set_index(["slice", "metric"])["value"]
        n = tables.path["n_candidates"]
        log.info("served path: %s", served)
        inputs = ranker_inputs(items, embeddings, events, RankerConfig(**ranker.config))
        main = score_impressions(ranker, inputs, holdout, events)
        frames = [
            scored(holdout, "ranker", main.score, main.p_click),
            scored(holdout, "ranker_click", main.p_click),
            scored(holdout, "oracle", oracle_scores(holdout, oracle)),
            scored(holdout, "attribute_ceiling", attribute_ceiling_scores(fit_window, holdout, oracle)),
            scored(holdout, "random", np.random.default_rng(settings.seed).random(len(holdout))),
        ]
        for name, values in baseline_scores(
            split.part(events, "fit"), holdout, inputs.item_index, settings.seed, bpr_epochs
        ).items():
            frames.append(scored(holdout, name, values))
        for modality in MODALITIES:
            ablated = embeddings_frame(items, item_embedding_matrix(encoder, items, without=modality))
            s = score_impressions(
                ranker, ranker_inputs(items, ablated, events, RankerConfig(**ranker.config)), holdout, events
            )
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
        return {
            "ndcg10": round(float(table.at[name, ndcg]), 4),
            "cold_ndcg10": round(float(cold_table.at[name, ndcg]), 4),
            "click_auc": round(float(table.at[name, "click_auc"]), 4),
        }

    return {
        "served_ndcg10_over_oracle": round(served["candidate"]["ndcg10_clicks"] / served["oracle"]["ndcg10_clicks"], 4),
        "served_over_catalogue_ndcg10": round(
            served["candidate"]["ndcg10_clicks"] / served["candidate_catalogue"]["ndcg10_clicks"], 4
        ),
        "served_expected_ndcg10_over_oracle": served["candidate"]["expected_ndcg10"],
        "served_over_catalogue_expected_ndcg10": round(
            served["candidate"]["expected_ndcg10"] / served["candidate_catalogue"]["expected_ndcg10"], 4
        ),
        "retrieval_recall_at_n": {
            "n": n,
            "all": round(float(recall[("all", f"retrieval_recall_at_{n}")]), 4),
            **{
                s_: round(float(recall[(s_, f"retrieval_recall_at_{n}")]), 4)
                for s_ in ("user_history=none", "user_history=some")
                if (s_, f"retrieval_recall_at_{n}") in recall.index
            },
        },
        "served_path": {
            **served,
            "path": tables.path,
            "retrieval_val_recall_at_10": retrieval.extra.get("val_recall_at_10"),
        },
        "sizes": {
            "world": world.name,
            "items": len(items),
            "events": len(events),
            "holdout_impressions": len(holdout),
            "holdout_sessions": int(holdout["session_id"].nunique()),
            "cold_items": len(cold),
            "cold_sessions": cold_sessions,
        },
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
        "settings": {
            "encoder_epochs": settings.encoder_epochs,
            "ranker_epochs": settings.ranker_epochs,
            "patience": settings.patience,
            "seed": settings.seed,
            "visual_encoder": settings.visual_encoder,
            "bpr_epochs": bpr_epochs,
        },
        "served_notes": "served = the served path's top 10 per hold-out session (models.serving.path, the "
        "object /recommend answers with), catalogue = the same ranker over every published item, "
        "oracle = the world's top 10 by true utility; ndcg10_clicks judges each list on the "
        "session's real clicks (binary gains; the gate's catalogue_ndcg_at_10), expected_ndcg10 "
        "on the oracle's click probability without position bias, over the oracle list's DCG",
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
    parser.add_argument(
        "--visual-encoder",
        choices=("scratch", "backbone"),
        default=StepSettings().visual_encoder,
        help="the encoder's visual branch: pretrained backbone features or the from-scratch CNN (the ablation)",
    )
    parser.add_argument(
        "--visual-ablation",
        type=int,
        nargs="+",
        metavar="SEED",
        default=None,
        help="also train with the other visual encoder, on each of these seeds (alternating encoders); the "
        "result keeps the --visual-encoder run of the first seed and adds visual_encoder_ablation",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    world = args.world or Path("data/tiny" if args.quick else "data/demo")
    bpr_epochs = 5 if args.quick else 20

    def settings(seed: int, visual: str) -> StepSettings:
        quick = {"encoder_epochs": 1, "ranker_epochs": 2, "patience": 1} if args.quick else {}
        return StepSettings(**quick, seed=seed, visual_encoder=visual)

    seeds = args.visual_ablation
    if seeds:
        result = visual_ablation(lambda seed, v: run(world, settings(seed, v), bpr_epochs), args.visual_encoder, seeds)
    else:
        result = run(world, settings(args.seed, args.visual_encoder), bpr_epochs)
    path = write_result("quality", result, args.out, args.quick)
    print(path)


if __name__ == "__main__":
    main()
