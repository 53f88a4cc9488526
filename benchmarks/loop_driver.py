"""``benchmarks/loop.py``'s engine: imported only once the loop's environment is set (BentoML and Dagster
read their homes at import)."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import bentoml
import dagster as dg
import httpx
import numpy as np
import pandas as pd
from loop_ab import ab_report, start_ab, uploads_in_catalogue
from loop_snips import ESTIMATE_KEYS, LoggedRequest, night_estimate

from assets.definitions import all_assets, all_checks, build_resources
from assets.reporting import failed_check_lines
from assets.training import TrainingSettings
from bentos import schemas as s
from bentos import server
from bentos.content import SentenceEncoder
from bentos.recommender import LoadedRecommender
from bentos.serving_settings import ServingSettings
from vidrec.config import Paths
from vidrec.impressions import read_landed_impressions
from vidrec.ingest import landed_events
from vidrec.landing import landed_uploads
from vidrec.loop.judge import LoggedSlate
from vidrec.loop.report import (
    POLICIES,
    daily_table,
    plot_days,
    ratio_interval,
    snips_within_share,
    uploads_exposure_over_oracle,
)
from vidrec.loop.users import Session, Watched, answer, day_sessions, oracle_slate
from vidrec.loop.world import prepare_loop_world, upload_form
from vidrec.registry import ProductionPointer
from vidrec.sources import read_metadata
from vidrec.world.oracle import Oracle

log = logging.getLogger("benchmarks.loop")
K = 10
QUICK = TrainingSettings(encoder_epochs=2, ranker_epochs=3, retrieval_epochs=2)


@dataclass
class Loop:
    args: argparse.Namespace
    home: Path
    data: Path
    key: str
    oracle: Oracle
    base: str = ""
    world_of: dict[str, str] = field(default_factory=dict)  # served video id -> world video id
    upload_day: dict[str, int] = field(default_factory=dict)  # world video id -> day it arrived
    rows: list[dict] = field(default_factory=list)
    shown_live: int = 0
    blocked: list[dict] = field(default_factory=list)  # per night, the checks that did not pass and why
    ab: dict = field(default_factory=dict)  # the last day's live 50/50 A/B (--ab-last-day)
    # Per policy, what each user clicked on its slates (satiation: vidrec/loop/users.py).
    watched: dict[str, Watched] = field(default_factory=lambda: {p: Watched() for p in POLICIES})
    logged: list[LoggedRequest] = field(default_factory=list)  # today's served requests, for tonight's SNIPS

    def pipeline(self, night: int) -> str | None:
        """One nightly run of every asset and check; the production tag afterwards."""
        started = time.perf_counter()
        result = dg.materialize(
            [*all_assets, *all_checks],
            resources=build_resources(
                self.home,
                self.data,
                self.key,
                training_settings=QUICK if self.args.quick else None,
                gate_policy=self.args.policy,
                allow_demo_key="1",
            ),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
        gate = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate"]
        failed = [e.step_key for e in result.get_step_failure_events()]
        blocked_only = failed and all("promotion_gate" in f or "drift" in f for f in failed)
        if failed and not blocked_only:
            raise RuntimeError(f"night {night}: the pipeline failed in {failed}")
        passed = bool(gate and gate[0].passed)
        tag = ProductionPointer(Paths(self.home).registry).tag
        self.blocked.append({"night": night, "failed": failed_check_lines(result.get_asset_check_evaluations())})
        log.info(
            "night %d: gate %s, production %s (%.0f s)",
            night,
            "passed" if passed else "blocked",
            tag,
            time.perf_counter() - started,
        )
        return tag

    def record(
        self, day: int, policy: str, session: Session, world_ids: list[str], arm: str | None = None
    ) -> list[bool]:
        seen = self.watched[policy]
        got = answer(self.oracle, session, world_ids, seen.of(session.user_id), self.args.rewatch_factor)
        seen.add(session.user_id, world_ids, got.clicked)
        for position, video in enumerate(world_ids):
            self.rows.append(
                {
                    "day": day,
                    "policy": policy,
                    "arm": arm,
                    "session": session.index,
                    "position": position,
                    "video_id": video,
                    "upload_day": self.upload_day.get(video),
                    "clicked": bool(got.clicked[position]),
                    "watch_s": float(got.watch_s[position]),
                    "converted": bool(got.converted[position]),
                }
            )
        return list(zip(got.clicked.tolist(), got.watch_s.tolist(), got.converted.tolist()))


def _upload(loop: Loop, client: httpx.Client, frozen: LoadedRecommender, day: int, arriving: pd.DataFrame) -> None:
    for _, row in arriving.iterrows():
        video = loop.data.parent / "source-videos" / f"{row['video_id']}.mp4"
        with video.open("rb") as handle:
            reply = client.post(
                "/videos", files={"file": (video.name, handle, "video/mp4")}, data=upload_form(row), timeout=120
            )
        reply.raise_for_status()
        served_id = reply.json()["video_id"]
        loop.world_of[served_id] = row["video_id"]
        loop.upload_day[row["video_id"]] = day
    for record in landed_uploads(Paths(loop.home).landing, skip=frozen.catalogue.row_of):
        frozen.add_upload(record)  # the frozen model sees uploads too, cold (content only)


def _serve_day(loop: Loop, client: httpx.Client, frozen: LoadedRecommender, day: int, available: list[str]) -> str:
    sessions = day_sessions(loop.oracle, day, loop.args.sessions, K, loop.args.seed)
    tag = ""
    for session in sessions:
        reply = client.post("/recommend", json={"user_id": session.user_id, "k": K})
        reply.raise_for_status()
        body = reply.json()
        if body["arm"] == "production":  # the day's production model (a challenger may answer some users)
            tag = body["model_tag"]
        shown = [loop.world_of.get(i["video_id"], i["video_id"]) for i in body["items"]]
        loop.shown_live += len(shown)
        outcomes = loop.record(day, "vidrec", session, shown, arm=body["arm"])
        loop.logged.append(
            LoggedRequest(
                session.user_id,
                [h["video_id"] for h in body["history"]],
                LoggedSlate(
                    [i["video_id"] for i in body["items"]],
                    np.array([i["propensity"] for i in body["items"]], dtype=np.float64),
                    np.array([c for c, _, _ in outcomes], dtype=bool),
                ),
            )
        )
        feedback = [
            {
                "user_id": session.user_id,
                "video_id": item["video_id"],
                "request_id": body["request_id"],
                "position": position,
                "clicked": True,
                "watch_s": watch,
                "converted": converted,
            }
            for position, (item, (clicked, watch, converted)) in enumerate(zip(body["items"], outcomes))
            if clicked
        ]
        if feedback:
            client.post("/events", json={"events": feedback}).raise_for_status()
        still = frozen.recommend(s.RecommendRequest(user_id=session.user_id, k=K))
        loop.record(day, "frozen", session, [loop.world_of.get(i.video_id, i.video_id) for i in still.items])
        best = oracle_slate(
            loop.oracle,
            session.user_id,
            available,
            K,
            loop.watched["oracle"].of(session.user_id),
            loop.args.rewatch_factor,
        )
        loop.record(day, "oracle", session, best)
    return tag


def _wait_for(client: httpx.Client, tag: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        info = client.get("/model").json()
        if info["tag"] == tag or time.monotonic() > deadline:
            return info
        time.sleep(0.25)


def run_loop(args: argparse.Namespace, source: Path, root: Path, key: str) -> dict:
    world = prepare_loop_world(source, root / "world", args.days, args.uploads_per_day)
    (root / "source-videos").mkdir(exist_ok=True)
    for video in (source / "videos").iterdir():  # the held-back files the uploads read
        target = root / "source-videos" / video.name
        if not target.exists():
            target.symlink_to(video.resolve())
    home = root / "home"
    Paths(home).ensure()
    loop = Loop(args, home, world.data, key, Oracle.load(source))
    catalogue = read_metadata(world.data)["video_id"].tolist()
    tag = loop.pipeline(0)
    if tag is None:
        raise RuntimeError("day 0: no model was promoted; the loop needs a production model to start from")
    sentences = SentenceEncoder()
    frozen = LoadedRecommender(Path(bentoml.models.get(tag).path), tag, key, sentences, ServingSettings())
    port = server.free_port()
    process = server.start(port, {}, log_path=Paths(home).reports / "loop_server.log")
    days: list[dict] = []
    estimate: dict = dict.fromkeys(ESTIMATE_KEYS)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for day in range(args.days):
                started = time.perf_counter()
                _upload(loop, client, frozen, day, world.arrivals[day])
                available = catalogue + [v for v, d in loop.upload_day.items() if d <= day]
                serving = _serve_day(loop, client, frozen, day, available)
                days.append({"day": day, "model_tag": serving, **estimate, "serve_s": time.perf_counter() - started})
                estimate = dict.fromkeys(ESTIMATE_KEYS)
                if day < args.days - 1:
                    time.sleep(0.5)  # the impression log's last batch is on disk
                    promoted = loop.pipeline(day + 1)
                    days[-1]["promoted_next"] = promoted != serving
                    days[-1]["uploads_in_catalogue_after_night"] = uploads_in_catalogue(home)
                    ab = args.ab_last_day and day + 1 == args.days - 1 and promoted != serving
                    # Tonight's estimate, from today's logs, of whatever serves tomorrow (each user's arm on an
                    # A/B day), set beside tomorrow's measured CTR.
                    estimate = night_estimate(
                        loop.logged,
                        serving if ab else promoted,
                        promoted if ab else None,
                        _ab_salt(loop),
                        loop.key,
                        loop.home,
                        sentences,
                        loop.oracle.params,
                        K,
                        loop.args.seed,
                    )
                    loop.logged = []
                    if ab:
                        loop.ab = start_ab(home, client, serving, promoted, _ab_salt(loop), K)
                        promoted = serving  # production stays; the candidate serves half the users
                    _wait_for(client, promoted)
    finally:
        server.stop(process)
    return _report(loop, days)


def _ab_salt(loop: Loop) -> str:
    return f"loop-{loop.args.seed}"


def _report(loop: Loop, days: list[dict]) -> dict:
    shown = pd.DataFrame(loop.rows)
    table = daily_table(shown)
    live = table[table["policy"] == "vidrec"].set_index("day")
    for entry in days:
        entry["ctr_at_10"] = float(live.loc[entry["day"], "ctr_at_10"])
    last = loop.args.days - 1
    ratio, low, high = ratio_interval(shown, last, "vidrec", "frozen", loop.args.seed)
    landed = read_landed_impressions(Paths(loop.home).landing)
    _, _, counts = landed_events(Paths(loop.home).landing, set())
    accounted = counts["impressions_accepted"] + counts["impressions_quarantined"]
    plot = plot_days(table, Paths(loop.home).reports / "loop.png")
    print(table.round(4).to_string(index=False))
    return {
        "world": loop.args.world,
        "days": loop.args.days,
        "sessions_per_day": loop.args.sessions,
        "uploads_per_day": loop.args.uploads_per_day,
        "seed": loop.args.seed,
        "rewatch_factor": loop.args.rewatch_factor,
        "ctr_final_over_frozen": ratio,
        "ctr_final_over_frozen_ci_low": low,
        "ctr_final_over_frozen_ci_high": high,
        "uploads_exposure_over_oracle_day_after": uploads_exposure_over_oracle(shown),
        "snips_within_ci_share": snips_within_share(days),
        "impressions_shown": loop.shown_live,
        "impressions_landed": len(landed.rows),
        "unaccounted_impressions": loop.shown_live - accounted,
        "per_day": table.round(5).to_dict(orient="records"),
        "nights": days,
        "checks_not_passed": loop.blocked,
        "ab_last_day": ab_report(loop.ab, shown, last, loop.args.ab_last_day),
        "plot": str(plot),
    }
