"""Request and response models of the HTTP API (they are the OpenAPI schema at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_K = 100
MAX_RANK_CANDIDATES = 1000
MAX_HISTORY = 100
MAX_EVENTS = 1000

UserId = Annotated[
    str, Field(min_length=1, max_length=256, description="the client's user id (pseudonymised before use)")
]
VideoId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
TopK = Annotated[int, Field(ge=1, le=MAX_K, description=f"how many results, 1..{MAX_K}")]


class _Strict(BaseModel):
    # Unknown fields are an error: a misspelt filter must not silently mean "no filter".
    model_config = ConfigDict(extra="forbid")


class Filters(_Strict):
    category: str | None = Field(None, max_length=64, description="only videos of this category")
    product_only: bool = Field(False, description="only shoppable (product) videos")
    exclude_seen: bool = Field(True, description="leave out videos in the user's history")
    tags: list[str] | None = Field(
        None,
        max_length=16,
        description="only videos carrying any of these tags: recognised in the picture (ImageNet class names, "
        "e.g. 'tabby') or given by the uploader; case-insensitive",
    )


class RecommendRequest(_Strict):
    user_id: UserId
    k: TopK = 10
    filters: Filters = Field(default_factory=Filters)
    history: list[VideoId] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="recent video_ids, oldest first, for users the model does not know "
        "(appended to the model's history for users it knows)",
    )
    mmr_lambda: float | None = Field(
        None, ge=0.0, le=1.0, description="MMR λ: 1 = plain ranking, lower = more diverse (default: the bundle's)"
    )
    explain: bool = Field(False, description="add a short reason to each item (the ranker's attention)")


class VideoTag(BaseModel):
    tag: str = Field(description="ImageNet class the pretrained backbone recognised in the video's frames")
    confidence: float = Field(description="its class probability averaged over the sampled frames, in [0, 1]")


TagList = Annotated[
    list[VideoTag], Field(default_factory=list, description="what is in the picture, most confident first")
]


class RecommendedVideo(BaseModel):
    video_id: str
    title: str
    category: str
    creator_id: str
    tags: TagList
    score: float = Field(description="blended serving score")
    p_click: float
    expected_watch_s: float
    p_conversion: float
    position: int = Field(description="0-based position shown")
    propensity: float = Field(
        description="probability, under the response's policy, that this video was shown at this position "
        "(1 when the policy is deterministic); logged with the impression for off-policy evaluation"
    )
    reason: str | None = Field(None, description="why (with explain=true): the most-attended history video")


class HistoryVideo(BaseModel):
    video_id: str
    title: str


class RecommendResponse(BaseModel):
    user_id: str
    request_id: str = Field(
        description="names this slate: send it with the feedback on its items to /events (signed; "
        "feedback on a video the slate did not show, or from another user, is refused)"
    )
    policy: str = Field(description="how the slate was drawn: `deterministic` or the exploration policy")
    arm: str = Field("production", description="the experiment arm that answered")
    known_user: bool = Field(description="whether the model has this user's history")
    model_tag: str
    retrieval: Literal["all", "exact", "ivf", "prior"] = Field(
        description="how candidates were generated: the whole (filtered) catalogue, exact or IVF (approximate) search "
        "around the user vector, or the content-only prior for users without history"
    )
    candidates: int = Field(description="how many candidates the ranker scored")
    history: list[HistoryVideo]
    ignored_history: list[str] = Field(default_factory=list, description="history video_ids not in the catalogue")
    items: list[RecommendedVideo]


class SimilarRequest(_Strict):
    video_id: VideoId
    k: TopK = 10
    filters: Filters = Field(default_factory=Filters)


class SimilarVideo(BaseModel):
    video_id: str
    title: str
    category: str
    creator_id: str
    tags: TagList
    similarity: float = Field(description="cosine similarity of the content embeddings, in [-1, 1]")


class SimilarResponse(BaseModel):
    video_id: str
    model_tag: str
    items: list[SimilarVideo]


class SearchRequest(_Strict):
    query: str = Field(min_length=1, max_length=512)
    k: TopK = 10
    filters: Filters = Field(default_factory=Filters)


class SearchHit(SimilarVideo):
    relevance: float = Field(
        description="what results are ranked by, in [-1, 1]: 0.5 x share of the query's words in the title or "
        "tags + 0.35 x closeness of the query to the labels recognised in the picture + 0.15 x similarity"
    )


class SearchResponse(BaseModel):
    query: str
    model_tag: str
    items: list[SearchHit]
    reason: str | None = Field(None, description="why there are no items, when the query has nothing to search for")


class CreatorsRequest(_Strict):
    user_id: UserId
    k: TopK = 10
    live_only: bool = Field(False, description="only creators who host live streams")
    history: list[VideoId] = Field(default_factory=list, max_length=MAX_HISTORY)


class RecommendedCreator(BaseModel):
    creator_id: str
    is_live_host: bool
    score: float = Field(description="mean blended score of the creator's three best videos for this user")
    videos: list[str] = Field(description="the creator's best videos for this user, best first")


class CreatorsResponse(BaseModel):
    user_id: str
    known_user: bool
    model_tag: str
    creators: list[RecommendedCreator]


class RankRequest(_Strict):
    user_id: UserId
    video_ids: list[VideoId] = Field(min_length=1, max_length=MAX_RANK_CANDIDATES)
    history: list[VideoId] = Field(default_factory=list, max_length=MAX_HISTORY)


class RankedVideo(BaseModel):
    video_id: str
    score: float
    p_click: float
    expected_watch_s: float
    p_conversion: float
    propensity: float = Field(
        1.0,
        description="/rank's ordering is deterministic: each video is shown at its "
        "position with probability 1 (logged with the impression)",
    )


# What a response showed, one logged impression per item: /recommend's or /rank's videos.
Shown = list[RecommendedVideo] | list[RankedVideo]


class RankResponse(BaseModel):
    user_id: str
    request_id: str = Field(description="names this ordering (logged as impressions, positions as ranked)")
    known_user: bool
    model_tag: str
    items: list[RankedVideo] = Field(description="the known candidates, best first")
    unknown_video_ids: list[str] = Field(description="candidates not in the catalogue (not ranked)")


class UploadResponse(BaseModel):
    video_id: str
    created: bool = Field(description="false when the same bytes were uploaded before")
    model_tag: str
    duration_s: float
    has_audio: bool
    has_text: bool
    tags: TagList
    processing_s: float


class Event(_Strict):
    """One impression and its outcome; the events contract's invariants are checked."""

    user_id: UserId
    video_id: VideoId
    ts: datetime | None = Field(None, description="when it happened (UTC); default: when received")
    session_id: str = Field("", max_length=128)
    position: int = Field(0, ge=0, le=10_000)
    surface: str = Field("api", max_length=64)
    propensity: float | None = Field(None, gt=0, le=1)
    clicked: bool = False
    watch_s: float = Field(0.0, ge=0, le=86_400)
    converted: bool = False
    event_id: str | None = Field(None, min_length=1, max_length=64)
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=8192,
        description="the request_id of the /recommend (or /rank) response that showed this video: joins "
        "the feedback to its logged impression (position, propensity, model)",
    )

    @model_validator(mode="after")
    def _contract(self) -> Event:
        if self.watch_s > 0 and not self.clicked:
            raise ValueError("watch_s > 0 requires clicked = true")
        if self.converted and not self.clicked:
            raise ValueError("converted requires clicked = true")
        return self


