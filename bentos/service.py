"""The vidrec HTTP service: retrieval, ranking, cold-start uploads and feedback events over the production model."""

from __future__ import annotations

import gc
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import anyio
import bentoml
import torch
from bentoml.exceptions import InvalidArgument, NotFound, UnprocessableEntity
from bentoml.validators import ContentType
from pydantic import Field

from bentos import client_errors, marketing
from bentos import schemas as s
from bentos.arms import ArmHolder
from bentos.content import SentenceEncoder
from bentos.docs_page import OpenApiPage
from bentos.guard import RequestGuard
from bentos.intake import check_slates, landing_record, upload_response
from bentos.model_watch import ModelHolder
from bentos.recommender import LoadedRecommender
from bentos.serving_settings import ServingSettings, exploration_from_env
from bentos.uploads import UploadRejected, process_upload
from bentos.user_state import UserState, answers_503, unavailable
from vidrec.config import DEMO_PSEUDONYM_KEY, PSEUDONYM_KEY_ENV_VAR, Paths, resolve_backbone_cache, resolve_root
from vidrec.impressions import NONCE_SEED_ENV_VAR, ImpressionLog
from vidrec.landing import EventLanding, FeedbackEvent, land_upload, landed_uploads
from vidrec.privacy import DEMO_KEY_WARNING, pseudonymise
from vidrec.registry import ProductionPointer
from vidrec.state import StateUnavailable
from vidrec.text import normalise_text

log = logging.getLogger(__name__)

# One per core: a worker is CPU-bound (ranker pass), so more would only queue. A simulation that seeds the
# nonce stream (VIDREC_SIM_NONCE_SEED) serves from one worker, so the stream's order is its requests' order.
WORKERS = 1 if os.environ.get(NONCE_SEED_ENV_VAR) else 2
POLL_ENV_VAR = "VIDREC_MODEL_POLL_S"


