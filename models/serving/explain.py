"""Why an item was recommended, read from the ranker itself: the history item with the largest target-
attention weight for that candidate (and whether their categories match), or, for a user without
history (the content-only prior), "popular with similar users".

The weights are the ranker's own: ``attention_weights`` is ``TargetAttention.attend_one`` with the
softmax kept, and a test holds that the weights reproduce the interest vector the scores were made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from models.nn.ranker import UserState
from models.serving.scoring import RankerScorer

PRIOR_REASON = "popular with similar users"


@dataclass(frozen=True)
class Explanation:
    kind: str  # "history" (an attended history item) or "prior" (no history: the content-only prior)
    text: str
    history_row: int | None = None
    weight: float | None = None
    same_category: bool | None = None


@torch.inference_mode()
def attention_weights(scorer: RankerScorer, state: UserState, candidates: np.ndarray) -> np.ndarray:
    """(C, H) softmax weights of each candidate over the state's real history items (oldest first)."""
    ranker, cand = scorer.ranker, torch.as_tensor(np.asarray(candidates, dtype=np.int64))
    # The candidate vector exactly as scoring builds it (content + id, + brand and category when the ranker
    # has commerce inputs), so the weights are the ones the score was made from.
    target = ranker.target_vector(scorer.embeddings[cand], scorer.ids[cand], scorer.codes_of(cand), None)
    attention = ranker.attention
    _, w2, w3, w4 = attention.mlp[0].weight.chunk(4, dim=1)
    per_target = target @ (w2 - w4).T
    cross = (target.unsqueeze(1) * state.history.unsqueeze(0)) @ w3.T
    hidden = attention.mlp[1](state.prepared.unsqueeze(0) + per_target.unsqueeze(1) + cross)
    logits = attention.mlp[2](hidden).squeeze(-1)
    weights = torch.softmax(logits.masked_fill(~state.mask.unsqueeze(0), float("-inf")), dim=1).nan_to_num(0.0)
    return weights.numpy()


def explain(
    scorer: RankerScorer,
    history_rows: list[int],
    history_length: int,
    candidates: np.ndarray,
    titles: Sequence[str] | np.ndarray,
    categories: Sequence[str] | np.ndarray,
    user_bucket: int = 0,
) -> list[Explanation]:
    """One explanation per candidate row, for a user with ``history_rows`` (oldest first)."""
    recent = list(history_rows)[-history_length:] if history_length else []
    if not recent:
        return [Explanation("prior", PRIOR_REASON) for _ in candidates]
    state = scorer.user_state(recent, history_length, user_bucket=user_bucket)
    weights = attention_weights(scorer, state, candidates)
    out = []
    for row, w in zip(np.asarray(candidates).tolist(), weights):
        j = int(np.argmax(w))
        source = recent[j]
        same = categories[source] == categories[row]
        text = f"because you watched “{titles[source]}”" + (f" (also {categories[row]})" if same else "")
        out.append(Explanation("history", text, history_row=source, weight=float(w[j]), same_category=same))
    return out
