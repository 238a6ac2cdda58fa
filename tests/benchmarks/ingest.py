"""Sections `ingest` and `usage`: HTTP against a real gunicorn, and raw COPY for comparison.

1. Probe a few gunicorn settings with short single-event and batch-of-100 loads; keep the
   fastest (the figures of every probe are reported).
2. With that setting: single events (req/s), batches of 100 and of 1,000 (events/s); check
   that every accepted event was stored once.
3. COPY as many rows as the 1,000-batch run stored, of the same shape, into
   CREATE TABLE … (LIKE metering_event INCLUDING ALL): the ceiling of the HTTP path.
4. current_usage latency over HTTP for a customer with a million events this period, idle and
   while a batch-ingestion load runs against another customer.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from tests.benchmarks.context import INGEST_CUSTOMER, UNIQUE_CUSTOMER, USAGE_CUSTOMER, Bench
from tests.benchmarks.cpu import CpuMeter, per_request
from tests.benchmarks.database import ROOT, BenchmarkError
from tests.benchmarks.server import Server, ServerConfig

logging.getLogger("httpx").setLevel(logging.WARNING)  # no log line per request of this process

CANDIDATES = (
    ServerConfig("sync", 3),
    ServerConfig("sync", 4),
    ServerConfig("gthread", 2, 4),
    ServerConfig("gthread", 4, 2),
)
BACKGROUND_BATCH = 100
BACKGROUND_THREADS = 2


def client_threads(config: ServerConfig) -> int:
    """Enough requests in flight to keep every server worker busy, and a few queued."""
    return config.concurrency + 2


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


def stored(bench: Bench, prefix: str) -> int:
    with bench.db.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM metering_event e JOIN customers_customer c ON c.id = e.customer_id "
            "WHERE c.external_id = %s AND e.transaction_id LIKE %s",
            (INGEST_CUSTOMER, prefix + "-%"),
        ).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        return int(row[0])


def probe(bench: Bench) -> ServerConfig:
    """Short loads on each candidate setting; the best sum of (figure / target) wins."""
    probes = []
    for config in CANDIDATES:
        with Server(bench.db, config) as server:
            kwargs: dict[str, Any] = {
                "customer": INGEST_CUSTOMER,
                "threads": client_threads(config),
                "duration": bench.sizes.probe_seconds,
            }
            single = load(bench, server, mode="single", **kwargs)
            batch = load(bench, server, mode="batch", batch=100, **kwargs)
        score = single["req_per_s"] / 800 + batch["events_per_s"] / 25_000
        probes.append(
            {
                "setting": config.label,
                "single_req_per_s": single["req_per_s"],
                "batch100_events_per_s": batch["events_per_s"],
                "score": round(score, 3),
            }
        )
        bench.log(
            f"  probe {config.label:<12} single {single['req_per_s']:>7,.0f} req/s   "
            f"batch100 {batch['events_per_s']:>8,.0f} events/s"
        )
    best = max(range(len(CANDIDATES)), key=lambda i: probes[i]["score"])
    bench.results["server_probes"] = probes
    bench.results["server_setting"] = CANDIDATES[best].label
    return CANDIDATES[best]


def ingestion(bench: Bench, server: Server, config: ServerConfig) -> None:
    runs: dict[str, dict[str, Any]] = {}
    threads = client_threads(config)
    for name, mode, batch in (("single", "single", 1), ("batch100", "batch", 100), ("batch1000", "batch", 1000)):
        bench.log(f"  {name}: {bench.sizes.ingest_seconds:.0f} s, {threads} client threads …")
        result = load(
            bench,
            server,
            mode=mode,
            batch=batch,
            customer=INGEST_CUSTOMER,
            threads=threads,
            duration=bench.sizes.ingest_seconds,
        )
        result["stored"] = stored(bench, result["prefix"])
        bench.log(
            f"  {name}: {describe(result)}; {result['stored']:,} rows stored for {result['events_total']:,} "
            "accepted events"
        )
        if result["stored"] != result["events_total"]:
            bench.log(f"  WARNING: {name} stored {result['stored']} rows for {result['events_total']} accepted events")
        runs[name] = result
    r = bench.results
    r["ingest_runs"] = runs
    r["ingest_single_req_per_s"] = runs["single"]["req_per_s"]
    r["ingest_batch100_events_per_s"] = runs["batch100"]["events_per_s"]
    r["ingest_batch1000_events_per_s"] = runs["batch1000"]["events_per_s"]
    r["ingest_batch_events_per_s"] = max(r["ingest_batch100_events_per_s"], r["ingest_batch1000_events_per_s"])
    r["ingest_client_threads"] = threads
    for name, run in runs.items():
        cpu = run.get("cpu") or {}
        if "app_cpu_ms_per_request" in cpu:
            r[f"ingest_{name}_cpu_ms_per_request"] = round(
                cpu["app_cpu_ms_per_request"] + cpu["db_cpu_ms_per_request"], 3
            )
            key = "req" if name == "single" else "events"
            r[f"ingest_{name}_projected_{key}_per_s_quiet"] = cpu[f"projected_{key}_per_s_quiet"]


def copy_rows(bench: Bench, rows: int) -> None:
    """COPY `rows` events of the ingested shape into a LIKE-table (same columns and indexes)."""
    rows = max(rows, 10_000)
    with bench.db.connect() as conn:
        ids = conn.execute(
            "SELECT c.id, m.id FROM customers_customer c, metering_billablemetric m "
            "WHERE c.external_id = %s AND m.code = 'mtu'",
            (INGEST_CUSTOMER,),
        ).fetchone()
        assert ids is not None  # the ingest customer and the mtu metric exist by now
        customer_id, metric_id = ids
        conn.execute("DROP TABLE IF EXISTS bench_copy_event")
        conn.execute("CREATE TABLE bench_copy_event (LIKE metering_event INCLUDING ALL)")
        conn.commit()
        now = bench.now
        data = [
            (
                f"copy-{i}",
                now,
                json.dumps({"user_id": f"u{i % 50_000}"}),
                None,
                "",
                f"{i:064x}",
                now,
                False,
                customer_id,
                metric_id,
            )
            for i in range(rows)
        ]
        columns = (
            "transaction_id, timestamp, properties, value, external_subscription_id, payload_hash, "
            "received_at, is_late, customer_id, metric_id"
        )
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(f"COPY bench_copy_event ({columns}) FROM STDIN") as copy:
            for row in data:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy_event")
        conn.commit()
    r = bench.results
    r["copy_rows"] = rows
    r["copy_s"] = round(elapsed, 3)
    r["copy_events_per_s"] = round(rows / elapsed, 1)
    r["ingest_vs_copy_ratio"] = round(r["ingest_batch_events_per_s"] / r["copy_events_per_s"], 3)
    bench.log(
        f"  COPY of {rows:,} rows: {r['copy_events_per_s']:,.0f} rows/s; HTTP batch ingestion reaches "
        f"{r['ingest_vs_copy_ratio']:.1%} of it"
    )


def check_usage(bench: Bench, server: Server, customer: str, expected_units: int) -> None:
    response = httpx.get(
        f"{server.url}/api/v1/customers/{customer}/current_usage",
        headers={"Authorization": f"Bearer {bench.api_key}"},
        timeout=120,
    )
    if response.status_code != 200:
        raise BenchmarkError(f"current_usage for {customer}: HTTP {response.status_code} {response.text[:300]}")
    units = response.json()["customer_usage"]["charges_usage"][0]["units"]
    if int(units) != expected_units:
        raise BenchmarkError(f"current_usage for {customer}: {units} units, expected {expected_units}")


def usage_latency(bench: Bench, server: Server, config: ServerConfig) -> None:
    sizes = bench.sizes
    r = bench.results
    check_usage(bench, server, USAGE_CUSTOMER, sizes.usage_distinct)
    idle = load(
        bench,
        server,
        mode="usage",
        customer=USAGE_CUSTOMER,
        threads=1,
        duration=120,
        max_requests=min(200, max(50, sizes.usage_requests // 4)),
        warmup=0.5,
    )
    bench.log(f"  idle server: {describe(idle)}")
    targets = [("current_usage", USAGE_CUSTOMER, sizes.usage_events, sizes.usage_requests)]
    if not bench.quick:
        check_usage(bench, server, UNIQUE_CUSTOMER, sizes.unique_distinct)
        # Fewer requests: each one scans five times the events.
        targets.append(("current_usage_5m", UNIQUE_CUSTOMER, sizes.unique_events, min(300, sizes.usage_requests)))
    for key, customer, events, requests in targets:
        background = LoadRun(
            bench,
            server,
            mode="batch",
            batch=BACKGROUND_BATCH,
            customer=INGEST_CUSTOMER,
            threads=BACKGROUND_THREADS,
            duration=600,
            warmup=0.5,
        )
        time.sleep(1.5)
        measured = load(
            bench,
            server,
            mode="usage",
            customer=customer,
            threads=1,
            duration=600,
            max_requests=requests,
            warmup=0.5,
            meter=False,
        )
        bg = background.result(stop=True)
        bench.log(
            f"  {customer} ({events:,} events) under load: {describe(measured)}; "
            f"background ingestion {bg['events_per_s']:,.0f} events/s"
        )
        r[f"{key}_p50_ms"] = measured["latency_ms"]["p50"]
        r[f"{key}_p99_ms"] = measured["latency_ms"]["p99"]
        r[f"{key}_run"] = {**measured, "events_in_period": events, "background": bg}
    r["current_usage_idle_p50_ms"] = idle["latency_ms"]["p50"]
    r["current_usage_idle_p99_ms"] = idle["latency_ms"]["p99"]
    r["current_usage_background"] = f"batches of {BACKGROUND_BATCH} from {BACKGROUND_THREADS} threads"


def run(bench: Bench, sections: set[str]) -> None:
    if "ingest" in sections:
        bench.log("probing gunicorn settings …")
        config = probe(bench)
        bench.log(f"server setting: {config.label}")
    else:
        config = CANDIDATES[1]
        bench.results["server_setting"] = config.label
    with Server(bench.db, config) as server:
        if "ingest" in sections:
            bench.log(f"ingestion over HTTP ({config.label}) …")
            ingestion(bench, server, config)
            copy_rows(bench, bench.results["ingest_runs"]["batch1000"]["events"])
        if "usage" in sections:
            bench.log("current_usage latency over HTTP …")
            usage_latency(bench, server, config)
