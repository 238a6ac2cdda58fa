"""The outbox pattern shared by webhook deliveries and invoice emails.

A row to send is written in the transaction of the change it follows; workers then take due
rows one at a time: `claim_due` locks one (`SKIP LOCKED` on PostgreSQL, so concurrent workers
take different rows), counts its attempt, sets a lease (`claimed_until`) and commits before
anything is sent, with no transaction open during the send; `locked_if_current` re-locks it to
record the outcome, unless a later attempt took it over (the worker outlived its lease).
`queue_after_commit` asks django-q2 to send soon after a commit (throttled per thread); the
periodic task sends whatever that missed. `insert_row` writes a row in one plain INSERT, for the
rows a period close writes once per invoice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from django.db import connections, models, router, transaction
from django.db.models import Q

logger = logging.getLogger(__name__)

PENDING = "pending"  # DeliveryStatus.PENDING and EmailStatus.PENDING
ENQUEUE_INTERVAL_SECONDS = 1.0  # a thread queues one task at most this often

Row = TypeVar("Row", bound=models.Model)


def backoff(base_seconds: int, attempt: int) -> timedelta:
    """How long after failed attempt `attempt` (1, 2, …) the next one is due: base × 2^(n − 1)."""
    return timedelta(seconds=base_seconds * 2 ** (attempt - 1))


def insert_row(row: models.Model) -> None:
    """Store a new row (its primary key left to the database) in one INSERT and no more.

    The values are prepared by the fields themselves, as save() prepares them; what save() adds
    (its signals, reading the new id back) costs as much again as the statement, and this runs
    inside a finalization, where a period close spends its time. `row.pk` stays None.
    """
    insert_rows([row])


def insert_rows(rows: Sequence[models.Model], *, with_pk: bool = False) -> None:
    """Store new rows of one model in one multi-row INSERT (nothing for none), as insert_row does
    one: a period close writes a group's invoices, lines and emails this way. `with_pk`: the rows
    carry their ids (reserved from the sequence beforehand); else the database gives them and
    the rows' `pk` stays None."""
    if not rows:
        return
    model = type(rows[0])
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    connection = connections[router.db_for_write(model)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(cast(str, f.column)) for f in fields)  # a concrete field has a column
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [f.get_db_prep_save(f.pre_save(row, True), connection) for row in rows for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {', '.join([placeholders] * len(rows))}",
            params,
        )


def claim_due(
    model: type[Row], *, now: datetime, lease: timedelta, then: Callable[[Row], Any] | None = None
) -> Row | None:
    """Take one due pending row for this worker: count its attempt, lease it, run `then` (in the
    same transaction), and commit. None when nothing is due."""
    with transaction.atomic():
        row = (
            model._default_manager.select_for_update(skip_locked=True)
            .filter(status=PENDING, next_attempt_at__lte=now)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .order_by("next_attempt_at", "id")
            .first()
        )
        if row is None:
            return None
        row.attempts += 1  # type: ignore[attr-defined]
        row.claimed_until = now + lease  # type: ignore[attr-defined]
        row.save(update_fields=["attempts", "claimed_until"])
        if then is not None:
            then(row)
        return row


def locked_if_current(model: type[Row], row: Row) -> Row | None:
    """Inside a transaction: the row locked, if this worker's attempt is still the current one
    (else None: a later attempt took over after the lease ended, or it was settled)."""
    current = model._default_manager.select_for_update().get(pk=row.pk)
    if current.attempts != row.attempts or current.status != PENDING:  # type: ignore[attr-defined]
        return None
    return current


_last_queued: dict[str, float] = {}
_queue_lock = threading.Lock()


def queue_after_commit(task: str, *, name: str, group: str) -> None:
    """After the current transaction commits, ask django-q2 to run `task` (at most once a second
    per process and task: the task sends everything due, so a close finalizing thousands of
    invoices queues a handful)."""

    def queue() -> None:
        now = time.monotonic()
        with _queue_lock:
            if now - _last_queued.get(task, -ENQUEUE_INTERVAL_SECONDS) < ENQUEUE_INTERVAL_SECONDS:
                return
            _last_queued[task] = now
        try:
            from django_q.tasks import async_task

            async_task(task, task_name=name, group=group)
        except Exception:  # the broker is away: the periodic task sends it within a minute
            logger.warning("could not queue %s; the periodic task will run it", task, exc_info=True)

    transaction.on_commit(queue)
