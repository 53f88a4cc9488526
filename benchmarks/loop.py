"""The closed loop, simulated for several days against the real service and the real pipeline.

    make loop DAYS=7                      # demo world, writes benchmarks/results/loop.json
    python benchmarks/loop.py --world tiny --days 2 --sessions 80 --quick --out /tmp/loop.json

Day 0 trains and promotes a model on the world's logged history, with the newest videos held back
(``vidrec/loop/world.py``). Then each day:
  1. the day's held-back videos arrive through ``POST /videos`` (multipart, as a shop would upload them);
  2. the world's users (drawn by activity; ``vidrec/loop/users.py``) ask ``/recommend`` over HTTP and
     answer the slate from the world's own behaviour model; their clicks, watch time and conversions go
     back through ``/events`` with the ``request_id``;
  3. the same sessions are shown, as shadow slates, the frozen day-0 model's answer (in-process, same
     code, never retrained, uploads added cold) and the oracle's, and answered with the same random
     numbers (common random numbers);
  4. at night the pipeline retrains on what landed (impressions joined to feedback, uploads as catalogue),
     gates, and promotes or keeps the champion; the service hot-swaps within its poll interval.
The report (``vidrec/loop/report.py``) prints a per-day table, saves a plot under the reports folder,
and writes the JSON ``../shared/BENCHMARKS.md`` names. Sessions, users, uploads and answers are fixed
by ``--seed``, and so are the service's exploration draws (``VIDREC_SIM_NONCE_SEED``, set by the loop: the
service then serves from one worker, the loop's requests being sequential anyway); training's thread timing
is not, so two runs agree on the inputs and the slates of the same model exactly, and on the retrained
models up to that noise. Users tire of what they watched: a video a user clicked during the loop is clicked
again at ``--rewatch-factor`` of its probability, on each policy's own record (``vidrec/loop/users.py``).
Every night also judges SNIPS: today's logs estimate tomorrow's model (``vidrec/loop/judge.py``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from _common import write_result  # noqa: E402

from vidrec.config import DEMO_PSEUDONYM_KEY, Paths, tool_env  # noqa: E402
from vidrec.impressions import NONCE_SEED_ENV_VAR  # noqa: E402
from vidrec.loop.users import REWATCH_FACTOR  # noqa: E402

log = logging.getLogger("benchmarks.loop")
K = 10


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", default="demo", help="tiny | demo: the generated world (data/<world>)")
    parser.add_argument("--data", type=Path, default=None, help="a generated world directory (default data/<world>)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--sessions", type=int, default=600, help="sessions per day")
    parser.add_argument("--uploads-per-day", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rewatch-factor",
        type=float,
        default=REWATCH_FACTOR,
        help="satiation: a video the user already clicked during the loop is clicked again with its click "
        "probability times this factor (vidrec/loop/users.py)",
    )
    parser.add_argument("--policy", default="", help="promotion policy file (default: the versioned gate)")
    parser.add_argument("--quick", action="store_true", help="few training epochs (tests)")
    parser.add_argument(
        "--ab-last-day",
        action="store_true",
        help="on the last night, serve the candidate to a sticky 50%% beside production (live A/B) instead of "
        "promoting it, and compare the day's per-arm CTR with the simulated A/B's ordering",
    )
    parser.add_argument("--root", type=Path, default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = _args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    root = args.root or Path(tempfile.mkdtemp(prefix="vidrec-loop-"))
    home = root / "home"
    key = os.environ.get("VIDREC_PSEUDONYM_KEY") or DEMO_PSEUDONYM_KEY
    # Before BentoML and Dagster are imported: they read their homes once.
    # The seeded nonce stream (vidrec/impressions.py) makes the service's exploration draws, and the frozen
    # shadow's, repeat from run to run; the service then answers from one worker.
    sim = {"VIDREC_PSEUDONYM_KEY": key, "VIDREC_MODEL_POLL_S": "0.5", NONCE_SEED_ENV_VAR: f"loop-{args.seed}"}
    os.environ.update({**sim, **tool_env(home, sim)})  # tool_env returns only the tools' variables
    Paths(home).ensure()
    from loop_driver import run_loop  # noqa: PLC0415  (imports bentoml/dagster under the environment above)

    source = args.data or REPO / "data" / args.world
    if not (source / "world.json").exists():
        from vidrec.world.generate import generate_world

        log.info("generating the %s world in %s", args.world, source)
        generate_world(source, size=args.world, progress=False)
    result = run_loop(args, source, root, key)
    write_result("loop", result, args.out, args.quick)
    return result


if __name__ == "__main__":
    main()
