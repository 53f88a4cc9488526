"""Request and response models of the HTTP API (they are the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RecommendedVideo(BaseModel):
    video_id: str
    title: str
    category: str
    score: float = Field(description="blended serving score")
    p_click: float
    expected_watch_s: float
    p_conversion: float


class HistoryVideo(BaseModel):
    video_id: str
    title: str


class RecommendResponse(BaseModel):
    user_id: str
    known_user: bool = Field(description="whether the model has this user's history")
    model_tag: str
    history: list[HistoryVideo]
    items: list[RecommendedVideo]


class ModelInfo(BaseModel):
    tag: str
    labels: dict[str, str]
    evaluation: list[dict]
