"""How each pipeline asset's cost grows with the world: the main job materialised on worlds of growing
size, per step wall time, CPU time, peak RSS and rows out, and each asset's growth exponent (the slope of
log wall time against log of its driving size: videos for the media assets, impressions for the rest).

    nice -n 10 .venv/bin/python benchmarks/scale.py [--sizes tiny,small,demo] [--quick] [--out PATH]

Each world is generated (vidrec.world.generate) and the pipeline (assets.jobs.PIPELINE) runs in-process
on a fresh state root with the default training budgets, so the numbers are one cold nightly run each.
A thread samples the process's RSS and CPU time every 0.1 s; a step's CPU time is the CPU used between its
STEP_START and its end, its peak RSS the largest sample in that window (in-process steps run one at a time,
so each window holds one step). Rows out come from the materialisation metadata (dagster/row_count or
row_count). The results go under ``assets`` in benchmarks/results/scale.json (evaluate.py --out-of-core
owns ``eval_100m``); benchmarks/scale_report.py fits, extrapolates to the large world and writes docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import write_result  # noqa: E402
from benchmarks.evaluate_ooc import merge_result  # noqa: E402
from vidrec.config import Paths, tool_env  # noqa: E402

KEY = "benchmark-key"
GB = 2**30
MEDIA_GROUPS = {"media", "catalogue"}  # assets whose work follows the catalogue, not the event log


class Sampler:
    """(time, rss bytes, cpu seconds) of this process every ``every_s`` seconds, on a thread."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.samples: list[tuple[float, int, float]] = []
        self._stop, self.every_s = threading.Event(), every_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            cpu = proc.cpu_times()
            self.samples.append((time.time(), proc.memory_info().rss, cpu.user + cpu.system))
            self._stop.wait(self.every_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start: float, end: float) -> tuple[float, float]:
        """(CPU seconds, peak RSS GB) between two wall-clock times (the nearest samples around them)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        before = [s for s in self.samples if s[0] <= start][-1:] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= end][:1] or self.samples[-1:]
        cpu = after[0][2] - before[0][2]
        peak = max(s[1] for s in inside + before + after)
        return cpu, peak / GB


def run_world(size: str, base: Path, quick: bool) -> dict:
    """Generate the ``size`` world and materialise the pipeline on it; per-step measurements."""
    import dagster as dg

    from assets.definitions import all_assets, all_checks, build_resources, defs
    from assets.jobs import PIPELINE
    from assets.training import TrainingSettings
    from vidrec.world.generate import generate_world

    data = base / "worlds" / size
    started = time.perf_counter()
    generate_world(data, size=size, progress=False)
    generate_s = time.perf_counter() - started
    counts = json.loads((data / "world.json").read_text())["counts"]
    videos = len(list((data / "videos").iterdir()))
    root = base / "roots" / size
    Paths(root).ensure()
    settings = TrainingSettings(encoder_epochs=1, ranker_epochs=1, retrieval_epochs=1) if quick else TrainingSettings()
    groups = {k.to_user_string(): g for a in all_assets for k, g in a.group_names_by_key.items()}
    graph = defs.resolve_asset_graph()
    with dg.DagsterInstance.ephemeral() as instance, Sampler() as sampler:
        started = time.perf_counter()
        result = dg.materialize(
            [*all_assets, *all_checks],
            selection=PIPELINE,
            raise_on_error=False,
            instance=instance,
            resources=build_resources(root, data, KEY, training_settings=settings),
        )
        wall = time.perf_counter() - started
        records = instance.all_logs(result.run_id)
    steps: dict[str, dict] = {}
    for record in records:
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {"assets": [], "rows": None})
        kind = event.event_type_value
        if kind == "STEP_START":
            step["start"] = record.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            step["end"], step["outcome"] = record.timestamp, kind.removeprefix("STEP_").lower()
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            step["assets"].append(materialization.asset_key.to_user_string())
            meta = materialization.metadata
            for name in ("dagster/row_count", "row_count"):
                if name in meta:
                    step["rows"] = int(meta[name].value)
    measured = {}
    for name, step in steps.items():
        if "start" not in step or "end" not in step:
            continue
        cpu, peak = sampler.window(step["start"], step["end"])
        asset = step["assets"][0] if step["assets"] else name
        group = groups.get(asset) or next((groups[a] for a in groups if name.startswith(a)), "checks")
        measured[name] = {
            "assets": step["assets"],
            "group": group,
            "driver": "videos" if group in MEDIA_GROUPS else "impressions",
            "wall_s": step["end"] - step["start"],
            "cpu_s": cpu,
            "peak_rss_gb": peak,
            "rows_out": step["rows"],
            "outcome": step.get("outcome"),
        }
    del graph
    return {
        "size": size,
        "videos": videos,
        "impressions": counts["impressions"],
        "users": counts.get("users"),
        "sessions": counts.get("sessions"),
        "generate_s": generate_s,
        "pipeline_wall_s": wall,
        "pipeline_peak_rss_gb": max(s[1] for s in sampler.samples) / GB,
        "success": result.success,
        "steps": measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small,demo", help="world sizes, smallest first")
    parser.add_argument("--quick", action="store_true", help="tiny and small worlds, one epoch per model")
    parser.add_argument("--out", default=None, help="default benchmarks/results/scale.json")
    parser.add_argument("--base", default=None, help="scratch folder for worlds and state (default a temp dir)")
    parser.add_argument("--from-raw", default=None, help="redo the analysis from a saved worlds.json, no runs")
    args = parser.parse_args()
    if args.from_raw:
        from benchmarks.scale_report import summarise

        path = Path(args.out) if args.out else REPO / "benchmarks" / "results" / "scale.json"
        raw = json.loads(Path(args.from_raw).read_text())
        print(f"-> {write_result('scale', merge_result(path, summarise(raw)), path, args.quick)}")
        return
    sizes = ["tiny", "small"] if args.quick else args.sizes.split(",")
    base = Path(args.base or tempfile.mkdtemp(prefix="vidrec-scale-"))
    os.environ.update(tool_env(base / "setup", {"VIDREC_PSEUDONYM_KEY": KEY}))  # before Dagster is imported
    Paths(base / "setup").ensure()
    worlds = []
    for size in sizes:
        worlds.append(run_world(size, base, args.quick))
        w = worlds[-1]
        (base / "worlds.json").write_text(json.dumps(worlds, indent=1))  # raw, so the analysis can be redone
        print(f"[{time.strftime('%H:%M:%S')}] {size}: {w['videos']} videos, {w['impressions']} impressions, "
              f"pipeline {w['pipeline_wall_s']:.1f} s, peak {w['pipeline_peak_rss_gb']:.2f} GB, ok={w['success']}",
              flush=True)  # fmt: skip
    from benchmarks.scale_report import summarise

    path = Path(args.out) if args.out else REPO / "benchmarks" / "results" / "scale.json"
    payload = summarise(worlds)
    written = write_result("scale", merge_result(path, payload), path, args.quick)
    print(f"-> {written}")


if __name__ == "__main__":
    main()
