"""Section `close`: `manage.py close_period` over last month at growing customer counts.

Each run closes every customer subscribed so far (1,000 then 10,000 then 50,000 in full mode:
the next run adds subscribers to the previous ones and starts again from no invoices), in a
child process with `--workers N` when the command has the flag. Per run: wall time; CPU, the
command's with its reaped workers (wait4's rusage) plus the database's (the postmaster's reaped
children, read before and after); and peak RSS, the largest of the command and each worker.
The figures are the 10,000-customer run's; the growth between runs is the curve.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.context import CLOSE_PREFIX, Bench
from tests.benchmarks.cpu import PROC, BackendSampler, descendants, postmaster_pid, reaped_children_cpu
from tests.benchmarks.database import ROOT, BenchmarkError, manage
from tests.benchmarks.growth import curve

NO_WORKERS_FLAG = "close_period has no --workers flag: one process closes every customer"
RSS_FLAT = 1.1  # "RSS flat": the largest run's peak RSS within 10 % of the smallest run's


class PeakRss:
    """Samples the VmHWM (own high-water RSS since exec or fork) of a process and of each of its
    descendants until it exits; the peak is the largest of them, not their sum (forked workers
    share the parent's pages until they write them).

    Not ru_maxrss from wait4: Linux counts there the memory of the forked copy of this process
    before exec, so a child of a large parent seems as large as the parent.
    """

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid = pid
        self.every = every
        self.peaks_kb: dict[int, int] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @staticmethod
    def _hwm_kb(pid: int) -> int | None:
        try:
            for line in (PROC / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None  # gone (or a zombie: VmHWM no longer listed)

    def _run(self) -> None:
        while not self.done.is_set():
            own = self._hwm_kb(self.pid)
            if own is None:
                return
            self.peaks_kb[self.pid] = max(self.peaks_kb.get(self.pid, 0), own)
            for child in descendants(self.pid):
                kb = self._hwm_kb(child)
                if kb is not None:
                    self.peaks_kb[child] = max(self.peaks_kb.get(child, 0), kb)
            self.done.wait(self.every)

    def stop(self) -> dict[str, Any]:
        self.done.set()
        self.thread.join()
        workers = [kb for pid, kb in self.peaks_kb.items() if pid != self.pid]
        return {
            "peak_rss_mb": round(max(self.peaks_kb.values(), default=0) / 1024, 1),
            "command_peak_rss_mb": round(self.peaks_kb.get(self.pid, 0) / 1024, 1),
            "workers_peak_rss_mb": round(max(workers, default=0) / 1024, 1),
            "processes": len(self.peaks_kb),
        }


def workers_args(bench: Bench) -> list[str]:
    """`--workers N` if close_period has the flag (it came with issue 18), else nothing."""
    if "--workers" in manage(bench.db, "close_period", "--help"):
        return ["--workers", str(bench.sizes.close_workers)]
    return []


def database_cpu(postmaster_s: float | None, sampled_s: float | None) -> tuple[float | None, str]:
    """The database's CPU for a run, and where it comes from.

    The postmaster's figure is exact when nothing else ends meanwhile on the server; the sampled
    one is a lower bound (each process's last 20 ms may be missed). If the first exceeds the
    second by more than sampling can miss, other databases' processes ended meanwhile (a shared
    machine): the sampled figure is the one that belongs to this run."""
    if postmaster_s is None or sampled_s is None:
        return None, "none: the database server is not on this host"
    if postmaster_s <= sampled_s * 1.25 + 0.5:
        return postmaster_s, "postmaster"
    return sampled_s, "sampled: other databases' processes ended meanwhile and the postmaster counts them"


def run_close_child(bench: Bench, postmaster: int | None, *args: str) -> dict[str, Any]:
    """`manage.py close_period ARGS` as a child: wall time, peak RSS, the command's CPU and the
    database's."""
    sampler = BackendSampler(postmaster, bench.db.name) if postmaster else None
    if sampler is not None and not sampler.settle():
        bench.log("  WARNING: other connections to the bench database: its CPU figure counts them too")
    db_before = reaped_children_cpu(postmaster) if postmaster else None
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "close_period", *args],
        cwd=ROOT,
        env=bench.db.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = PeakRss(process.pid)
    if sampler is not None:
        sampler.start()
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        bench.log(f"    close_period: {line.rstrip()}")
    # The pipe closes when the child exits; it stays a zombie (VmHWM readable) until reaped.
    time.sleep(0.05)
    rss = peak.stop()
    # wait4's rusage is the child's and that of every child it reaped (its workers).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    elapsed = time.perf_counter() - started
    sampled = None
    if sampler is not None:
        # Its backends end when it does; the postmaster counts their CPU once it has reaped them.
        if not sampler.settle():
            bench.log("  WARNING: the bench database's backends outlived close_period: database CPU understated")
        sampled = sampler.stop()
    db_after = reaped_children_cpu(postmaster) if postmaster else None
    if process.returncode != 0:
        raise BenchmarkError(f"close_period failed ({process.returncode}): {' / '.join(lines[-5:])}")
    app_cpu = usage.ru_utime + usage.ru_stime
    ended = db_after - db_before if db_before is not None and db_after is not None else None
    db_cpu, source = database_cpu(ended, sampled)
    return {
        "s": round(elapsed, 2),
        **rss,
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),  # an upper bound (see PeakRss)
        "user_cpu_s": round(usage.ru_utime, 2),
        "system_cpu_s": round(usage.ru_stime, 2),
        "app_cpu_s": round(app_cpu, 2),
        "db_cpu_s": None if db_cpu is None else round(db_cpu, 2),
        "db_cpu_source": source,
        "db_cpu_postmaster_s": None if ended is None else round(ended, 2),
        "db_cpu_sampled_s": None if sampled is None else round(sampled, 2),
        "cpu_s": round(app_cpu + (db_cpu or 0.0), 2),
        "output": lines[-1] if lines else "",
    }


