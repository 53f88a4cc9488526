"""``POST /audience``: who should see a campaign; ``POST /creative``: which of a product's videos to show
a user. Their request/response schemas and answers over one loaded model version; the selection itself
is ``models.marketing.audience`` / ``models.marketing.creative``.

Only pseudonymised user keys leave the service, and never fewer than the minimum audience size
(``VIDREC_AUDIENCE_MIN_SIZE``, default 100): a smaller audience is a 400 naming the reason.
"""

from __future__ import annotations

import os
import weakref
from typing import Literal

import numpy as np
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, ConfigDict, Field, model_validator

from bentos.recommender import LoadedRecommender
from bentos.schemas import UserId, VideoId
from models.marketing.audience import MIN_AUDIENCE, AudienceTooSmall, AudienceUsers, lookalikes, top_audience
from models.marketing.creative import choose_creative
from vidrec.privacy import pseudonymise

MIN_SIZE_ENV_VAR = "VIDREC_AUDIENCE_MIN_SIZE"
MAX_AUDIENCE = 100_000


class AudienceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field must not silently mean "no campaign"

    video_ids: list[VideoId] = Field(
        default_factory=list,
        max_length=100,
        description="the campaign: one video, a product's videos, or any set; users are ranked by their best video",
    )
    seed_user_ids: list[UserId] = Field(
        default_factory=list,
        max_length=10_000,
        description="instead of videos: users (client ids) to find lookalikes of, in the user-tower space",
    )
    n: int = Field(1000, ge=1, le=MAX_AUDIENCE, description="audience size (at least the minimum, 100 by default)")
    objective: Literal["conversion", "click"] = Field(
        "conversion", description="rank by p(click) x p(conversion | click), or by p(click)"
    )

    @model_validator(mode="after")
    def _one_target(self) -> AudienceRequest:
        if bool(self.video_ids) == bool(self.seed_user_ids):
            raise ValueError("give either video_ids (a campaign) or seed_user_ids (lookalikes), not both or neither")
        return self


class AudienceResponse(BaseModel):
    model_tag: str
    objective: str = Field(description='"conversion", "click" or "lookalike"')
    size: int
    min_size: int
    user_keys: list[str] = Field(description="pseudonymised user keys, best first")
    scores: list[float] = Field(description="predicted conversion / click probability, or cosine similarity")
    unknown_video_ids: list[str] = Field(default_factory=list)
    ignored_seed_users: int = Field(0, description="seed users the model has no history for")


_USERS: weakref.WeakKeyDictionary[LoadedRecommender, AudienceUsers] = weakref.WeakKeyDictionary()


def min_audience_size() -> int:
    """The configured minimum (read per request, so a restart is not needed to tighten it)."""
    raw = os.environ.get(MIN_SIZE_ENV_VAR)
    if not raw:
        return MIN_AUDIENCE
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MIN_SIZE_ENV_VAR}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{MIN_SIZE_ENV_VAR}={value} must be at least 1 (default {MIN_AUDIENCE})")
    return value


def audience_users(model: LoadedRecommender) -> AudienceUsers:
    """The model version's users with a history, built once per version."""
    users = _USERS.get(model)
    if users is None:
        users = AudienceUsers.from_histories(model.histories, model.catalogue.row_of, model.user_buckets)
        _USERS[model] = users
    return users


def answer_audience(model: LoadedRecommender, request: AudienceRequest) -> AudienceResponse:
    """The audience for a campaign or the lookalikes of seed users; InvalidArgument (400) when too small."""
    k = min_audience_size()
    users = audience_users(model)
    unknown: list[str] = []
    ignored = 0
    try:
        if request.video_ids:
            rows, unknown = model.catalogue.rows(list(request.video_ids))
            if not rows:
                raise InvalidArgument(f"none of the campaign's video_ids is in the serving catalogue: {unknown[:10]}")
            audience = top_audience(model.path, users, np.asarray(rows), request.n, request.objective, k)
        else:
            seeds = [pseudonymise(u, model.key) for u in request.seed_user_ids]
            audience, ignored_keys = lookalikes(model.path, users, seeds, request.n, k)
            ignored = len(ignored_keys)
    except AudienceTooSmall as error:
        raise InvalidArgument(str(error)) from None
    except ValueError as error:
        raise InvalidArgument(str(error)) from None
    return AudienceResponse(
        model_tag=model.tag,
        objective=audience.objective,
        size=len(audience.user_keys),
        min_size=k,
        user_keys=audience.user_keys,
        scores=[float(v) for v in audience.scores],
        unknown_video_ids=unknown,
        ignored_seed_users=ignored,
    )


class CreativeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    video_ids: list[VideoId] = Field(min_length=2, max_length=20, description="the product's videos (creatives)")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="exploration: a uniform pick with this probability")
    history: list[VideoId] = Field(default_factory=list, max_length=100, description="recent video_ids, oldest first")


class CreativeOption(BaseModel):
    video_id: str
    p_click: float
    p_conversion: float
    probability: float = Field(description="the chance this policy shows this video to this user")


class CreativeResponse(BaseModel):
    model_tag: str
    video_id: str = Field(description="the video to show")
    propensity: float = Field(description="probability the policy chose it: log it with the impression for IPS")
    explored: bool = Field(description="the pick differs from the model's best")
    epsilon: float
    policy: str
    options: list[CreativeOption]
    unknown_video_ids: list[str] = Field(default_factory=list)


def answer_creative(
    model: LoadedRecommender, request: CreativeRequest, rng: np.random.Generator | None = None
) -> CreativeResponse:
    """ε-greedy over p(click) x p(conversion | click) of the known videos; 400 with fewer than one known."""
    rows, unknown = model.catalogue.rows(list(dict.fromkeys(request.video_ids)))
    if not rows:
        raise InvalidArgument(f"none of the video_ids is in the serving catalogue: {unknown[:10]}")
    key = pseudonymise(request.user_id, model.key)
    history, _ = model.catalogue.rows([*model.histories.get(key, []), *request.history])
    bucket = int(model.user_buckets.get(key, 0))
    scores = model.path.score(history[-model.history_length :], bucket, np.asarray(rows, dtype=np.int64))
    value = scores.p_click * scores.p_conversion
    chosen, propensity, probs = choose_creative(value, request.epsilon, rng or np.random.default_rng())
    ids = model.catalogue.video_ids
    return CreativeResponse(
        model_tag=model.tag,
        video_id=ids[rows[chosen]],
        propensity=propensity,
        explored=chosen != int(np.argmax(value)),
        epsilon=request.epsilon,
        policy=f"eps_greedy(eps={request.epsilon})",
        options=[
            CreativeOption(video_id=ids[r], p_click=float(c), p_conversion=float(v), probability=float(p))
            for r, c, v, p in zip(rows, scores.p_click, scores.p_conversion, probs)
        ],
        unknown_video_ids=unknown,
    )
