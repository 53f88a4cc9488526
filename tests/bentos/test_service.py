"""The service in-process over ASGI (the ``api`` client of conftest.py): recommend, filters, similar, search,
creators, rank, events and the impression log, a live challenger; uploads and the HTTP surface have modules of
their own."""

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from vidrec.config import Paths
from vidrec.experiment import arm_for
from vidrec.impressions import read_landed_impressions
from vidrec.landing import read_landed_events
from vidrec.privacy import pseudonymise
from vidrec.registry import ProductionPointer


def _error(reply) -> str:
    body = reply.json()
    return json.dumps(body)


def test_recommend_for_a_known_user(api, known_user, trained) -> None:
    body = api.post("/recommend", json={"user_id": known_user, "k": 5}).json()
    assert body["known_user"] and body["model_tag"] and len(body["items"]) == 5
    seen = {h["video_id"] for h in body["history"]}
    assert seen and not seen & {i["video_id"] for i in body["items"]}
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in body["items"]:
        assert item["title"] and 0 <= item["p_click"] <= 1 and 0 <= item["p_conversion"] <= item["p_click"]
        assert item["expected_watch_s"] >= 0


def test_filters_restrict_the_items(api, known_user) -> None:
    music = api.post(
        "/recommend", json={"user_id": known_user, "k": 100, "filters": {"category": "music", "exclude_seen": False}}
    ).json()
    assert music["items"] and {i["category"] for i in music["items"]} == {"music"}
    products = api.post(
        "/recommend", json={"user_id": known_user, "k": 100, "filters": {"product_only": True, "exclude_seen": False}}
    ).json()
    assert products["items"]
    assert api.post("/recommend", json={"user_id": known_user, "filters": {"colour": "red"}}).status_code == 400


def test_unknown_user_gets_content_recommendations_and_may_send_history(api) -> None:
    cold = api.post("/recommend", json={"user_id": "never-seen", "k": 3}).json()
    assert not cold["known_user"] and len(cold["items"]) == 3 and cold["history"] == []
    warm = api.post(
        "/recommend", json={"user_id": "never-seen", "k": 3, "history": ["v00001", "v00002", "no-such-video"]}
    ).json()
    assert [h["video_id"] for h in warm["history"]] == ["v00001", "v00002"]
    assert warm["ignored_history"] == ["no-such-video"]
    assert not {"v00001", "v00002"} & {i["video_id"] for i in warm["items"]}


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"user_id": "u", "k": 0}, "k"),
        ({"user_id": "u", "k": 101}, "k"),
        ({"k": 5}, "user_id"),
        ({"user_id": "", "k": 5}, "user_id"),
        ({"user_id": "u", "k": "ten"}, "k"),
    ],
)
def test_invalid_recommend_requests_are_400_with_the_field_named(api, payload, field) -> None:
    reply = api.post("/recommend", json=payload)
    assert reply.status_code == 400 and field in _error(reply)


