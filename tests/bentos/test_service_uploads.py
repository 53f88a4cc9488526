"""POST /videos through the service: an upload is recommendable at once, found by what its frames show, and
a malformed one is rejected with its reason."""

import json
from pathlib import Path

from vidrec.config import Paths
from vidrec.media.backbone import short_label
from vidrec.media.real_samples import CATS, SAMPLES, make_sample_videos


def _error(reply) -> str:
    body = reply.json()
    return json.dumps(body)


def _upload(api, video: bytes, **fields):
    data = {
        "title": "Live jam from the village",
        "category": "music",
        "creator_id": "c_live",
        "description": "a calm guitar session",
        "tags": "guitar,live",
        "is_live_host": "true",
        **fields,
    }
    return api.post("/videos", files={"file": ("clip.mp4", video, "video/mp4")}, data=data)


def test_uploaded_video_is_recommendable_at_once(api, sample_video: Path, vidrec_root: Path) -> None:
    before = api.get("/model").json()
    reply = _upload(api, sample_video.read_bytes())
    assert reply.status_code == 200, reply.text
    upload = reply.json()
    assert upload["created"] and upload["video_id"].startswith("up_") and upload["duration_s"] > 0
    video_id = upload["video_id"]
    assert api.get("/model").json()["items"] == before["items"] + 1
    similar = api.post("/similar", json={"video_id": video_id, "k": 3})
    assert similar.status_code == 200 and len(similar.json()["items"]) == 3
    music = api.post("/recommend", json={"user_id": "new-user", "k": 100, "filters": {"category": "music"}}).json()
    assert video_id in {i["video_id"] for i in music["items"]}
    ranked = api.post("/rank", json={"requests": [{"user_id": "new-user", "video_ids": [video_id, "v00001"]}]}).json()
    assert ranked[0]["unknown_video_ids"] == []
    live = api.post("/creators", json={"user_id": "new-user", "k": 5, "live_only": True}).json()["creators"]
    assert [c["creator_id"] for c in live] == ["c_live"] and live[0]["is_live_host"]
    again = _upload(api, sample_video.read_bytes()).json()
    assert again["video_id"] == video_id and not again["created"]
    assert (Paths(vidrec_root).landing / "videos" / f"{video_id}.mp4").is_file()


def test_an_upload_is_found_by_what_its_frames_show(api, tmp_path: Path, vidrec_root: Path) -> None:
    """scikit-image's cat photograph, uploaded as a clip whose title says nothing of cats: tagged in the
    answer and in its landed record, first for /search "cat", kept by a filter on its recognised tag and
    on its uploader's tag."""
    clip = make_sample_videos(tmp_path, tuple(x for x in SAMPLES if x.name == "chelsea"), 1.0, (192, 144))["chelsea"]
    upload = _upload(api, clip.read_bytes(), title="Sunday afternoon", description="", tags="sofa").json()
    tags = [t["tag"] for t in upload["tags"]]
    assert tags and tags[0] in {short_label(i) for i in CATS}, upload
    record = json.loads((Paths(vidrec_root).landing / "videos" / f"{upload['video_id']}.json").read_text())
    assert [t["tag"] for t in json.loads(record["recognised"])] == tags
    assert Path(record["frame_features_path"]).is_file()
    found = api.post("/search", json={"query": "cat", "k": 3}).json()["items"]
    assert found[0]["video_id"] == upload["video_id"] and [t["tag"] for t in found[0]["tags"]] == tags
    for tag in (tags[0], "sofa"):
        kept = api.post("/search", json={"query": "afternoon", "k": 100, "filters": {"tags": [tag]}}).json()["items"]
        assert upload["video_id"] in {i["video_id"] for i in kept}, tag


def test_malformed_uploads_are_rejected_with_a_reason(api, sample_video: Path) -> None:
    truncated = sample_video.read_bytes()[:4000]  # a real MP4 header, then nothing decodable
    reply = _upload(api, truncated)
    assert reply.status_code == 422 and "video rejected" in _error(reply) and "/tmp" not in _error(reply)
    not_mp4 = _upload(api, b"GIF89a" + b"\0" * 500)
    assert not_mp4.status_code == 422 and "not an MP4" in _error(not_mp4)
    url = api.post(
        "/videos",
        files={"file": (None, "https://example.com/cat.mp4")},
        data={"title": "t", "category": "music", "creator_id": "c"},
    )
    assert url.status_code == 400 and "never fetched" in _error(url)
    missing_title = api.post(
        "/videos",
        files={"file": ("c.mp4", sample_video.read_bytes(), "video/mp4")},
        data={"category": "music", "creator_id": "c"},
    )
    assert missing_title.status_code == 400 and "title" in _error(missing_title)