def torch_threads(cores: int, workers: int) -> int:
    """Threads per worker so that workers x threads <= cores (at least one)."""
    return max(1, cores // max(1, workers))


@bentoml.service(
    workers=WORKERS,
    traffic={"timeout": 60},
    http={"host": "127.0.0.1", "port": 3001},  # loopback unless the operator binds wider on purpose
)
class Recommender:
    """Recommends, ranks, searches and ingests for the vidrec production model."""

    def __init__(self) -> None:
        torch.set_num_threads(torch_threads(os.cpu_count() or 1, WORKERS))
        client_errors.install()
        root = resolve_root()
        self.paths = Paths(root).ensure()
        self.key = os.environ.get(PSEUDONYM_KEY_ENV_VAR) or DEMO_PSEUDONYM_KEY
        if self.key == DEMO_PSEUDONYM_KEY:  # /events and /recommend would hash real users with a public key
            log.warning(DEMO_KEY_WARNING)
        self.sentences = SentenceEncoder()  # loaded once per worker, shared by every model version
        self.landing = EventLanding(self.paths.landing, self.key)
        self.impressions = ImpressionLog(self.paths.landing)  # what was shown, for the next pipeline run
        self.serving = ServingSettings(exploration=exploration_from_env(os.environ))
        self.state = UserState.from_env(self.paths.root, self.key)  # VIDREC_STATE_URL, else SQLite under root
        # Production and, during a live A/B, the registry's challenger: both hot-swapped by one watcher.
        self.arms: ArmHolder[LoadedRecommender] = ArmHolder(
            ProductionPointer(self.paths.registry),
            self._load,
            poll_s=float(os.environ.get(POLL_ENV_VAR) or 2.0),
            catch_up=self._apply_uploads,
        )
        self.holder: ModelHolder[LoadedRecommender] = self.arms.production  # endpoints without arms
        self._categories: tuple[object, int, frozenset[str]] | None = None  # (catalogue column, rows, distinct values)
        self.arms.start()

    def _apply_uploads(self, model: LoadedRecommender) -> None:
        self.state.ensure_seeded(model)  # once per tag; a store that was down is retried every poll
        for record in landed_uploads(self.paths.landing, skip=model.catalogue.row_of):
            model.add_upload(record)

    def _load(self, tag: str) -> LoadedRecommender:
        stored = bentoml.models.get(tag)
        model = LoadedRecommender(Path(stored.path), str(stored.tag), self.key, self.sentences, self.serving)
        model.labels = dict(stored.info.labels)
        model.state = self.state
        self._apply_uploads(model)  # uploads stay recommendable across promotions and restarts
        # Everything alive now (libraries, MiniLM, this version's catalogue and index) lives for as long as
        # the version serves; a full collection walked all of it, a ~0.4 s pause landing on the requests in
        # flight. Frozen objects are left out of collections (still freed by reference counting; cyclic
        # garbage of a replaced version could linger, which bounded memory allows).
        gc.freeze()
        return model

    def __is_ready__(self) -> bool:
        return self.holder.current is not None

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.arms.stop()
        self.impressions.close()

    # BentoML has validated each body against the ``input_spec`` model before the call, so the endpoints
    # rebuild the request with ``model_construct`` (no second validation pass).
    # Every endpoint is ``async`` and computes on the event loop. BentoML runs a synchronous API in a
    # thread pool of ``threads`` (default 1) per worker: under mixed load at concurrency 16 the sync
    # endpoints queued behind each other for that one thread, and each of their GIL hand-offs waited up to
    # the 5 ms switch interval for the loop thread busy with /recommend (p50 ~230 ms against 20 ms). On a
    # worker that owns one core a thread adds nothing but that. Only blocking I/O (the events' fsync, an
    # upload's probe) goes to a thread.

    def _check_category(self, model: LoadedRecommender, filters: s.Filters) -> None:
        """400 for a category no video has: it would otherwise answer an empty list, as if none matched."""
        if filters.category is None:
            return
        # Built once per catalogue state (~3 ms over 100k rows); an upload can bring a new category.
        column, rows = model.catalogue.category, len(model.catalogue)
        cached = self._categories
        if cached is None or cached[0] is not column or cached[1] != rows:
            cached = self._categories = (column, rows, frozenset(column[:rows].tolist()))
        if filters.category not in cached[2]:
            known = ", ".join(sorted(cached[2])[:50])
            raise InvalidArgument(
                f"unknown filters.category {filters.category!r}: no video in the catalogue has it (known: {known})"
            )

    @bentoml.api(input_spec=s.RecommendRequest)
    @answers_503
    async def recommend(self, **params: Any) -> s.RecommendResponse:
        """Top-k videos for the user, ranked by the blended click / watch / conversion score."""
        request = s.RecommendRequest.model_construct(**params)
        arm, model = self.arms.pick(pseudonymise(request.user_id, self.key))  # sticky per user and experiment
        self._check_category(model, request.filters)
        response = model.recommend(request)
        response.arm = arm
        self._log_shown(request.user_id, response.request_id, response.policy, response.arm, model.tag, response.items)
        return response

    def _log_shown(self, user_id: str, request_id: str, policy: str, arm: str, tag: str, items: s.Shown) -> None:
        """One impression row per shown item (written and fsync'd by the log's thread within 50 ms)."""
        now, user_key = datetime.now(UTC).isoformat(), pseudonymise(user_id, self.key)
        self.impressions.log(
            [
                {
                    "request_id": request_id,
                    "ts": now,
                    "user_key": user_key,
                    "model_tag": tag,
                    "arm": arm,
                    "policy": policy,
                    "video_id": item.video_id,
                    "position": position,
                    "score": item.score,
                    "propensity": item.propensity,
                }
                for position, item in enumerate(items)
            ]
        )

    @bentoml.api(route="/ping")
    async def ping(self) -> s.Pong:
        """An authenticated no-op through the API path: checks a client's key and names the serving model."""
        return s.Pong(model_tag=self.holder.current.tag)

    @bentoml.api(input_spec=s.SimilarRequest)
    async def similar(self, **params: Any) -> s.SimilarResponse:
        """Videos whose fused content embedding is nearest (works for videos nobody has watched)."""
        request = s.SimilarRequest.model_construct(**params)
        model = self.holder.current
        self._check_category(model, request.filters)
        try:
            return model.similar(request)
        except KeyError:
            raise NotFound(f"unknown video_id {request.video_id!r}: not in the serving catalogue") from None

    @bentoml.api(input_spec=s.SearchRequest)
    async def search(self, **params: Any) -> s.SearchResponse:
        """Videos whose content matches the text (MiniLM query through the encoder's text projection)."""
        request = s.SearchRequest.model_construct(**params)
        if not normalise_text(request.query):
            raise InvalidArgument("query is empty after normalisation")
        model = self.holder.current
        self._check_category(model, request.filters)
        return model.search(request)

    @bentoml.api(input_spec=s.CreatorsRequest)
    @answers_503
    async def creators(self, **params: Any) -> s.CreatorsResponse:
        """Creators and live hosts ranked for the user from the scores of their videos."""
        return self.holder.current.creators(s.CreatorsRequest.model_construct(**params))

    # Not batchable: BentoML's adaptive batching shed 62% of /rank calls at concurrency 16 (its 200 ms
    # budget) and, sized not to shed, made a 100-candidate /rank 2.4-4.4x slower than /recommend at p50
    # (waiting to fill batches) for no CPU saved (4.5 vs 4.4 ms a mixed request, benchmarks/serve.py
    # --quick, side by side). A worker owns one core: merging calls has nothing to parallelise. A call
    # can still carry many requests, grouped by user (one history encoding each).
    @bentoml.api
    @answers_503
    async def rank(self, requests: list[s.RankRequest]) -> list[s.RankResponse]:
        """The ranker's ordering of each request's candidates, grouped by user."""
        model = self.holder.current
        responses = model.rank(requests)
        for response in responses:  # the caller shows this ordering: logged as impressions, positions as ranked
            self._log_shown(response.user_id, response.request_id, "rank", "production", model.tag, response.items)
        return responses

    @bentoml.api(route="/videos")
    async def upload(
        self,
        file: Annotated[Path, ContentType("video/mp4")],
        title: Annotated[str, Field(min_length=1, max_length=300)],
        category: Annotated[str, Field(min_length=1, max_length=64)],
        creator_id: Annotated[str, Field(min_length=1, max_length=128)],
        description: Annotated[str, Field(max_length=5000)] = "",
        tags: Annotated[str, Field(max_length=1000, description="comma-separated")] = "",
        is_product: bool = False,
        price: Annotated[float | None, Field(ge=0)] = None,
        is_live_host: bool = False,
    ) -> s.UploadResponse:
        """Upload an MP4 (multipart, field `file`): probed in an isolated worker, embedded, recommendable at once."""
        metadata = {
            "title": title,
            "category": category,
            "creator_id": creator_id,
            "description": description,
            "tags": [t.strip() for t in tags.split(",") if t.strip()],
            "is_product": is_product,
            "price": price,
            "is_live_host": is_live_host,
        }
        # Off the request thread: probing waits seconds on a worker process and must not hold up /recommend.
        return await anyio.to_thread.run_sync(self._ingest_upload, file, metadata)

    def _ingest_upload(self, file: Path, metadata: dict) -> s.UploadResponse:
        started = time.perf_counter()
        try:
            # Recognised here (backbone on 8 frames), so /search and tag filters see the upload at once.
            recognition = resolve_backbone_cache(self.paths.features)
            processed = process_upload(file, self.paths.features, recognition_cache=recognition)
        except UploadRejected as error:
            raise UnprocessableEntity(str(error)) from None
        model = self.holder.current
        created = processed.video_id not in model.catalogue.row_of
        record = landing_record(metadata, processed, time.time())
        if created:
            land_upload(self.paths.landing, processed.video_id, file, record)
        model.add_upload({"video_id": processed.video_id, **record})
        for other in self.arms.models():  # the challenger, or a model a promotion swapped in meanwhile
            if other is not model:
                other.add_upload({"video_id": processed.video_id, **record})
        return upload_response(metadata, processed, created, model.tag, time.perf_counter() - started)

    @bentoml.api(input_spec=s.EventsRequest)
    async def events(self, **params: Any) -> s.EventsResponse:
        """Append feedback events durably (fsync) to the landing area; user ids are pseudonymised first."""
        request = s.EventsRequest.model_construct(**params)
        received = datetime.now(UTC)
        check_slates(self.key, request.events)
        batch = [FeedbackEvent(**{**e.model_dump(), "ts": e.ts or received}) for e in request.events]
        try:
            # A thread for the write + fsync (milliseconds of waiting on the disk, not of CPU).
            ids = await anyio.to_thread.run_sync(self.landing.append, batch)
        except ValueError as error:
            raise InvalidArgument(str(error)) from None
        try:  # after landing: an acknowledged event is durable even when the state store is down
            await anyio.to_thread.run_sync(self.state.record, batch, ids)
        except StateUnavailable as error:
            return unavailable(error, landed=ids)
        known = self.holder.current.catalogue.row_of
        unknown = sorted({e.video_id for e in request.events if e.video_id not in known})
        return s.EventsResponse(accepted=len(ids), event_ids=ids, unknown_video_ids=unknown)

    @bentoml.api(route="/model")
    async def model_info(self) -> s.ModelInfo:
        """The serving model's tag, lineage labels, evaluation table and catalogue size (also GET /model)."""
        model = self.holder.current
        info = model.model_info(self.holder.last_error)
        return info.model_copy(update={"experiment": self.arms.experiment_info()})

    @bentoml.api(input_spec=marketing.AudienceRequest)
    async def audience(self, **params: Any) -> marketing.AudienceResponse:
        """Top-N pseudonymised users for a campaign's videos, or lookalikes of seed users (400 below the minimum)."""
        return marketing.answer_audience(self.holder.current, marketing.AudienceRequest.model_construct(**params))

    @bentoml.api(input_spec=marketing.CreativeRequest)
    async def creative(self, **params: Any) -> marketing.CreativeResponse:
        """Which of a product's videos to show the user (ε-greedy; the propensity is returned for logging)."""
        return marketing.answer_creative(self.holder.current, marketing.CreativeRequest.model_construct(**params))


Recommender.add_asgi_middleware(OpenApiPage)  # outermost of ours: the docs page needs no key
Recommender.add_asgi_middleware(RequestGuard)
