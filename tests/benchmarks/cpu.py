"""CPU time per request, read from /proc (Linux), to tell cost from contention.

Throughput on a shared 2-core machine depends on what else runs there. The CPU seconds the
server's workers and the bench database's backends spend per request do not (much): they say
what a request costs, and so what a quiet machine could serve. Where /proc is missing, the
meter reports nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.database import BenchDatabase

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a process, or None if it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def children_cpu(parent: int) -> dict[int, float]:
    """CPU seconds of each child process of `parent` (gunicorn's workers)."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == parent:
                found[int(entry.name)] = stat[1]
    return found


def backends_cpu(db: BenchDatabase) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to the bench database (same host only)."""
    with db.connect(autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
    found = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            found[pid] = stat[1]
    return found


def system_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(x) for x in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / TICK, sum(fields) / TICK


class CpuMeter:
    """Start before a load, stop after it: CPU seconds of the server, the database, the machine."""

    def __init__(self, db: BenchDatabase, server_pid: int) -> None:
        self.db = db
        self.server_pid = server_pid
        self.available = (PROC / "stat").exists()

    def start(self) -> None:
        if not self.available:
            return
        self.started = time.monotonic()
        self.server = children_cpu(self.server_pid)
        self.backends = backends_cpu(self.db)
        self.machine = system_busy()

    def stop(self) -> dict[str, Any]:
        if not self.available:
            return {}
        server = children_cpu(self.server_pid)
        backends = backends_cpu(self.db)
        busy, total = system_busy()
        # A process that started during the load counts whole; one that ended is lost (rare:
        # workers and their connections live for the whole run).
        server_s = sum(cpu - self.server.get(pid, 0.0) for pid, cpu in server.items())
        db_s = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in backends.items())
        wall = time.monotonic() - self.started
        return {
            "wall_s": round(wall, 2),
            "server_cpu_s": round(server_s, 2),
            "db_cpu_s": round(db_s, 2),
            "machine_busy_s": round(busy - self.machine[0], 2),
            "machine_capacity_s": round(total - self.machine[1], 2),
        }


def per_request(cpu: dict[str, Any], requests: int, client_cpu_s: float, batch: int = 1) -> dict[str, Any]:
    """CPU milliseconds per request, and what the server could serve on this machine's cores
    if nothing else ran (the load generator included): cores / (app + database CPU per request)."""
    if not cpu or not requests:
        return {}
    app = cpu["server_cpu_s"] * 1000 / requests
    db = cpu["db_cpu_s"] * 1000 / requests
    client = client_cpu_s * 1000 / requests
    others = max(0.0, cpu["machine_busy_s"] - cpu["server_cpu_s"] - cpu["db_cpu_s"] - client_cpu_s)
    cores = os.cpu_count() or 1
    projected = cores * 1000 / (app + db) if app + db else 0.0
    return {
        "app_cpu_ms_per_request": round(app, 3),
        "db_cpu_ms_per_request": round(db, 3),
        "client_cpu_ms_per_request": round(client, 3),
        "other_processes_cpu_share": round(others / cpu["machine_capacity_s"], 3) if cpu["machine_capacity_s"] else 0,
        "projected_req_per_s_quiet": round(projected, 1),
        "projected_events_per_s_quiet": round(projected * batch, 1),
    }
