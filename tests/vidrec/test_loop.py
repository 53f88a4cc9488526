"""The loop's world, users and report: held-back videos leave the starting catalogue and its events,
every policy is answered with the same random numbers, and the day table counts what it should."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vidrec.loop.report import daily_table, ratio_interval, snips_within_share, uploads_exposure_over_oracle
from vidrec.loop.users import answer, day_sessions, oracle_slate
from vidrec.loop.world import prepare_loop_world, upload_form
from vidrec.sources import read_metadata
from vidrec.world.generate import generate_world
from vidrec.world.oracle import Oracle


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-world")
    generate_world(directory, size="tiny", progress=False)
    return directory


def test_the_newest_videos_are_held_back_with_their_events(world: Path, tmp_path: Path) -> None:
    loop = prepare_loop_world(world, tmp_path / "loop", days=2, uploads_per_day=3)
    kept = set(read_metadata(loop.data)["video_id"])
    arriving = [set(day["video_id"]) for day in loop.arrivals]
    everything = set(read_metadata(world)["video_id"])
    assert len(arriving) == 2 and all(len(a) == 3 for a in arriving)
    assert kept | arriving[0] | arriving[1] == everything and not kept & (arriving[0] | arriving[1])
    newest_kept = read_metadata(loop.data)["published_at"].max()
    assert all(
        read_metadata(world).set_index("video_id").loc[list(a), "published_at"].min() >= newest_kept for a in arriving
    )
    events = pd.read_parquet(loop.data / "events.parquet")
    assert set(events["video_id"]) <= kept and len(events) > 0
    assert {p.stem for p in (loop.data / "videos").iterdir()} <= kept
    form = upload_form(loop.arrivals[0].iloc[0])
    assert form["title"] and form["category"] and form["creator_id"] and form["is_product"] in {"true", "false"}
    with pytest.raises(ValueError, match="keep at least half"):
        prepare_loop_world(world, tmp_path / "too-many", days=10, uploads_per_day=5)


def test_policies_are_answered_with_common_random_numbers(world: Path) -> None:
    oracle = Oracle.load(world)
    sessions = day_sessions(oracle, day=1, n=200, slots=10, seed=3)
    again = day_sessions(oracle, day=1, n=200, slots=10, seed=3)
    assert [s.user_id for s in sessions] == [s.user_id for s in again]
    assert [s.user_id for s in day_sessions(oracle, day=2, n=200, slots=10, seed=3)] != [s.user_id for s in sessions]
    videos = oracle.items["video_id"].tolist()
    best = oracle_slate(oracle, sessions[0].user_id, videos, 10)
    value = oracle.expected_watch_s([sessions[0].user_id] * len(videos), videos)
    assert best[0] == videos[int(np.argmax(value))]
    # The same slate gets the same answer; the oracle's slate is clicked at least as often on average.
    one = answer(oracle, sessions[0], best)
    assert (one.clicked == answer(oracle, sessions[0], best).clicked).all()
    assert (one.watch_s[~one.clicked] == 0).all() and not (one.converted & ~one.clicked).any()
    worst = list(reversed(oracle_slate(oracle, sessions[0].user_id, videos, len(videos))))[:10]
    clicks = {"best": 0, "worst": 0}
    for session in sessions:
        clicks["best"] += answer(oracle, session, oracle_slate(oracle, session.user_id, videos, 10)).clicked.sum()
        clicks["worst"] += answer(oracle, session, worst).clicked.sum()
    assert clicks["best"] > clicks["worst"]


def test_the_day_table_and_the_ratios() -> None:
    rows = []
    for policy, clicked in (("vidrec", [1, 1, 0, 0]), ("frozen", [1, 0, 0, 0]), ("oracle", [1, 1, 1, 0])):
        for session in range(2):
            for position, click in enumerate(clicked):
                upload = 0 if position == 3 and policy != "frozen" else None
                rows.append(
                    dict(
                        day=1,
                        policy=policy,
                        session=session,
                        position=position,
                        video_id=f"v{position}",
                        upload_day=upload,
                        clicked=bool(click),
                        watch_s=float(click),
                        converted=False,
                    )
                )
    shown = pd.DataFrame(rows)
    table = daily_table(shown).set_index("policy")
    assert table.loc["vidrec", "ctr_at_10"] == 0.5 and table.loc["frozen", "ctr_at_10"] == 0.25
    assert table.loc["vidrec", "upload_share"] == 0.25 and table.loc["frozen", "upload_share"] == 0
    ratio, low, high = ratio_interval(shown, 1, "vidrec", "frozen", seed=0)
    assert ratio == 2.0 and low <= ratio <= high
    assert uploads_exposure_over_oracle(shown) == 1.0
    assert (
        snips_within_share(
            [
                {"snips_low": 0.1, "snips_high": 0.3, "ctr_at_10": 0.2},
                {"snips_low": 0.1, "snips_high": 0.3, "ctr_at_10": 0.4},
                {"snips_low": None},
            ]
        )
        == 0.5
    )
