"""A period close fanned out across workers (issue 18): one process walking every subscription
due cannot use more than one core, so the ids due are split into chunks closed concurrently,
by child processes of `close_period --workers N` or by django-q2 tasks (one a chunk).

Why it stays exact: each subscription is still closed in its own transaction under its and its
customer's row locks (billing.services.period_close.close_chunk), first with SKIP LOCKED so
workers pass over what another holds, then blocking for those; the unique constraint on
(subscription, kind, period) backs the locks up, and numbers are still taken at finalization
from django-sequences' row-locked counter, inside that transaction, so they stay gap-free.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from datetime import datetime

from django.db import connection, connections

from billing.services.period_close import CloseReport, close_chunk, close_periods
from billing.services.period_close_due import CHUNK_SIZE, subscriptions_to_close
from billing.services.period_close_state import RunCache

CHUNKS_PER_WORKER = 8  # several chunks a worker: one slow chunk does not leave the others idle
TASK_CHUNK_SIZE = 250  # subscriptions a django-q2 task closes: well within the cluster's timeout
CHUNK_TASK = "billing.tasks.close_period_chunk"
CHUNK_GROUP = "close-period-chunks"

ONE_WORKER_SQLITE = "SQLite: one worker, in this process (SQLite has one writer at a time)."
ONE_WORKER_IN_TRANSACTION = (
    "Inside a transaction: one worker, in this process (other processes cannot see its uncommitted rows)."
)


def split(ids: list[int], size: int) -> list[list[int]]:
    return [ids[first : first + size] for first in range(0, len(ids), size)]


def chunk_size(count: int, workers: int) -> int:
    """Chunks small enough to share out evenly, large enough that each reads its rows in bulk."""
    return max(1, min(CHUNK_SIZE, math.ceil(count / (workers * CHUNKS_PER_WORKER))))


def usable_workers(requested: int) -> tuple[int, str | None]:
    """How many worker processes a close may use here, and why fewer than asked, if so."""
    if requested <= 1:
        return 1, None
    if connection.vendor != "postgresql":
        return 1, ONE_WORKER_SQLITE
    if connection.in_atomic_block:
        return 1, ONE_WORKER_IN_TRANSACTION
    return requested, None


_worker_cache: RunCache | None = None  # one per worker process, kept across its chunks


def _close_in_worker(subscription_ids: list[int], now: datetime, month: tuple[int, int] | None) -> CloseReport:
    """Run in a child process: close one chunk and hand back its report (invoice ids only, so it
    pickles small)."""
    global _worker_cache
    if _worker_cache is None:
        _worker_cache = RunCache()
    try:
        return close_chunk(subscription_ids, now=now, month=month, cache=_worker_cache)
    finally:
        connections.close_all()  # the parent may end this process without Python's exit path


def close_periods_in_workers(
    *,
    now: datetime,
    workers: int,
    month: tuple[int, int] | None = None,
    progress: Callable[[int, int, CloseReport], None] | None = None,
) -> CloseReport:
    """Invoice every ended period of every subscription with `workers` child processes (forked:
    they inherit the settings and the code already loaded), each closing chunks of the ids due.

    The parent lists the ids, merges the chunks' reports and reports progress as chunks end. A
    chunk whose worker failed as a whole (a lost connection, a killed process) is reported as
    errors of its subscriptions; the others go on, and a later run closes what it left.
    """
    workers, _ = usable_workers(workers)
    if workers == 1:
        return close_periods(now=now, month=month, progress=progress)
    ids = list(subscriptions_to_close(now=now))
    report = CloseReport()
    chunks = split(ids, chunk_size(len(ids), workers))
    if not chunks:
        return report
    # A forked child must not share the parent's database sockets: close them before forking;
    # each side opens its own on its next query.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    done = 0
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
        futures: dict[Future[CloseReport], list[int]] = {
            pool.submit(_close_in_worker, chunk, now, month): chunk for chunk in chunks
        }
        for future in as_completed(futures):
            chunk = futures[future]
            try:
                report.add(future.result())
            except Exception as exc:  # the chunk's worker failed as a whole: report, go on
                report.errors += [f"subscription {pk}: its chunk failed: {exc!r}" for pk in chunk]
            done += len(chunk)
            if progress is not None:
                progress(done, len(ids), report)
    return report


def queue_close_chunks(*, now: datetime, size: int = TASK_CHUNK_SIZE) -> tuple[int, int]:
    """Queue one django-q2 task a chunk of the subscriptions due (billing.tasks.close_period_chunk);
    return (subscriptions, chunks). The cluster's workers close the chunks concurrently."""
    from django_q.tasks import async_task

    ids = list(subscriptions_to_close(now=now))
    chunks = split(ids, size)
    for chunk in chunks:
        async_task(CHUNK_TASK, chunk, group=CHUNK_GROUP)
    return len(ids), len(chunks)
