"""Sections `ingest` and `usage`: HTTP against the real web server (granian), and raw COPY for
comparison.

1. Probe a few web server settings (workers × threads) with short single-event and batch-of-100
   loads; keep the cheapest in CPU (the figures of every probe are reported).
2. With that setting: single events (req/s), batches of 100 and of 1,000 (events/s); check
   that every accepted event was stored once.
3. COPY as many rows as the 1,000-batch run stored, of the same shape, into
   CREATE TABLE … (LIKE metering_event INCLUDING ALL): the ceiling of the HTTP path.
4. Section `usage` (its module): current_usage latency, with the same server.

CPU beside every rate: the server's workers' and the database backends' CPU per request, per
event for batches (cpu.CpuMeter).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.benchmarks.context import INGEST_CUSTOMER, Bench
from tests.benchmarks.cpu import process_cpu
from tests.benchmarks.loads import describe, load
from tests.benchmarks.server import Server, ServerConfig
from tests.benchmarks.usage import usage_latency

CANDIDATES = (
    ServerConfig(2, 4),  # manage.py start's default
    ServerConfig(2, 8),
    ServerConfig(3, 4),
    ServerConfig(4, 2),
)


def client_threads(config: ServerConfig) -> int:
    """Enough requests in flight to keep every server worker busy, and a few queued."""
    return config.concurrency + 2


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
    """Short loads on each candidate setting; the best sum of (rate / target) wins, the rates
    being those the CPU per request allows."""
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
        # Scored on the rates the CPU allows (cores / CPU per request or event) where measured:
        # a probe lasts seconds, and on a shared machine its wall-clock rate is mostly what else
        # ran meanwhile, which picked a setting by noise.
        single_rate = (single.get("cpu") or {}).get("projected_req_per_s_quiet") or single["req_per_s"]
        batch_rate = (batch.get("cpu") or {}).get("projected_events_per_s_quiet") or batch["events_per_s"]
        score = single_rate / 800 + batch_rate / 25_000
        probes.append(
            {
                "setting": config.label,
                "single_req_per_s": single["req_per_s"],
                "batch100_events_per_s": batch["events_per_s"],
                "single_projected_req_per_s_quiet": single_rate,
                "batch100_projected_events_per_s_quiet": batch_rate,
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
            if name != "single":
                r[f"ingest_{name}_cpu_us_per_event"] = round(
                    r[f"ingest_{name}_cpu_ms_per_request"] * 1000 / run["batch"], 2
                )
    # The batch figure's size: the faster one; its CPU per event is the alternative target.
    best = max(("batch100", "batch1000"), key=lambda name: runs[name]["events_per_s"])
    r["ingest_batch_best"] = best
    if f"ingest_{best}_cpu_us_per_event" in r:
        r["ingest_batch_cpu_us_per_event"] = r[f"ingest_{best}_cpu_us_per_event"]


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
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None  # a SELECT without FROM returns one row
        backend = int(row[0])
        db_before, app_before = process_cpu(backend), time.process_time()
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(f"COPY bench_copy_event ({columns}) FROM STDIN") as copy:
            for values in data:
                copy.write_row(values)
        conn.commit()
        elapsed = time.perf_counter() - started
        app_cpu, db_after = time.process_time() - app_before, process_cpu(backend)
        conn.execute("DROP TABLE bench_copy_event")
        conn.commit()
    r = bench.results
    r["copy_rows"] = rows
    r["copy_s"] = round(elapsed, 3)
    r["copy_events_per_s"] = round(rows / elapsed, 1)
    r["ingest_vs_copy_ratio"] = round(r["ingest_batch_events_per_s"] / r["copy_events_per_s"], 3)
    if db_before is not None and db_after is not None:
        # The database's CPU for a row (the client's psycopg writes are reported beside it).
        r["copy_db_cpu_us_per_row"] = round((db_after - db_before) / rows * 1e6, 2)
        r["copy_client_cpu_us_per_row"] = round(app_cpu / rows * 1e6, 2)
    bench.log(
        f"  COPY of {rows:,} rows: {r['copy_events_per_s']:,.0f} rows/s; HTTP batch ingestion reaches "
        f"{r['ingest_vs_copy_ratio']:.1%} of it"
    )


def run(bench: Bench, sections: set[str]) -> None:
    if "ingest" in sections:
        bench.log("probing web server settings …")
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
            usage_latency(bench, server)
