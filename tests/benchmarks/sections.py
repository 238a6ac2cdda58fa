"""Sections `unique` (maintained set vs COUNT DISTINCT) and `close` (period close at scale)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.benchmarks import data
from tests.benchmarks.context import CLOSE_PREFIX, UNIQUE_CUSTOMER, Bench
from tests.benchmarks.database import ROOT, BenchmarkError, python_module


def unique(bench: Bench) -> None:
    sizes = bench.sizes
    bench.log(
        f"unique_count over {sizes.unique_events:,} events from {sizes.unique_distinct:,} users, "
        f"{sizes.repeats} runs each …"
    )
    args = {
        "customer": UNIQUE_CUSTOMER,
        "metric": "mtu",
        "start": bench.this_month.isoformat(),
        "end": bench.next_month.isoformat(),
        "repeats": sizes.repeats,
    }
    out = python_module(bench.db, "tests.benchmarks.child", "unique", json.dumps(args), timeout=3600)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    if result["unique_count"] != sizes.unique_distinct or result["count_distinct"] != sizes.unique_distinct:
        raise BenchmarkError(
            f"unique_count {result['unique_count']} / COUNT DISTINCT {result['count_distinct']}, "
            f"expected {sizes.unique_distinct}"
        )
    r = bench.results
    r["unique_count_s"] = round(result["unique_count_s"], 4)
    r["count_distinct_s"] = round(result["count_distinct_s"], 4)
    r["unique_vs_count_distinct_ratio"] = round(result["unique_count_s"] / result["count_distinct_s"], 4)
    r["events_count_s"] = round(result["events_count_s"], 4)
    r["events_scan_s"] = round(result["events_scan_s"], 4)
    r["unique_detail"] = result
    bench.log(
        f"  unique_count (maintained set): median {r['unique_count_s'] * 1000:,.1f} ms {result['unique_count_runs_s']}"
    )
    bench.log(
        f"  COUNT(DISTINCT) over events:   median {r['count_distinct_s'] * 1000:,.1f} ms "
        f"{result['count_distinct_runs_s']}"
    )
    bench.log(
        f"  events_count (daily counts): {r['events_count_s'] * 1000:,.1f} ms; "
        f"COUNT(*) of the window's events: {r['events_scan_s'] * 1000:,.1f} ms"
    )


class PeakRss:
    """Samples a process's VmHWM (its own high-water RSS since exec) until it exits.

    Not ru_maxrss from wait4: Linux counts there the memory of the forked copy of this process
    before exec, so a child of a large parent seems as large as the parent.
    """

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.every = every
        self.peak_kb = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            try:
                for line in self.path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                return  # gone (or a zombie: VmHWM no longer listed)
            time.sleep(self.every)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak_kb / 1024


def run_close_child(bench: Bench, *args: str) -> dict[str, Any]:
    """`manage.py close_period ARGS` as a child: wall time, its peak RSS and CPU."""
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
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        bench.log(f"    close_period: {line.rstrip()}")
    # The pipe closes when the child exits; it stays a zombie (VmHWM readable) until reaped.
    time.sleep(0.05)
    peak_mb = peak.stop()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise BenchmarkError(f"close_period failed ({process.returncode}): {' / '.join(lines[-5:])}")
    return {
        "s": round(elapsed, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),  # an upper bound (see PeakRss)
        "user_cpu_s": round(usage.ru_utime, 2),
        "system_cpu_s": round(usage.ru_stime, 2),
        "output": lines[-1] if lines else "",
    }


def close(bench: Bench) -> None:
    sizes = bench.sizes
    runs = []
    baseline = run_close_child(bench, "--customer", "no-such-customer")
    bench.log(f"  close_period with nothing to do: {baseline['s']} s, peak RSS {baseline['peak_rss_mb']} MB")
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
        bench.log(f"closing last month for {n:,} customers (manage.py close_period in a child process) …")
        run = run_close_child(bench)
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
        run.update(
            customers=n,
            invoices=invoices,
            finalized=finalized,
            invoiced_total=f"{total:.2f}",
            per_customer_ms=round(run["s"] / n * 1000, 2),
        )
        bench.log(
            f"  {n:,} customers: {run['s']} s ({run['per_customer_ms']} ms each), peak RSS "
            f"{run['peak_rss_mb']} MB, {finalized:,} invoices finalized, total ${total:,.2f}"
        )
        runs.append(run)
        previous = n
    r = bench.results
    last = runs[-1]
    r["close_customers"] = last["customers"]
    r["close_s"] = last["s"]
    r["close_peak_rss_mb"] = last["peak_rss_mb"]
    r["close_runs"] = runs
    r["close_baseline_rss_mb"] = baseline["peak_rss_mb"]
    if len(runs) > 1:
        first = runs[0]
        r["close_rss_growth_mb_per_1000_customers"] = round(
            (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["customers"] - first["customers"]) * 1000, 2
        )
