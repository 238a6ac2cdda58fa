"""A real gunicorn serving config.wsgi against the bench database, on a free loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.benchmarks.database import ROOT, BenchDatabase, BenchmarkError


@dataclass(frozen=True)
class ServerConfig:
    worker_class: str  # "sync" or "gthread"
    workers: int
    threads: int = 1

    @property
    def label(self) -> str:
        if self.worker_class == "gthread":
            return f"gthread {self.workers}x{self.threads}"
        return f"sync {self.workers}"

    @property
    def concurrency(self) -> int:
        return self.workers * self.threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`with Server(db, config) as server:` starts gunicorn, waits until it answers, stops it."""

    def __init__(self, db: BenchDatabase, config: ServerConfig) -> None:
        self.db = db
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def __enter__(self) -> Server:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.config.workers),
            "--worker-class",
            self.config.worker_class,
            "--threads",
            str(self.config.threads),
            "--backlog",
            "1024",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ]
        # The server's own log goes to a file (shown if it fails), not between the progress lines.
        self.log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
        # Connections live for the whole run (not recycled each minute): the CPU meter reads the
        # database's per-connection CPU, which a recycled connection would take with it.
        env = self.db.child_env(DATABASE_CONN_MAX_AGE="3600")
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise BenchmarkError(f"gunicorn ({self.config.label}) exited with {self.process.returncode}:\n{tail}")
            try:
                # No key: a 401 means Django is up and routing.
                if httpx.get(f"{self.url}/api/v1/customers", timeout=2).status_code in {200, 401, 403}:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchmarkError(f"gunicorn ({self.config.label}) did not answer within 60 s")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self._remove_log()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._remove_log()

    def _remove_log(self) -> None:
        if self.log is not None:
            self.log.close()
            Path(self.log.name).unlink(missing_ok=True)
            self.log = None
