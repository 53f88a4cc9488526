"""Commerce in the ranker and the final score: brand and category codes and live-now reach the ranker, live-now
follows the schedule (at the impression's time in training, at the request's time when serving), the GMV
blend at weight 0 is the plain ranking and above 0 moves the higher expected order value up, and the live
boost applies only inside the session window (a clock passed in, no sleeping)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.fit.steps import RankerInputs
from models.fit.systems import RankerSystem
from models.fit.trainers import impression_arrays
from models.nn.config import RankerConfig
from models.serving.bundle import load_bundle, write_bundle
from models.serving.commerce import CommerceTerms, final_score
from models.serving.path import PathSettings
from models.serving.scoring import Scores
from tests.model_fixtures import tiny_contents, untrained_models
from vidrec.items import item_code_matrix, with_products

START = pd.Timestamp("2026-01-01T10:00:00Z")
END = pd.Timestamp("2026-01-01T12:00:00Z")
SESSIONS = pd.DataFrame({"live_id": ["l1"], "creator_id": ["host"], "start": [START], "end": [END]})


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.value)


def _catalogue(n: int = 30) -> pd.DataFrame:
    """Every third video is by the live host; every other video sells a product, priced by its row."""
    rows = np.arange(n)
    return pd.DataFrame(
        {
            "video_id": [f"v{i}" for i in rows],
            "title": "t",
            "category": np.where(rows % 2 == 0, "beauty", "music"),
            "creator_id": np.where(rows % 3 == 0, "host", "other"),
            "is_product": rows % 2 == 0,
            "price": np.where(rows % 2 == 0, 5.0 + rows, np.nan),
            "duration_s": 2.0,
            "is_live_host": rows % 3 == 0,
        }
    )


def _bundle(tmp_path: Path, settings: PathSettings = PathSettings(), live: pd.DataFrame | None = SESSIONS):
    models = untrained_models(tmp_path / "m")
    contents = tiny_contents(models, n=30, histories={"u": ["v1"]})
    products = pd.DataFrame(
        {"sku": ["s-a", "s-b"], "brand": ["acme", "ember"], "video_ids": ["v0|v2", "v4"]},
    )
    contents.items = with_products(_catalogue(), products)
    contents.path, contents.live = settings, live
    write_bundle(tmp_path / "b", contents)
    return load_bundle(tmp_path / "b")


def test_products_give_brand_codes_and_items_without_a_product_stay_neutral() -> None:
    items = with_products(_catalogue(6), pd.DataFrame({"sku": ["s"], "brand": ["acme"], "video_ids": ["v0|v2"]}))
    assert items["brand"].tolist()[:3] == ["acme", None, "acme"]
    codes = item_code_matrix(items, 256)
    assert codes[0, 0] == codes[2, 0] != 0  # one brand, one code
    assert codes[1, 0] == 0 and codes[4, 0] == 0  # no product: the padding id (a zero vector)
    assert (codes[:, 1] != 0).all() and codes[0, 1] != codes[1, 1]  # category: beauty vs music
    assert (item_code_matrix(items.drop(columns=["brand"]), 256)[:, 0] == 0).all()


def test_codes_and_live_now_reach_the_ranker_in_training() -> None:
    config = RankerConfig(content_dim=8, hidden=8, id_buckets=16, user_buckets=16, code_buckets=16)
    torch.manual_seed(0)
    ranker = config.build()
    with torch.no_grad():  # a trained model's live vector is not zero; make its path visible here
        ranker.live.normal_()
    system = RankerSystem(ranker, torch.randn(4, 8))
    items = {"v0": 0, "v1": 1, "v2": 2, "v3": 3}
    impressions = pd.DataFrame(
        {
            "event_id": ["e1", "e2"],
            "session_id": ["s1", "s2"],
            "user_key": ["u", "u"],
            "video_id": ["v0", "v0"],
            "ts": [START + pd.Timedelta(minutes=5), END + pd.Timedelta(minutes=5)],
            "position": [0, 0],
            "clicked": [False, False],
            "watch_s": [0.0, 0.0],
            "converted": [False, False],
        }
    )
    inputs = RankerInputs(
        item_index=items,
        embeddings=np.zeros((4, 8), np.float32),
        buckets=np.arange(4),
        features=np.zeros((4, 3), np.float32),
        known=set(items),
        user_buckets={},
        codes=np.array([[3, 5], [0, 5], [3, 6], [0, 6]]),
        creators=np.array(["host", "other", "host", "other"], dtype=object),
        live=SESSIONS,
    )
    live = inputs.live_now(impressions)
    assert live.tolist() == [1.0, 0.0]  # inside the session, then after it ended
    arrays = impression_arrays(
        impressions, impressions[impressions["clicked"]], items, inputs.buckets, inputs.features, 4, None, None,
        inputs.codes, live,
    )  # fmt: skip
    assert arrays["item_codes"].tolist() == [[3, 5], [3, 5]] and arrays["live_now"].tolist() == [1.0, 0.0]
    batch = {k: torch.as_tensor(v) for k, v in arrays.items()}
    system.eval()
    with torch.no_grad():
        out = system(batch).click_logit
        # The same impression at two times scores differently only through live_now.
        assert out[0] != out[1]
        flipped = system({**batch, "live_now": torch.tensor([0.0, 0.0])}).click_logit
        assert torch.allclose(flipped[0], out[1])
        other_brand = system({**batch, "item_codes": torch.tensor([[4, 5], [4, 5]])}).click_logit
        assert not torch.allclose(other_brand, out)


def test_live_now_at_serving_flips_with_the_schedule(tmp_path: Path) -> None:
    path = _bundle(tmp_path).served_path()
    hosts = np.flatnonzero(path.commerce.creators == "host")
    before, inside, after = _ns(START - pd.Timedelta(seconds=1)), _ns(START), _ns(END)
    assert path.commerce.live_now(hosts, inside).all()
    assert not path.commerce.live_now(hosts, before).any() and not path.commerce.live_now(hosts, after).any()
    assert not path.commerce.live_now(np.flatnonzero(path.commerce.creators == "other"), inside).any()
    # The ranker's input: the same user scores a host's video differently while live.
    rows = np.arange(len(path))
    off = path.score([1, 4], 0, rows, path.commerce.live_now(rows, before))
    on = path.score([1, 4], 0, rows, path.commerce.live_now(rows, inside))
    others = path.commerce.creators != "host"
    assert np.allclose(off.score[others], on.score[others]) and not np.allclose(off.score[~others], on.score[~others])
    # Without a time nobody is live: the answer equals the one before the session.
    assert path.recommend([1, 4], 0, 10).rows.tolist() == path.recommend([1, 4], 0, 10, now_ns=before).rows.tolist()


def test_live_boost_applies_only_inside_the_session_window(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, PathSettings(live_boost=100.0))
    path = bundle.served_path()
    is_host = path.commerce.creators == "host"
    for now, live in (
        (START - pd.Timedelta(minutes=1), False),
        (START, True),
        (END - pd.Timedelta(seconds=1), True),
        (END, False),
    ):
        served = path.recommend([1, 4], 0, 5, now_ns=_ns(now))
        assert is_host[served.rows].all() == live, now
    # A new user without history is served from the prior outside the session; inside, the host still leads.
    assert is_host[path.recommend([], 0, 5, now_ns=_ns(START)).rows].all()


def test_gmv_weight_zero_is_the_plain_ranking_and_above_zero_moves_gmv_up(tmp_path: Path) -> None:
    plain_path = _bundle(tmp_path / "plain").served_path()
    zero = _bundle(tmp_path / "zero", PathSettings(gmv_weight=0.0)).served_path()
    heavy = _bundle(tmp_path / "heavy", PathSettings(gmv_weight=50.0)).served_path()
    plain = plain_path.recommend([1, 4], 0, 10)
    assert zero.recommend([1, 4], 0, 10).rows.tolist() == plain.rows.tolist()
    rows = np.arange(len(plain_path))
    scores = plain_path.score([1, 4], 0, rows)
    gmv = plain_path.commerce.expected_gmv(rows, scores)
    blended = heavy.recommend([1, 4], 0, 10)
    assert blended.rows[0] == rows[np.argmax(gmv)]
    assert gmv[blended.rows].sum() > gmv[plain.rows].sum()


def test_final_score_by_hand() -> None:
    scores = Scores(
        p_click=np.zeros(3), expected_watch_s=np.zeros(3), p_conversion=np.array([0.1, 0.2, 0.0]),
        score=np.array([1.0, 0.5, 0.9], np.float32),
    )  # fmt: skip
    terms = CommerceTerms(np.array([10.0, 10.0, 99.0]), np.array(["a", "b", "c"], dtype=object), SESSIONS)
    rows = np.array([0, 1, 2])
    assert final_score(scores, rows, terms, 0.0, 0.0) is scores.score
    # gmv = [1, 2, 0], normalised by 2: + w · [0.5, 1, 0]
    assert np.allclose(final_score(scores, rows, terms, 1.0, 0.0), [1.5, 1.5, 0.9])
    assert np.allclose(final_score(scores, rows, terms, 0.0, 2.0, np.array([False, True, False])), [1.0, 2.5, 0.9])
