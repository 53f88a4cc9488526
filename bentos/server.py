"""Starting and stopping a local ``bentoml serve`` process (used by the demo and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
OTEL_SDK_DISABLED = "OTEL_SDK_DISABLED"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(env: dict[str, str]) -> dict[str, str]:
    """The served process's environment: ours plus ``env``, with OpenTelemetry off unless either sets it.
    BentoML builds spans for every request (5 per /recommend, ~0.1 ms) even with no exporter configured,
    and drops them unread; set OTEL_SDK_DISABLED=false with a tracing exporter to trace."""
    merged = {**os.environ, **env}
    merged.setdefault(OTEL_SDK_DISABLED, "true")
    return merged


def start(port: int, env: dict[str, str], timeout_s: float = 120.0, log_path: Path | None = None) -> subprocess.Popen:
    """Serve ``bentos.service:Recommender`` on 127.0.0.1:``port`` and wait until /readyz answers."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "bentos.service:Recommender",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=child_env(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() reaches the workers too
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with code {process.returncode}{_log_tail(log_path)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(process)
    raise TimeoutError(f"bentoml serve was not ready on port {port} after {timeout_s:.0f} s{_log_tail(log_path)}")


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    """The end of the server's log, for an error message (a worker that fails to start is restarted by
    BentoML's arbiter, so the process stays alive and only its log says why it never became ready)."""
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"; the end of {log_path}:\n" + "\n".join(tail)


def stop(process: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Stop the server we started, by its process group id (never by name)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
