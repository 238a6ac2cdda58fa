"""CPU time per request, read from /proc (Linux), to tell cost from contention.

Throughput on a shared 2-core machine depends on what else runs there. The CPU seconds the
server's workers and the bench database's backends spend per request do not (much): they say
what a request costs, and so what a quiet machine could serve. Where /proc is missing, the
meter reports nothing.
"""

from __future__ import annotations

import os
import threading
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


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a running process (None if gone or not on this host)."""
    stat = _stat(pid)
    return None if stat is None else stat[1]


def children_cpu(parent: int) -> dict[int, float]:
    """CPU seconds of each child process of `parent` (the web server's workers)."""
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


def _comm(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def postmaster_pid(db: BenchDatabase) -> int | None:
    """The PostgreSQL server's main process (the parent of every backend), if it runs on this
    host and /proc shows it; else None (and no database CPU is reported)."""
    if not (PROC / "stat").exists():
        return None
    with db.connect(autocommit=True) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None  # a SELECT without FROM returns one row
    backend = _stat(int(row[0]))
    # Another host's pid may exist here too, as some other process: both must be PostgreSQL's.
    if backend is None or _comm(int(row[0])) != "postgres" or _comm(backend[0]) not in {"postgres", "postmaster"}:
        return None
    return backend[0]


def reaped_children_cpu(pid: int) -> float | None:
    """CPU seconds of the reaped children of `pid` (cutime + cstime, fields 16-17 of its stat).

    The postmaster reaps every backend, parallel worker and autovacuum worker when it exits, so
    the difference of two readings is the CPU of the database processes that ended in between:
    backends exit before anyone could read their own counters."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / TICK


def descendants(pid: int) -> list[int]:
    """The children of `pid`, their children, … (the close command's forked workers)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = list((PROC / str(parent) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except (OSError, ValueError):
                kids = list(children_cpu(parent)) if task.name == str(parent) else []
            found.extend(kids)
            queue.extend(kids)
    return found


class BackendSampler:
    """Reads, every `every` seconds, the CPU of the database processes serving the bench database
    (the postmaster's children whose process title names it, and the parallel workers of those),
    and at the end waits until they are gone: the postmaster then has reaped them and counted
    their CPU in its own counters.

    The sum of the last readings is a lower bound of their CPU (what a process spent after its
    last reading is missed: at most `every` seconds each). It is the cross-check of the
    postmaster's figure, which is exact on a machine of its own but counts every database
    process that ended meanwhile, the other databases' too.
    """

    def __init__(self, postmaster: int, dbname: str, every: float = 0.02) -> None:
        self.postmaster = postmaster
        self.dbname = dbname
        self.children_file = PROC / str(postmaster) / "task" / str(postmaster) / "children"
        # Without the children file the fallback scans /proc: slower, so less often.
        self.every = every if self.children_file.exists() else max(every, 0.25)
        self.ours: dict[int, bool] = {}
        self.seen: dict[int, float] = {}
        self.baseline: dict[int, float] = {}
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    def _children(self) -> list[int]:
        try:
            return [int(pid) for pid in self.children_file.read_text().split()]
        except (OSError, ValueError):
            return list(children_cpu(self.postmaster))

    def _is_ours(self, pid: int) -> bool | None:
        """Whether the process serves the bench database; None while it cannot tell yet (a
        backend just forked still bears the postmaster's title)."""
        if pid in self.ours:
            return self.ours[pid]
        try:
            title = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return None
        if not title.startswith("postgres: "):
            return None
        words = title.split()
        leader = words[words.index("PID") + 1] if "parallel" in words and "PID" in words else ""
        ours = self.dbname in words or (leader.isdigit() and self.ours.get(int(leader), False))
        self.ours[pid] = ours
        return ours

    def alive(self) -> list[int]:
        return [pid for pid in self._children() if self._is_ours(pid)]

    def sample(self) -> None:
        for pid in self.alive():
            cpu = process_cpu(pid)
            if cpu is not None:
                self.seen[pid] = max(self.seen.get(pid, 0.0), cpu)

    def settle(self, timeout: float = 15.0) -> bool:
        """Wait until no process serves the bench database (its clients have disconnected)."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            if self.thread is None:  # else the sampling thread reads them
                self.sample()
            time.sleep(self.every)
        return True

    def start(self) -> None:
        self.seen = {pid: cpu for pid in self.alive() if (cpu := process_cpu(pid)) is not None}
        self.baseline = dict(self.seen)  # processes already there count from now
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.every)

    def stop(self) -> float:
        """Stop sampling (after settle(), so that the last readings are taken); the CPU seconds
        of the bench database's processes since start()."""
        self.done.set()
        if self.thread is not None:
            self.thread.join()
        return sum(cpu - self.baseline.get(pid, 0.0) for pid, cpu in self.seen.items())
