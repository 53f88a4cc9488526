"""The loop's nightly SNIPS judgement (``vidrec/loop/judge.py``) against real models: each logged day-d
request is replayed, with the history the service used for it, through the model that serves day d+1
(the promoted candidate, the kept champion, or on an A/B day each user's arm), to get its ranking."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import bentoml
import numpy as np
from loop_ab import SHARE

from bentos import schemas as s
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from bentos.serving_settings import ServingSettings, exploration_from_env
from models.serving.exploration import ExplorationSettings
from vidrec.config import Paths
from vidrec.experiment import CHALLENGER, PRODUCTION, arm_for
from vidrec.landing import landed_uploads
from vidrec.loop.judge import Estimate, LoggedSlate, snips_ctr, target_exposure
from vidrec.privacy import pseudonymise
from vidrec.world import behaviour as bh

log = logging.getLogger("benchmarks.loop")


ESTIMATE_KEYS = ("snips", "snips_low", "snips_high", "snips_models", "snips_weight_one_share")


@dataclass(frozen=True)
class LoggedRequest:
    user_id: str
    history: list[str]  # the served video ids the service's model used as the user's history
    slate: LoggedSlate  # served video ids, logged propensities, clicks


def _replayer(tag: str, key: str, home: Path, sentences: SentenceEncoder) -> LoadedRecommender:
    """``tag`` in-process, deterministic (the exploration is applied analytically), with no stored
    histories (each replay passes the request's own) and the landed uploads added as the service has them."""
    model = LoadedRecommender(
        Path(bentoml.models.get(tag).path),
        tag,
        key,
        sentences,
        ServingSettings(exploration=ExplorationSettings(epsilon=0.0)),
    )
    model.histories = {}
    for record in landed_uploads(Paths(home).landing, skip=model.catalogue.row_of):
        model.add_upload(record)
    return model


def judge_night(
    logged: list[LoggedRequest],
    tag_of_user: dict[str, str],
    key: str,
    home: Path,
    sentences: SentenceEncoder,
    params: bh.BehaviourParams,
    k: int,
    seed: int,
) -> tuple[Estimate, list[str]]:
    """SNIPS CTR@k of the next day's serving (``tag_of_user``: the model each logged user gets tomorrow)
    from the day's ``logged`` requests; also the tags judged."""
    exploring = exploration_from_env(os.environ)
    theta = np.asarray(bh.examination_prob(np.arange(k), params), dtype=np.float64)
    models = {tag: _replayer(tag, key, home, sentences) for tag in sorted(set(tag_of_user.values()))}
    targets = []
    for request in logged:
        model = models[tag_of_user[request.user_id]]
        reply = model.recommend(
            s.RecommendRequest(user_id=request.user_id, k=k + exploring.tail, history=request.history)
        )
        ranked = [item.video_id for item in reply.items]
        targets.append(target_exposure(ranked, k, exploring.epsilon, exploring.tail, theta))
    slates = [r.slate for r in logged]
    return snips_ctr(slates, targets, exploring.epsilon, theta, k, seed), sorted(models)


def night_estimate(
    logged: list[LoggedRequest],
    production: str,
    challenger: str | None,
    salt: str,
    key: str,
    home: Path,
    sentences: SentenceEncoder,
    params: bh.BehaviourParams,
    k: int,
    seed: int,
) -> dict:
    """SNIPS CTR@k of tomorrow's serving (``production``, or on an A/B day each user's sticky arm between it
    and ``challenger``) from today's ``logged`` requests, as the ``ESTIMATE_KEYS`` of the day's report."""
    tag_of_user = {}
    for request in logged:
        arm = arm_for(pseudonymise(request.user_id, key), salt, SHARE) if challenger else PRODUCTION
        tag_of_user[request.user_id] = challenger if arm == CHALLENGER else production
    found, tags = judge_night(logged, tag_of_user, key, home, sentences, params, k, seed)
    log.info("SNIPS CTR@%d of %s: %.4f [%.4f, %.4f]", k, tags, found.snips, found.low, found.high)
    return dict(zip(ESTIMATE_KEYS, (found.snips, found.low, found.high, tags, found.weight_one_share)))
