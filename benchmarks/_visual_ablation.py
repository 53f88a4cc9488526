"""The visual-encoder ablation of ``benchmarks/quality.py --visual-ablation SEED...``: the pretrained backbone
and the from-scratch CNN trained on the same world and seeds, compared on all and on cold items."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

log = logging.getLogger("benchmarks.quality")


def _summary(result: dict) -> dict:
    """The numbers an encoder comparison reads from one run."""
    return {
        "ranker_ndcg10": result["models"]["ranker"]["ndcg10"],
        "ranker_cold_ndcg10": result["models"]["ranker"]["cold_ndcg10"],
        "ranker_click_auc": result["models"]["ranker"]["click_auc"],
        "ndcg10_over_oracle": result["ndcg10_over_oracle"],
        "cold_ndcg10_over_oracle": result["cold_ndcg10_over_oracle"],
        "served_ndcg10_over_oracle": result["served_ndcg10_over_oracle"],
        "retrieval_recall_at_n": result["retrieval_recall_at_n"]["all"],
        "without_visual_ndcg10": result["ablation"]["visual"],
        "without_visual_cold_ndcg10": result["ablation_cold"]["visual"],
        "train_s": result["train_s"],
    }


def visual_ablation(run: Callable[[int, str], dict], main: str, seeds: list[int]) -> dict:
    """Both visual encoders on each seed, alternating (the machine's load drifts; each seed runs both
    back to back). The main result is ``main``'s first-seed run; the ablation reports every run and, per
    encoder, the mean and the spread across seeds (the noise a difference must beat)."""
    other = "scratch" if main == "backbone" else "backbone"
    runs: dict[str, dict[int, dict]] = {main: {}, other: {}}
    for seed in seeds:
        for visual in (main, other):
            log.info("visual encoder %s, seed %d", visual, seed)
            runs[visual][seed] = run(seed, visual)
    result = runs[main][seeds[0]]
    table = {visual: {str(seed): _summary(r) for seed, r in by_seed.items()} for visual, by_seed in runs.items()}
    per_encoder = {}
    for visual, by_seed in table.items():
        per_encoder[visual] = {}
        for key in ("ranker_ndcg10", "ranker_cold_ndcg10", "served_ndcg10_over_oracle", "cold_ndcg10_over_oracle"):
            values = [row[key] for row in by_seed.values()]
            per_encoder[visual][key] = {
                "mean": round(float(np.mean(values)), 4),
                "spread": round(float(np.ptp(values)), 4),
            }
    result["visual_encoder_ablation"] = {
        "main": main,
        "seeds": seeds,
        "runs": table,
        "per_encoder": per_encoder,
        "notes": "backbone = attention pooling + projection over frozen EfficientNet-Lite0 features of 8 frames; "
        "scratch = the small CNN over 8 frames of 32x32; spread = max - min across seeds",
    }
    return result
