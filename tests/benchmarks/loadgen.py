"""HTTP load generator, run as its own process: `python -m tests.benchmarks.loadgen --help`.

It knows nothing of Django (it is the client side) and talks to loopback only. A few threads,
each with its own http.client connection, send requests until the time or request budget is spent (or
SIGTERM arrives); requests that complete inside the measuring window (after the warm-up, before
the stop) are counted. The result is one JSON object on stdout.

Modes: `single` (POST /api/v1/events), `batch` (POST /api/v1/events/batch with --batch events),
`usage` (GET /api/v1/customers/<customer>/current_usage).
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import resource
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    values = sorted(latencies_ms)
    return {
        "p50": round(percentile(values, 0.50), 2),
        "p90": round(percentile(values, 0.90), 2),
        "p99": round(percentile(values, 0.99), 2),
        "max": round(values[-1], 2) if values else 0.0,
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
    }


@dataclass(frozen=True)
class Reply:
    status_code: int
    text: str


class Client:
    """One keep-alive HTTP/1.1 connection (re-opened when the server closes it)."""

    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120.0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()

    def reset(self) -> None:
        self.connection.close()
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120.0)

    def call(self, method: str, path: str, body: bytes | None = None) -> Reply:
        self.connection.request(method, path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        payload = response.read()
        if response.will_close:
            self.connection.close()  # the next request() connects again
        text = payload[:300].decode(errors="replace") if response.status != 200 else ""
        return Reply(response.status, text)


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.issued = 0
        self.latencies: list[float] = []
        self.events = 0
        self.events_total = 0  # accepted, inside the window or not: what the database must hold
        self.requests_total = 0
        self.errors = 0
        self.statuses: dict[str, int] = {}
        self.first_error = ""
        self.start = 0.0
        self.warm_at = 0.0
        self.end = 0.0
        self.stopped_at = float("inf")

    def halt(self) -> None:
        """SIGTERM: close the measuring window now and let the threads finish."""
        self.stopped_at = time.monotonic()
        self.stop.set()

    def take_ticket(self) -> float | None:
        """The moment a request is sent, or None when --max-requests are spent. Requests sent
        during the warm-up are not counted against it: fast requests (current usage reading a
        month's maintained size, 5 ms) spent a budget of 20 before the measuring window opened."""
        now = time.monotonic()
        if now < self.warm_at:
            return now
        with self.lock:
            if self.args.max_requests and self.issued >= self.args.max_requests:
                return None
            self.issued += 1
            return now

    def event(self, thread: int, seq: int, i: int, now: int) -> dict[str, Any]:
        return {
            "transaction_id": f"{self.args.prefix}-{thread}-{seq}-{i}",
            "external_customer_id": self.args.customer,
            "code": self.args.code,
            "timestamp": now,
            "properties": {"user_id": f"u{random.randrange(self.args.users)}"},
        }

    def request(self, client: Client, thread: int, seq: int) -> tuple[Reply, int]:
        """The load generator shares the machine's CPUs with the server, so it stays lean:
        http.client and orjson rather than httpx and json."""
        mode = self.args.mode
        if mode == "usage":
            return client.call("GET", f"/api/v1/customers/{self.args.customer}/current_usage"), 0
        now = int(time.time())
        if mode == "single":
            body = orjson.dumps({"event": self.event(thread, seq, 0, now)})
            return client.call("POST", "/api/v1/events", body), 1
        events = [self.event(thread, seq, i, now) for i in range(self.args.batch)]
        return client.call("POST", "/api/v1/events/batch", orjson.dumps({"events": events})), len(events)

    def worker(self, thread: int) -> None:
        with Client(self.args.url, self.args.key) as client:
            seq = 0
            while not self.stop.is_set() and time.monotonic() < self.end:
                sent = self.take_ticket()
                if sent is None:
                    break
                seq += 1
                try:
                    response, n = self.request(client, thread, seq)
                    status = str(response.status_code)
                except (OSError, http.client.HTTPException) as exc:
                    client.reset()
                    response, n, status = None, 0, type(exc).__name__
                done = time.monotonic()
                if response is not None and response.status_code == 200:
                    with self.lock:
                        self.events_total += n
                        self.requests_total += 1
                if sent < self.warm_at or done > self.end or self.stop.is_set():
                    continue  # outside the measuring window
                with self.lock:
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    if response is not None and response.status_code == 200:
                        self.latencies.append((done - sent) * 1000)
                        self.events += n
                    else:
                        self.errors += 1
                        if not self.first_error:
                            self.first_error = f"{status}: {response.text[:300] if response is not None else ''}"

    def run(self) -> dict[str, Any]:
        self.start = time.monotonic()
        self.warm_at = self.start + self.args.warmup
        self.end = self.warm_at + self.args.duration
        threads = [threading.Thread(target=self.worker, args=(t,), daemon=True) for t in range(self.args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.2)  # short waits: the SIGTERM handler runs between them
        finished = time.monotonic()  # early, when the request budget ran out
        window = max(1e-9, min(self.end, self.stopped_at, finished) - self.warm_at)
        return {
            "mode": self.args.mode,
            "batch": self.args.batch if self.args.mode == "batch" else 1,
            "threads": self.args.threads,
            "window_s": round(window, 3),
            "requests": len(self.latencies),
            "events": self.events,
            "events_total": self.events_total,
            "requests_total": self.requests_total,
            "errors": self.errors,
            "statuses": self.statuses,
            "first_error": self.first_error,
            "req_per_s": round(len(self.latencies) / window, 1),
            "events_per_s": round(self.events / window, 1),
            "latency_ms": latency_summary(self.latencies),
        }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="HTTP load against the billing API (loopback only).")
    parser.add_argument("--url", required=True, help="Base URL, e.g. http://127.0.0.1:8123")
    parser.add_argument("--key", required=True, help="API key (Bearer).")
    parser.add_argument("--mode", choices=["single", "batch", "usage"], required=True)
    parser.add_argument("--customer", required=True, help="external_customer_id")
    parser.add_argument("--code", default="mtu")
    parser.add_argument("--batch", type=int, default=100, help="Events per batch request.")
    parser.add_argument("--users", type=int, default=50_000, help="Distinct user_id pool.")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--duration", type=float, default=10.0, help="Measuring window, seconds.")
    parser.add_argument("--warmup", type=float, default=1.0, help="Seconds sent but not counted.")
    parser.add_argument("--max-requests", type=int, default=0, help="Measured requests to stop after (0: none).")
    parser.add_argument("--prefix", default="lg", help="transaction_id prefix (unique per run).")
    args = parser.parse_args(argv)
    host = urlsplit(args.url).hostname or ""
    if host not in LOOPBACK:
        parser.error(f"--url must be a loopback address, got {host!r}")
    if not 1 <= args.threads <= 64 or not 0 < args.duration <= 3600:
        parser.error("--threads must be 1–64 and --duration 0–3600 s")
    return args


def main(argv: list[str]) -> None:
    load = Load(parse_args(argv))
    signal.signal(signal.SIGTERM, lambda signum, frame: load.halt())
    result = load.run()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 3)  # the client's own cost
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