def test_malformed_json_and_oversized_bodies_are_4xx(api) -> None:
    assert api.post("/recommend", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    huge = {"user_id": "u", "history": ["v00001"] * 200_000}
    reply = api.post("/recommend", json=huge)
    assert reply.status_code == 413 and "limit" in reply.json()["error"]


def test_similar_and_unknown_video(api, trained) -> None:
    video = trained.items["video_id"].iloc[0]
    body = api.post("/similar", json={"video_id": video, "k": 5}).json()
    assert len(body["items"]) == 5 and video not in {i["video_id"] for i in body["items"]}
    sims = [i["similarity"] for i in body["items"]]
    assert sims == sorted(sims, reverse=True)
    missing = api.post("/similar", json={"video_id": "v99999", "k": 5})
    assert missing.status_code == 404 and "v99999" in _error(missing)
    assert api.post("/similar", json={"video_id": video, "k": 101}).status_code == 400


def test_search_by_text_with_filters(api) -> None:
    body = api.post("/search", json={"query": "guitar concert", "k": 4, "filters": {"category": "travel"}}).json()
    assert len(body["items"]) == 4 and {i["category"] for i in body["items"]} == {"travel"}
    assert api.post("/search", json={"query": "", "k": 4}).status_code == 400
    assert api.post("/search", json={"query": "\u200b\u200b", "k": 4}).status_code == 400


def test_search_without_words_returns_nothing_with_a_reason(api) -> None:
    for query in ["🐱🚀", "<script>", "?!...", "the and of"]:
        body = api.post("/search", json={"query": query, "k": 4}).json()
        assert body["items"] == [] and "no words to search for" in body["reason"], query
    body = api.post("/search", json={"query": "guitar concert", "k": 10}).json()
    assert body["reason"] is None and len(body["items"]) == 10
    for item in body["items"]:
        assert -1.0 <= item["relevance"] <= 1.0 and -1.0 <= item["similarity"] <= 1.0 + 1e-6
    relevance = [i["relevance"] for i in body["items"]]
    assert relevance == sorted(relevance, reverse=True)


def test_creators_for_a_user(api, known_user, trained) -> None:
    body = api.post("/creators", json={"user_id": known_user, "k": 2}).json()
    assert len(body["creators"]) == 2 and body["creators"][0]["score"] >= body["creators"][1]["score"]
    assert set(body["creators"][0]["videos"]) <= set(trained.items["video_id"])


def test_rank_orders_each_request_and_reports_unknown_candidates(api, known_user, vidrec_root: Path) -> None:
    reply = api.post(
        "/rank",
        json={
            "requests": [
                {"user_id": known_user, "video_ids": ["v00003", "v00001", "v00002", "nope"]},
                {"user_id": "someone-new", "video_ids": ["v00004", "v00005"]},
            ]
        },
    )
    first, second = reply.json()
    assert {i["video_id"] for i in first["items"]} == {"v00001", "v00002", "v00003"}
    assert first["unknown_video_ids"] == ["nope"] and first["known_user"] and not second["known_user"]
    assert [i["score"] for i in first["items"]] == sorted((i["score"] for i in first["items"]), reverse=True)
    # The ordering is deterministic: shown with probability 1 at its position, and logged so.
    assert [i["propensity"] for i in first["items"]] == [1.0] * 3
    logged = _logged(Paths(vidrec_root).landing, first["request_id"], 3).sort_values("position")
    assert logged["video_id"].tolist() == [i["video_id"] for i in first["items"]]
    assert set(logged["propensity"]) == {1.0} and set(logged["policy"]) == {"rank"}
    too_many = api.post("/rank", json={"requests": [{"user_id": "u", "video_ids": ["v00001"] * 1001}]})
    assert too_many.status_code == 400


def test_events_land_pseudonymised(api, vidrec_root: Path) -> None:
    events = [
        {"user_id": "carol", "video_id": "v00001", "clicked": True, "watch_s": 2.5, "position": 1},
        {"user_id": "carol", "video_id": "v00002"},
        {"user_id": "dave", "video_id": "unknown-video"},
    ]
    reply = api.post("/events", json={"events": events})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["accepted"] == 3 and body["unknown_video_ids"] == ["unknown-video"]
    landed = read_landed_events(Paths(vidrec_root).landing).rows.set_index("event_id").loc[body["event_ids"]]
    assert set(landed["user_key"]) == {
        pseudonymise("carol", os.environ["VIDREC_PSEUDONYM_KEY"]),
        pseudonymise("dave", os.environ["VIDREC_PSEUDONYM_KEY"]),
    }
    raw = b"".join(p.read_bytes() for p in (Paths(vidrec_root).landing / "events").rglob("*.jsonl"))
    assert b"carol" not in raw and b"dave" not in raw
    bad = api.post("/events", json={"events": [{"user_id": "x", "video_id": "v00001", "converted": True}]})
    assert bad.status_code == 400 and "converted requires clicked" in _error(bad)
    assert api.post("/events", json={"events": []}).status_code == 400


def _logged(landing: Path, request_id: str, rows: int) -> pd.DataFrame:
    """The landed impressions of one response, once the log's thread wrote them (it fsyncs within ~50 ms)."""
    for _ in range(100):
        logged = read_landed_impressions(landing).rows
        logged = logged[logged["request_id"] == request_id]
        if len(logged) == rows:
            break
        time.sleep(0.05)
    return logged


def test_what_is_shown_is_logged_and_feedback_names_its_slate(api, known_user, vidrec_root: Path) -> None:
    shown = api.post("/recommend", json={"user_id": known_user, "k": 4}).json()
    request_id, slate = shown["request_id"], [i["video_id"] for i in shown["items"]]
    assert shown["policy"] == "deterministic" and [i["propensity"] for i in shown["items"]] == [1.0] * 4
    landing = Paths(vidrec_root).landing
    logged = _logged(landing, request_id, 4)
    assert logged.sort_values("position")["video_id"].tolist() == slate
    assert set(logged["user_key"]) == {pseudonymise(known_user, os.environ["VIDREC_PSEUDONYM_KEY"])}
    assert set(logged["model_tag"]) == {shown["model_tag"]} and set(logged["arm"]) == {"production"}
    click = {"user_id": known_user, "video_id": slate[2], "clicked": True, "watch_s": 3.0, "request_id": request_id}
    assert api.post("/events", json={"events": [click]}).status_code == 200
    refused = {
        "not in the slate": {**click, "video_id": "v00099" if "v00099" not in slate else "v00098"},
        "not issued by this service to this user_id": {**click, "user_id": "someone-else"},
        "not one the service issued": {**click, "request_id": "made-up"},
    }
    for reason, event in refused.items():
        reply = api.post("/events", json={"events": [click, event]})  # the good one is not landed either
        assert reply.status_code == 400 and reason in _error(reply) and "event 1" in _error(reply), reply.text
    landed = read_landed_events(landing).rows
    assert (landed["request_id"] == request_id).sum() == 1


def test_a_live_challenger_answers_its_sticky_share_and_its_arm_is_logged(api, trained, vidrec_root: Path) -> None:
    pointer = ProductionPointer(Paths(vidrec_root).registry)
    challenger = trained.save_again("live-ab")
    key = os.environ["VIDREC_PSEUDONYM_KEY"]
    pointer.start_challenger(challenger, 0.5, salt="service-test")
    try:
        for _ in range(200):  # the worker's watcher loads the challenger within its poll interval
            experiment = api.get("/model").json()["experiment"]
            if experiment and experiment["challenger_serving"]:
                break
            time.sleep(0.1)
        assert {a["arm"]: a["tag"] for a in experiment["arms"]}["challenger"] == challenger
        arms = {}
        for i in range(40):
            body = api.post("/recommend", json={"user_id": f"ab-user-{i}", "k": 3}).json()
            expected = arm_for(pseudonymise(f"ab-user-{i}", key), "service-test", 0.5)
            assert body["arm"] == expected and (body["model_tag"] == challenger) == (expected == "challenger")
            arms[body["request_id"]] = expected
        assert set(arms.values()) == {"production", "challenger"}
        for _ in range(100):
            logged = read_landed_impressions(Paths(vidrec_root).landing).rows
            logged = logged[logged["request_id"].isin(arms)]
            if len(logged) == 3 * len(arms):
                break
            time.sleep(0.05)
        assert (logged["arm"] == logged["request_id"].map(arms)).all()
    finally:
        pointer.end_challenger(promote=False, reason="test over")
    assert api.get("/model").json()["experiment"] is None  # /model reads the pointer
    for _ in range(100):  # the watcher stops serving the rolled-back challenger at its next poll
        if api.post("/recommend", json={"user_id": "ab-user-0", "k": 3}).json()["arm"] == "production":
            break
        time.sleep(0.1)
    assert {api.post("/recommend", json={"user_id": f"ab-user-{i}", "k": 3}).json()["arm"] for i in range(10)} == {
        "production"
    }
