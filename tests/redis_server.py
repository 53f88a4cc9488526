"""A real `redis-server` for tests: on 127.0.0.1 and a free port, no persistence, stopped by the PID the
test started. Celery's broker and result backend here (tests/assets/test_celery_broker.py); reusable for
anything else that needs Redis (the `redis_server` fixture in tests/conftest.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "redis-server is not installed: `apt-get install -y redis-server` (Debian/Ubuntu; .ci/run "
    "installs it), or skip the tests that need it with `-m 'not broker'`"
)


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    pid: int
    log: Path

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def running_redis(directory: Path, start_timeout_s: float = 20.0, port: int | None = None) -> Iterator[RedisServer]:
    """Start redis-server with its files and log in ``directory`` (on ``port``, else a free one: a restart
    test reuses the port); stop it (SIGTERM, then SIGKILL) on exit."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(INSTALL_HINT)
    directory.mkdir(parents=True, exist_ok=True)
    host, log = "127.0.0.1", directory / "redis.log"
    port = port or free_port()
    process = subprocess.Popen(
        [
            executable,
            "--bind",
            host,
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "yes",
            "--logfile",
            str(log),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    server = RedisServer(host, port, process.pid, log)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not server.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not answer on {host}:{port} in {start_timeout_s:.0f} s:\n{tail}")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
