"""The real web server (granian, as `manage.py start` runs it) serving config.wsgi against the bench
database, on a free loopback port."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from billing.management.commands.start import web_server_command
from tests.benchmarks.database import ROOT, BenchDatabase, BenchmarkError


@dataclass(frozen=True)
class ServerConfig:
    workers: int
    threads: int

    @property
    def label(self) -> str:
        return f"granian {self.workers}x{self.threads}"

    @property
    def concurrency(self) -> int:
        return self.workers * self.threads


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`with Server(db, config) as server:` starts the web server, waits until it answers, stops it."""

    def __init__(self, db: BenchDatabase, config: ServerConfig) -> None:
        self.db = db
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def __enter__(self) -> Server:
        # As `manage.py start` runs it, without the access log (a line a request: the load's, not the app's).
        cmd = web_server_command("127.0.0.1", self.port, self.config.workers, self.config.threads, access_log=False)
        cmd += ["--log-level", "warning"]
        # The server's own log goes to a file (shown if it fails), not between the progress lines.
        self.log = tempfile.NamedTemporaryFile(prefix="bench-web-", suffix=".log", delete=False)
        # Connections live for the whole run (not recycled each minute): the CPU meter reads the
        # database's per-connection CPU, which a recycled connection would take with it.
        env = self.db.child_env(DATABASE_CONN_MAX_AGE="3600")
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise BenchmarkError(f"{self.config.label} exited with {self.process.returncode}:\n{tail}")
            try:
                # No key: a 401 means Django is up and routing.
                if httpx.get(f"{self.url}/api/v1/customers", timeout=2).status_code in {200, 401, 403}:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise BenchmarkError(f"{self.config.label} did not answer within 60 s")

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
