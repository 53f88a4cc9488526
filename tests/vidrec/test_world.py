"""The demo world simulator: determinism, real decodable MP4s, event-log invariants, oracle and logging policy.

One `tiny` world is generated per module and shared; a few tests generate a second one to compare.
"""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from vidrec.world.behaviour import BehaviourParams
from vidrec.world.catalogue import CATEGORIES, CATEGORY_NAMES, sample_items, to_ns
from vidrec.world.generate import WorldManifest, generate_world, main
from vidrec.world.oracle import Oracle
from vidrec.world.policy import LoggingPolicy
from vidrec.world.spec import WORLD_SIZES, world_spec
from vidrec.world.users import build_users

METADATA_COLUMNS = [
    "video_id",
    "title",
    "description",
    "tags",
    "category",
    "creator_id",
    "is_product",
    "price",
    "is_live_host",
    "published_at",
]
EVENT_COLUMNS = [
    "event_id",
    "ts",
    "user_id",
    "video_id",
    "session_id",
    "position",
    "surface",
    "propensity",
    "clicked",
    "watch_s",
    "converted",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldManifest:
    return generate_world(tmp_path_factory.mktemp("tiny") / "world", "tiny", workers=1, progress=False)


@pytest.fixture(scope="module")
def items(world: WorldManifest) -> pd.DataFrame:
    return pd.read_parquet(world.items_parquet)


@pytest.fixture(scope="module")
def events(world: WorldManifest) -> pd.DataFrame:
    return pd.read_parquet(world.events_parquet)


def decoded_frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


# --- sizes -----------------------------------------------------------------------------------------------------


def test_world_sizes_match_their_purpose() -> None:
    assert set(WORLD_SIZES) == {"tiny", "small", "demo", "events", "large"}
    large = WORLD_SIZES["large"]
    assert large.n_sessions * large.slate_size >= 1_000_000
    # uniform durations: share of videos >= 10 s
    assert (large.max_duration_s - 10.0) / (large.max_duration_s - large.min_duration_s) >= 1 / 3
    assert all(s.sample_rate == 16000 and s.seed == 7 for s in WORLD_SIZES.values())
    assert world_spec("demo", seed=3).seed == 3
    with pytest.raises(ValueError, match="unknown world size 'huge'"):
        world_spec("huge")


# --- layout, determinism, reuse --------------------------------------------------------------------------------


def test_layout_and_columns(world: WorldManifest, items: pd.DataFrame, events: pd.DataFrame) -> None:
    spec = WORLD_SIZES["tiny"]
    assert sorted(p.name for p in world.videos_dir.glob("*.mp4")) == [f"{v}.mp4" for v in items["video_id"]]
    metadata = pd.read_csv(world.metadata_csv, keep_default_na=False, dtype=str)
    assert list(metadata.columns) == METADATA_COLUMNS
    assert set(metadata["is_product"]) <= {"true", "false"} and set(metadata["is_live_host"]) <= {"true", "false"}
    assert ((metadata["price"] == "") == (metadata["is_product"] == "false")).all()
    assert metadata["published_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    assert set(metadata["category"]) <= set(CATEGORY_NAMES)
    assert list(events.columns) == EVENT_COLUMNS
    assert str(events["ts"].dt.tz) == "UTC"
    assert events["user_id"].str.fullmatch(r"u\d+").all() and events["position"].dtype == np.int64
    assert set(events["surface"]) <= {"home", "related"}
    saved = json.loads(world.world_json.read_text())
    assert saved["spec"]["size"] == "tiny" and saved["counts"]["impressions"] == len(events)
    assert len(events) == spec.n_sessions * spec.slate_size == world.counts["impressions"]
    users = pd.read_parquet(world.users_parquet)
    assert len(users) == spec.n_users and users["user_id"].is_unique


def test_same_seed_is_deterministic_even_with_a_pool(world: WorldManifest, tmp_path: Path) -> None:
    again = generate_world(tmp_path / "again", "tiny", workers=2, progress=False)
    assert again.metadata_csv.read_bytes() == world.metadata_csv.read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(again.events_parquet), pd.read_parquet(world.events_parquet))
    pd.testing.assert_frame_equal(pd.read_parquet(again.items_parquet), pd.read_parquet(world.items_parquet))
    for video_id in ("v00000", "v00005"):
        np.testing.assert_array_equal(
            decoded_frames(again.video_path(video_id)), decoded_frames(world.video_path(video_id))
        )
        assert again.video_path(video_id).read_bytes() == world.video_path(video_id).read_bytes()


def test_another_seed_gives_another_world(world: WorldManifest, tmp_path: Path) -> None:
    other = generate_world(tmp_path / "other", "tiny", seed=8, workers=1, progress=False)
    assert other.spec.seed == 8
    assert other.metadata_csv.read_bytes() != world.metadata_csv.read_bytes()
    assert not pd.read_parquet(other.events_parquet).equals(pd.read_parquet(world.events_parquet))
    first, second = decoded_frames(other.video_path("v00000")), decoded_frames(world.video_path("v00000"))
    assert first.shape != second.shape or not np.array_equal(first, second)


def test_complete_world_is_reused_without_rewriting(world: WorldManifest) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in (world.world_json, world.events_parquet, world.video_path("v00000"))}
    again = generate_world(world.out_dir, "tiny", workers=1, progress=False)
    assert again.reused and again.counts == world.counts
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_cli_reuses_a_complete_world(world: WorldManifest, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--size", "tiny", "--out", str(world.out_dir), "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert report["reused"] is True and report["videos"] == 24


def test_a_world_with_another_spec_is_not_overwritten(world: WorldManifest) -> None:
    with pytest.raises(FileExistsError, match="another spec"):
        generate_world(world.out_dir, "tiny", seed=99, workers=1, progress=False)


def test_incomplete_world_is_regenerated(tmp_path: Path) -> None:
    (tmp_path / "w" / "videos").mkdir(parents=True)
    (tmp_path / "w" / "videos" / "v00000.mp4").write_bytes(b"truncated")
    manifest = generate_world(tmp_path / "w", "tiny", workers=1, progress=False)
    assert not manifest.reused and len(decoded_frames(manifest.video_path("v00000"))) == 16


# --- media ------------------------------------------------------------------------------------------------------


def test_videos_decode_as_ground_truth_claims(world: WorldManifest, items: pd.DataFrame) -> None:
    spec = WORLD_SIZES["tiny"]
    for row in items.itertuples(index=False):
        with av.open(str(world.video_path(row.video_id))) as container:
            video = container.streams.video[0]
            assert video.codec_context.name == "h264"
            assert (video.width, video.height) == (spec.width, spec.height)
            assert len(container.streams.audio) == int(row.has_audio)
            if row.has_audio:
                audio = container.streams.audio[0]
                assert audio.codec_context.name == "aac"
                assert audio.sample_rate == spec.sample_rate and audio.channels == 1
            assert container.duration / 1e6 == pytest.approx(row.duration_s, abs=0.2)
            n_frames = sum(1 for _ in container.decode(video=0))
        assert abs(n_frames - row.n_frames) <= 1
        assert row.n_frames == round(row.duration_s * spec.fps)


def _mean_hue(frames: np.ndarray) -> float:
    r, g, b = frames.reshape(-1, 3).mean(axis=0) / 255.0
    return colorsys.rgb_to_hsv(r, g, b)[0]


def test_pixels_and_sound_carry_the_hidden_attributes(world: WorldManifest, items: pd.DataFrame) -> None:
    hues = np.array([c.hue for c in CATEGORIES])
    for row in items.itertuples(index=False):
        hue = _mean_hue(decoded_frames(world.video_path(row.video_id)))
        circular = np.minimum(np.abs(hues - hue), 1 - np.abs(hues - hue))
        assert int(np.argmin(circular)) == row.hue_category_idx
        assert (row.hue_category_idx == row.category_idx) != row.hue_noisy
    with_sine = items[items["has_audio"] & (items["style"] == 0)].iloc[0]
    with av.open(str(world.video_path(with_sine.video_id))) as container:
        samples = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * 16000 / len(samples)
    assert peak_hz == pytest.approx(CATEGORIES[with_sine.category_idx].pitch_hz, rel=0.03)


def test_catalogue_noise_rates_at_demo_size() -> None:
    items = sample_items(WORLD_SIZES["demo"], np.random.default_rng(0))
    assert 0.10 < items["hue_noisy"].mean() < 0.20
    assert 0.72 < items["has_audio"].mean() < 0.88
    assert 0.18 < items["is_product"].mean() < 0.32
    assert items["price"].notna().eq(items["is_product"]).all()
    assert items["duration_s"].between(2.0, 6.0).all()
    cold = items["published_at"] >= pd.Timestamp(WORLD_SIZES["demo"].start)
    assert 0.12 < cold.mean() < 0.18


# --- events -----------------------------------------------------------------------------------------------------


def test_event_invariants(events: pd.DataFrame, items: pd.DataFrame) -> None:
    by_video = items.set_index("video_id")
    duration = by_video["duration_s"].loc[events["video_id"]].to_numpy()
    product = by_video["is_product"].loc[events["video_id"]].to_numpy()
    assert (events["clicked"] | (events["watch_s"] == 0)).all()
    assert (events.loc[events["clicked"], "watch_s"] > 0).all()
    assert (events["watch_s"].to_numpy() <= duration).all()
    assert (~events["converted"] | (events["clicked"] & product)).all()
    assert events["propensity"].between(0, 1, inclusive="right").all() and (events["propensity"] > 0).all()
    assert events["ts"].is_monotonic_increasing and events["event_id"].is_unique
    published = by_video["published_at"].loc[events["video_id"]].to_numpy()
    assert (events["ts"].to_numpy() > published).all()
    slates = events.groupby("session_id")
    size = WORLD_SIZES["tiny"].slate_size
    assert (slates["video_id"].nunique() == size).all()
    assert all(sorted(p) == list(range(size)) for p in slates["position"].apply(list))
    assert (slates["user_id"].nunique() == 1).all()
    assert 0.03 < events["clicked"].mean() < 0.25
    assert events.groupby("position")["clicked"].mean().iloc[:2].mean() > events["clicked"].mean()


def test_oracle_explains_the_clicks(world: WorldManifest, events: pd.DataFrame) -> None:
    oracle = Oracle.load(world.out_dir)
    users, videos = events["user_id"].to_numpy(), events["video_id"].to_numpy()
    prob = oracle.click_prob(users, videos, events["position"].to_numpy())
    clicked = events["clicked"].to_numpy()
    assert np.corrcoef(prob, clicked)[0, 1] > 0.15
    assert prob.mean() == pytest.approx(clicked.mean(), abs=0.03)
    relevance = oracle.click_prob(users, videos)
    assert (relevance >= prob).all()
    np.testing.assert_allclose(relevance[events["position"] == 0], prob[events["position"] == 0])
    watched = events[events["clicked"]]
    expected = oracle.watch_s_given_click(watched["user_id"], watched["video_id"])
    assert np.corrcoef(expected, watched["watch_s"])[0, 1] > 0.3
    conv = oracle.conversion_prob(users, videos)
    is_product = oracle.items.set_index("video_id")["is_product"].loc[videos].to_numpy()
    assert (conv[~is_product] == 0).all() and (conv[is_product] > 0).all()
    np.testing.assert_allclose(
        oracle.expected_watch_s(users[:5], videos[:5], 0),
        oracle.click_prob(users[:5], videos[:5], 0) * oracle.watch_s_given_click(users[:5], videos[:5]),
    )


def test_oracle_broadcasts_and_rejects_unknown_ids(world: WorldManifest) -> None:
    oracle = Oracle.load(world.out_dir)
    user_ids = oracle.users["user_id"].to_numpy()
    video_ids = oracle.items["video_id"].to_numpy()
    matrix = oracle.utility(user_ids[:, None], video_ids[None, :])
    assert matrix.shape == (30, 24)
    assert matrix[3, 5] == pytest.approx(oracle.utility([user_ids[3]], [video_ids[5]])[0])
    # Knowing the hidden attributes ranks far better than chance.
    relevance = oracle.click_prob(user_ids[:, None], video_ids[None, :])
    assert np.sort(relevance, axis=1)[:, -5:].mean() > 2 * relevance.mean()
    with pytest.raises(KeyError, match="unknown video_id"):
        oracle.utility(["u00000"], ["nope"])
    with pytest.raises(FileNotFoundError, match="generate the world first"):
        Oracle.load(world.out_dir / "missing")


def test_logging_policy_propensities_match_its_sampling() -> None:
    spec = WORLD_SIZES["tiny"]
    items, users = sample_items(spec, np.random.default_rng(1)), build_users(spec, np.random.default_rng(2))
    policy = LoggingPolicy(items, users, BehaviourParams(), np.random.default_rng(3))
    n = 20_000
    ts = np.full(n, to_ns(items["published_at"]).max() + 1)  # every item available
    ui = np.zeros(n, dtype=np.int64)
    slates = policy.sample(ui, ts, spec.slate_size, np.random.default_rng(4))
    assert (np.sort(slates.items, axis=1)[:, 1:] != np.sort(slates.items, axis=1)[:, :-1]).all()
    n_avail, group_weight, _ = policy.normalisers(ui[:1], ts[:1])
    pi = policy.item_prob(ui[:1], np.arange(len(items))[None, :], n_avail, group_weight)[0]
    assert pi.sum() == pytest.approx(1.0)
    # slot 0 propensity is pi itself, and the slot-0 choices follow it
    np.testing.assert_allclose(slates.propensity[:, 0], pi[slates.items[:, 0]])
    empirical = np.bincount(slates.items[:, 0], minlength=len(items)) / n
    assert np.abs(empirical - pi).max() < 0.01
    # slot 1 given slot 0 = a: pi(b) / (1 - pi(a))
    a = int(np.argmax(pi))
    rows = slates.items[:, 0] == a
    expected = pi / (1 - pi[a])
    expected[a] = 0
    empirical = np.bincount(slates.items[rows, 1], minlength=len(items)) / rows.sum()
    assert np.abs(empirical - expected).max() < 0.03
    np.testing.assert_allclose(slates.propensity[rows, 1], expected[slates.items[rows, 1]])
