"""HTTP load runs against the bench server: one load-generator process each (loadgen), with the
CPU the server's workers and the database's backends spent on it (cpu)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from typing import Any

from tests.benchmarks.context import Bench
from tests.benchmarks.cpu import CpuMeter, per_request
from tests.benchmarks.database import ROOT, BenchmarkError
from tests.benchmarks.server import Server


class LoadRun:
    """One load-generator process; `.result()` waits for (or, with stop=True, ends) it."""

    def __init__(
        self,
        bench: Bench,
        server: Server,
        *,
        mode: str,
        customer: str,
        threads: int,
        duration: float,
        batch: int = 1,
        max_requests: int = 0,
        warmup: float = 1.0,
    ) -> None:
        self.prefix = f"{mode}{batch}-{uuid.uuid4().hex[:8]}"
        cmd = [
            sys.executable,
            "-m",
            "tests.benchmarks.loadgen",
            "--url",
            server.url,
            "--key",
            bench.api_key,
            "--mode",
            mode,
            "--customer",
            customer,
            "--threads",
            str(threads),
            "--duration",
            str(duration),
            "--batch",
            str(batch),
            "--max-requests",
            str(max_requests),
            "--warmup",
            str(warmup),
            "--prefix",
            self.prefix,
        ]
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, env=bench.db.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.timeout = duration + warmup + 180

    def result(self, *, stop: bool = False) -> dict[str, Any]:
        if stop and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        if self.process.returncode != 0 or not out.strip():
            raise BenchmarkError(f"load generator failed ({self.process.returncode}): {err[-2000:]}")
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result["prefix"] = self.prefix
        return result


def load(bench: Bench, server: Server, *, meter: bool = True, **kwargs: Any) -> dict[str, Any]:
    """One load run, with the CPU the server and the database spent on it (unless another load
    runs beside it: its CPU would be counted too)."""
    assert server.process is not None
    cpu_meter = CpuMeter(bench.db, server.process.pid)
    if meter:
        cpu_meter.start()
    result = LoadRun(bench, server, **kwargs).result()
    if meter:
        cpu = cpu_meter.stop()
        result["cpu"] = {**cpu, **per_request(cpu, result["requests_total"], result["cpu_s"], result["batch"])}
    return result


def describe(result: dict[str, Any]) -> str:
    rate = f"{result['events_per_s']:,.0f} events/s" if result["batch"] > 1 else f"{result['req_per_s']:,.0f} req/s"
    lat = result["latency_ms"]
    errors = f", {result['errors']} errors ({result['first_error'][:120]})" if result["errors"] else ""
    text = f"{rate} (p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, {result['requests']} requests{errors})"
    cpu = result.get("cpu") or {}
    if "app_cpu_ms_per_request" in cpu:
        text += (
            f"\n             CPU per request: app {cpu['app_cpu_ms_per_request']:.2f} ms, database "
            f"{cpu['db_cpu_ms_per_request']:.2f} ms, client {cpu['client_cpu_ms_per_request']:.2f} ms; other "
            f"processes took {cpu['other_processes_cpu_share']:.0%} of the machine"
        )
    return text