class EventsRequest(_Strict):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    accepted: int
    event_ids: list[str]
    unknown_video_ids: list[str] = Field(
        description="video_ids not in the serving catalogue (landed anyway; "
        "the pipeline quarantines them if they stay unknown)"
    )


class Pong(BaseModel):
    model_tag: str = Field(description="the production model version answering requests")


class ArmInfo(BaseModel):
    arm: Literal["production", "challenger"]
    tag: str = Field(description="the stored model version serving this arm")
    share: float = Field(description="the share of users assigned to this arm")


class ExperimentInfo(BaseModel):
    experiment_id: str
    started_at: str
    arms: list[ArmInfo]
    challenger_serving: bool = Field(
        description="whether this worker serves the challenger now (false while it loads or after it failed to)"
    )
    challenger_error: str | None = Field(None, description="why the challenger failed to load, if it did")


class ModelInfo(BaseModel):
    tag: str
    labels: dict[str, str]
    evaluation: list[dict]
    items: int = Field(description="videos in the serving catalogue, uploads included")
    uploads: int
    index: str = Field(description="retrieval index kind: exact or ivf")
    loaded_at: str
    last_load_error: str | None = Field(None, description="why the latest production tag failed to load, if it did")
    experiment: ExperimentInfo | None = Field(
        None, description="the live A/B experiment (arms, tags, shares), absent when none runs"
    )
