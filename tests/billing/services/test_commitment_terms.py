"""billing.services.commitments creates every commitment (the admin's, the plan's default, a
renewal) and checks its term the same way on each path, under the subscription's lock."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connections

from billing.documents.formats import commitment_label
from billing.engine.vocabulary import CommitmentCovers, CommitmentStatus, SubscriptionStatus
from billing.models import Commitment, Subscription
from billing.services.commitments import (
    AMOUNT_PRECISION,
    STARTS_BEFORE_SUBSCRIPTION,
    SUBSCRIPTION_TERMINATED,
    TERM_OVERLAPS,
    TERM_TAKEN,
    CommitmentError,
    commitment_activate,
    commitment_create,
    commitment_update,
    process_commitments,
)
from billing.services.period_close import close_periods
from tests.conftest import using_postgres
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


def subscription(**kwargs: object) -> Subscription:
    return SubscriptionFactory(
        customer=CustomerFactory(), plan=PlanFactory(base_fee=Decimal("120")), subscription_at=JAN_1, **kwargs
    )


def create(sub: Subscription, start: date, *, amount: str = "1440", months: int = 12, **kwargs: object) -> Commitment:
    return commitment_create(
        subscription=sub,
        amount=Decimal(amount),
        start_day=start,
        months=months,
        covers=CommitmentCovers.BASE_FEE,
        auto_renew=bool(kwargs.get("auto_renew", True)),
    )


@pytest.mark.django_db
def test_a_term_is_computed_from_its_first_local_day_and_months() -> None:
    sub = subscription()
    c = create(sub, date(2026, 1, 31), months=1)
    assert (c.term_start, c.term_end, c.status, c.currency) == (
        datetime(2026, 1, 31, tzinfo=UTC),
        datetime(2026, 2, 28, tzinfo=UTC),
        CommitmentStatus.PENDING,
        "USD",
    )


@pytest.mark.django_db
def test_an_overlapping_term_is_refused_naming_the_one_it_overlaps() -> None:
    sub = subscription()
    first = create(sub, date(2026, 1, 1))
    with pytest.raises(CommitmentError) as refused:
        create(sub, date(2026, 6, 1))
    assert refused.value.field == "start_day"
    assert refused.value.message == TERM_OVERLAPS.format(
        commitment=commitment_label(first), status="pending (term not started)"
    )
    assert Commitment.objects.count() == 1


@pytest.mark.django_db
def test_a_second_term_on_the_same_day_is_refused_even_if_the_first_was_canceled() -> None:
    sub = subscription()
    first = create(sub, date(2026, 3, 1))
    first.status = CommitmentStatus.CANCELED
    first.save()
    with pytest.raises(CommitmentError) as refused:
        create(sub, date(2026, 3, 1))
    assert refused.value.message == TERM_TAKEN.format(subscription=sub.external_id, day="2026-03-01")


@pytest.mark.django_db
def test_a_term_on_a_terminated_subscription_or_before_it_starts_is_refused() -> None:
    ended = subscription(status=SubscriptionStatus.TERMINATED, terminated_at=datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(CommitmentError) as refused:
        create(ended, date(2026, 1, 15))
    assert refused.value.message == SUBSCRIPTION_TERMINATED.format(subscription=ended.external_id)
    with pytest.raises(CommitmentError) as refused:
        create(subscription(), date(2025, 12, 31))
    assert refused.value.message == STARTS_BEFORE_SUBSCRIPTION.format(day="2026-01-01")


@pytest.mark.django_db
def test_an_amount_finer_than_the_minor_unit_is_refused() -> None:
    with pytest.raises(CommitmentError) as refused:
        create(subscription(), date(2026, 1, 1), amount="1440.005")
    assert (refused.value.field, refused.value.message) == ("amount", AMOUNT_PRECISION.format(currency="USD", digits=2))


@pytest.mark.django_db
def test_only_a_pending_commitment_changes_terms() -> None:
    sub = subscription()
    c = create(sub, date(2026, 1, 1))
    changed = commitment_update(
        commitment=c, amount=Decimal("1200"), start_day=date(2026, 2, 1), months=6, covers="all", auto_renew=False
    )
    assert (changed.amount, changed.term_end, changed.covers) == (
        Decimal("1200"),
        datetime(2026, 8, 1, tzinfo=UTC),
        "all",
    )
    commitment_activate(commitment=changed)
    with pytest.raises(CommitmentError):
        commitment_update(
            commitment=changed,
            amount=Decimal("1"),
            start_day=date(2026, 2, 1),
            months=6,
            covers="all",
            auto_renew=False,
        )


@pytest.mark.django_db
def test_a_renewal_that_would_take_the_day_of_another_term_is_reported_not_made() -> None:
    sub = subscription()
    ending = create(sub, date(2026, 1, 1), months=1)
    commitment_activate(commitment=ending)
    # A term set up by hand on the renewal's first day, then canceled: its day stays taken.
    by_hand = create(sub, date(2026, 2, 1), months=12)
    by_hand.status = CommitmentStatus.CANCELED
    by_hand.save()
    close_periods(now=datetime(2026, 2, 1, 0, 5, tzinfo=UTC))  # the term's last period is invoiced
    report = process_commitments(today=date(2026, 2, 1))
    assert not report.renewed and not report.errors
    expected = TERM_TAKEN.format(subscription=sub.external_id, day="2026-02-01")
    assert report.waiting == [f"{commitment_label(ending)}: not renewed: {expected}"]
    assert set(Commitment.objects.values_list("pk", flat=True)) == {ending.pk, by_hand.pk}
    assert Commitment.objects.get(pk=ending.pk).status == CommitmentStatus.EXPIRED


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not using_postgres(), reason="concurrent writers need PostgreSQL row locks")
def test_two_overlapping_terms_created_at_once_make_one_commitment() -> None:
    sub = subscription()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def add(start: date) -> None:
        try:
            barrier.wait()
            create(sub, start)
            outcomes.append("created")
        except CommitmentError:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=add, args=(day,)) for day in (date(2026, 1, 1), date(2026, 2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created", "refused"]
    assert Commitment.objects.filter(subscription=sub).count() == 1