def _per_customer(run: dict[str, Any], n: int) -> dict[str, Any]:
    figures = {
        "per_customer_ms": round(run["s"] / n * 1000, 3),
        "app_cpu_ms_per_customer": round(run["app_cpu_s"] / n * 1000, 3),
    }
    if run["db_cpu_s"] is not None:
        figures["db_cpu_ms_per_customer"] = round(run["db_cpu_s"] / n * 1000, 3)
        figures["cpu_ms_per_customer"] = round(run["cpu_s"] / n * 1000, 3)
    return figures


def close(bench: Bench) -> None:
    sizes = bench.sizes
    r = bench.results
    postmaster = postmaster_pid(bench.db)
    if postmaster is None:
        bench.log("  the database server is not on this host (or /proc is missing): no database CPU figures")
    workers = workers_args(bench)
    r["close_workers"] = sizes.close_workers if workers else 1
    if not workers:
        r["close_workers_note"] = NO_WORKERS_FLAG
        bench.log(f"  {NO_WORKERS_FLAG}")
    baseline = run_close_child(bench, postmaster, "--customer", "no-such-customer", *workers)
    bench.log(
        f"  close_period with nothing to do: {baseline['s']} s, peak RSS {baseline['peak_rss_mb']} MB, "
        f"CPU {baseline['app_cpu_s']} s"
    )
    runs = []
    previous = 0
    for n in sizes.close_customers:
        with bench.db.connect() as conn:
            if previous:
                # Start again from no invoices, with more subscribers: each run closes all n.
                conn.execute("TRUNCATE billing_invoiceline, billing_invoice CASCADE")
                catalog = data.catalog_ids(conn)
                data.subscribe(conn, catalog, prefix=CLOSE_PREFIX, first=previous + 1, last=n, at=bench.last_month)
            conn.commit()
        data.vacuum_analyze(bench.db.connect)
        bench.log(f"closing last month for {n:,} customers (manage.py close_period {' '.join(workers)}) …")
        run = run_close_child(bench, postmaster, *workers)
        with bench.db.connect() as conn:
            row = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'finalized'), coalesce(sum(total), 0) "
                "FROM billing_invoice WHERE period_start = %s",
                (bench.last_month,),
            ).fetchone()
            assert row is not None  # an aggregate without GROUP BY returns one row
            invoices, finalized, total = row
        if invoices != n:
            raise BenchmarkError(f"close of {n} customers made {invoices} invoices")
        run.update(customers=n, invoices=invoices, finalized=finalized, invoiced_total=f"{total:.2f}")
        run.update(_per_customer(run, n))
        cpu = f"CPU {run['cpu_ms_per_customer']} ms each" if "cpu_ms_per_customer" in run else "no database CPU"
        bench.log(
            f"  {n:,} customers: {run['s']} s ({run['per_customer_ms']} ms each), {cpu} (app {run['app_cpu_s']} s, "
            f"database {run['db_cpu_s']} s: postmaster {run['db_cpu_postmaster_s']} s, sampled "
            f"{run['db_cpu_sampled_s']} s), peak RSS {run['peak_rss_mb']} MB over {run['processes']} processes, "
            f"{finalized:,} invoices finalized, total ${total:,.2f}"
        )
        runs.append(run)
        previous = n
    figure = next(run for run in runs if run["customers"] == sizes.close_figure)
    first, last = runs[0], runs[-1]
    r["close_customers"] = figure["customers"]
    r["close_s"] = figure["s"]
    r["close_peak_rss_mb"] = figure["peak_rss_mb"]
    for key in ("cpu_ms_per_customer", "app_cpu_ms_per_customer", "db_cpu_ms_per_customer"):
        if key in figure:
            r[f"close_{key}"] = figure[key]
    r["close_runs"] = runs
    r["close_baseline_rss_mb"] = baseline["peak_rss_mb"]
    r["close_baseline"] = baseline
    points = curve(
        [
            {
                "customers": run["customers"],
                "s": run["s"],
                "cpu_s": run["cpu_s"],
                "cpu_ms_per_customer": run.get("cpu_ms_per_customer"),
                "peak_rss_mb": run["peak_rss_mb"],
            }
            for run in runs
        ],
        size="customers",
        time="s",
        cpu="cpu_s",
    )
    r.setdefault("growth", {})["close"] = points
    if len(runs) > 1:
        r["close_rss_growth_mb_per_1000_customers"] = round(
            (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["customers"] - first["customers"]) * 1000, 2
        )
        r["close_rss_growth_ratio"] = round(last["peak_rss_mb"] / first["peak_rss_mb"], 3)
    if last is not figure:
        # The "50,000 customers within 5.5x the 10,000 time": a growth factor of 1.1.
        r["close_growth_vs"] = f"{last['customers']:,} vs {figure['customers']:,} customers"
        r["close_growth_time_ratio"] = round(last["s"] / figure["s"], 3)
        r["close_growth_factor"] = round(r["close_growth_time_ratio"] / (last["customers"] / figure["customers"]), 3)
        if last["cpu_s"] and figure["cpu_s"]:
            # The same in CPU: steadier than wall time when other processes share the machine.
            r["close_growth_cpu_factor"] = round(
                last["cpu_s"] / figure["cpu_s"] / (last["customers"] / figure["customers"]), 3
            )
