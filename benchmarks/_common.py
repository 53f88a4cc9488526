"""Shared by the benchmark scripts: the machine description, medians, and the result file."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def machine_info() -> dict:
    """Cores, CPU model, RAM and GPU (if torch sees one), so results stay comparable."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        ram_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "ram_gb": ram_gb, "gpu": gpu, "python": platform.python_version()}


def write_result(name: str, payload: dict, out: Path | str | None, quick: bool) -> Path:
    """Write ``payload`` plus machine, when and quick to ``out`` (default benchmarks/results/NAME.json)."""
    path = Path(out) if out else Path(__file__).resolve().parent / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": machine_info(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        **payload,
    }
    path.write_text(json.dumps(record, indent=2, default=float) + "\n")
    return path
