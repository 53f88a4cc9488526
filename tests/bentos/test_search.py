"""/search relevance over real pictures (tags from the pretrained backbone), wordless queries, tag filters."""

import json

import numpy as np
import pandas as pd
import pytest

from bentos.catalogue import Catalogue
from bentos.content import SentenceEncoder
from bentos.schemas import Filters
from bentos.search import PICTURE_WEIGHTS, WEIGHTS, query_words, weights_for
from vidrec.media.backbone import shared_backbone
from vidrec.media.hashing import file_sha256
from vidrec.media.real_samples import SAMPLES, make_sample_videos
from vidrec.media.recognition import RecognitionConfig, frame_features, tags_json, video_tags

REAL = tuple(s for s in SAMPLES if s.name in ("chelsea", "coffee", "rocket"))
TITLES = ["Chef museum bake", "Glitch walkthrough bass", "Guitar concert live", "Travel vlog mountains", "Speedrun"]


@pytest.fixture(scope="module")
def sentences() -> SentenceEncoder:
    return SentenceEncoder()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """Three untitled real clips (their words are in the picture only) among titled ones without pictures."""
    root = tmp_path_factory.mktemp("search")
    paths = make_sample_videos(root, REAL, seconds=1.0, size=(192, 144))
    videos = pd.DataFrame([{"video_id": n, "path": str(p), "sha256": file_sha256(str(p))} for n, p in paths.items()])
    features, _ = frame_features(videos, root / "cache", RecognitionConfig(n_frames=3))
    tags = video_tags(videos["video_id"].tolist(), [features[s] for s in videos["sha256"]], shared_backbone())
    rows = [
        {"video_id": name, "title": f"clip {i}", "tags": None, "recognised": tags_json(tags[tags["video_id"] == name])}
        for i, name in enumerate(videos["video_id"])
    ]
    rows += [{"video_id": f"v{i}", "title": t, "tags": "music|live", "recognised": None} for i, t in enumerate(TITLES)]
    # Titled with a class name, but its frames were recognised as something else (what the demo world's
    # synthetic videos titled "camera" look like to the backbone).
    doormat = json.dumps([{"tag": "doormat", "confidence": 0.6, "label_index": 539}])
    rows.append({"video_id": "titled", "title": "My cat and camera diary", "tags": None, "recognised": doormat})
    items = pd.DataFrame(rows).assign(
        category="misc", creator_id="c1", is_product=False, price=None, duration_s=1.0, is_live_host=False
    )
    rng = np.random.default_rng(0)
    return Catalogue(items, rng.normal(size=(len(items), 16)).astype(np.float32) * 3)


def _search(catalogue: Catalogue, sentences: SentenceEncoder, query: str, filters: Filters = Filters()) -> list:
    text = sentences.encode([query])[0]
    content = np.zeros(16, np.float32)
    allowed = catalogue.allowed(filters)
    rows, scores, cosines = catalogue.search(content, text, query_words(query), 5, allowed, sentences)
    assert np.all(scores <= 1) and np.all(scores >= -1) and np.all(np.abs(cosines) <= 1 + 1e-6)
    assert list(scores) == sorted(scores, reverse=True)
    return [catalogue.video_ids[r] for r in rows]


@pytest.mark.parametrize(("query", "expected"), [(s.query, s.name) for s in REAL])
def test_a_class_name_finds_the_video_that_shows_it(catalogue, sentences, query: str, expected: str) -> None:
    assert _search(catalogue, sentences, query)[0] == expected


def test_title_words_still_count(catalogue, sentences) -> None:
    assert _search(catalogue, sentences, "guitar concerts")[0] == "v2"  # plural folded
    assert _search(catalogue, sentences, "diary")[0] == "titled"


def test_for_a_class_name_the_picture_outweighs_a_title(catalogue, sentences) -> None:
    """An untitled clip showing a cat ranks above a video titled "cat" whose frames show a doormat; the
    titled one still ranks above videos with neither."""
    found = _search(catalogue, sentences, "cat")
    assert found[:2] == ["chelsea", "titled"]


def test_weights_follow_the_share_of_class_name_words() -> None:
    assert weights_for(query_words("cat")) == PICTURE_WEIGHTS
    assert weights_for(query_words("speedrun walkthrough")) == WEIGHTS
    half = weights_for(query_words("guitar concert"))  # "guitar" names ImageNet classes, "concert" none
    assert half["words"] == pytest.approx((WEIGHTS["words"] + PICTURE_WEIGHTS["words"]) / 2)
    assert all(abs(sum(w.values()) - 1.0) < 1e-9 for w in (WEIGHTS, PICTURE_WEIGHTS, half))


@pytest.mark.parametrize("query", ["🐱🚀", "!!! ???", "<script>", "<b></b> &amp;", "the of and"])
def test_queries_without_words_have_nothing_to_search(query: str) -> None:
    assert query_words(query) == []


def test_markup_around_words_keeps_the_words() -> None:
    assert query_words("<b>Coffee</b> cups!") == ["coffee", "cup"]


def test_tag_filter_keeps_videos_with_that_tag(catalogue, sentences) -> None:
    cat_tags = [t["tag"] for t in catalogue.recognised[catalogue.row_of["chelsea"]]]
    found = _search(catalogue, sentences, "animal", Filters(tags=[cat_tags[0].upper()]))
    assert found == ["chelsea"]
    assert set(_search(catalogue, sentences, "music", Filters(tags=["live"]))) == {f"v{i}" for i in range(5)}
    assert catalogue.describe(catalogue.row_of["chelsea"])["tags"][0]["tag"] == cat_tags[0]


def test_similarity_is_a_cosine(catalogue) -> None:
    rows, sims = catalogue.index.search(catalogue.embeddings[0], 4, None)
    assert rows[0] == 0 and abs(sims[0] - 1.0) < 1e-5 and np.all(np.abs(sims) <= 1 + 1e-6)
