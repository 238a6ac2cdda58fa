"""The commitments admin: the list with balances, the read-only ledger, adding and editing a
pending commitment, the "Adjust balance…" and "Cancel selected commitments" actions, and the
append-only ledger (no entry can be added, changed or deleted through the admin)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
import time_machine
from django.contrib.admin import helpers
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from billing.admin.commitments import (
    CANCEL_REFUSED,
    COMMITMENTS_ADJUSTED,
    COMMITMENTS_CANCELED,
    PENDING_NOTE,
    REASON_MISSING,
    STARTED_NOTE,
)
from billing.documents.formats import commitment_label
from billing.engine.periods import term_end
from billing.models import (
    Commitment,
    CommitmentCovers,
    CommitmentStatus,
    InvoiceKind,
    LedgerEntry,
    LedgerKind,
    Plan,
    Subscription,
)
from billing.selectors.commitments import balance
from billing.services.commitments import TERM_OVERLAPS, commitment_activate
from tests.factories import CustomerFactory, PlanFactory, SubscriptionFactory
from tests.helpers import at

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:billing_commitment_changelist"


JAN_1 = at(2026, 1, 1)


def annual_plan(**kwargs: Any) -> Plan:
    kwargs.setdefault("base_fee", Decimal("120"))
    return PlanFactory(**kwargs)


def subscription(plan: Plan | None = None, start: datetime = JAN_1, **kwargs: Any) -> Subscription:
    return SubscriptionFactory(plan=plan or annual_plan(), subscription_at=start, **kwargs)


def commitment(
    sub: Subscription, amount: str = "1440", start: datetime = JAN_1, months: int = 12, *, prepaid: bool = True
) -> Commitment:
    """A commitment of `sub`; prepaid (invoice, purchase entry, active) unless told otherwise."""
    c = Commitment.objects.create(
        subscription=sub,
        amount=Decimal(amount),
        currency=sub.plan.currency,
        term_start=start,
        term_end=term_end(start, months, sub.customer.timezone),
        months=months,
    )
    if prepaid:
        with time_machine.travel(start, tick=False):
            commitment_activate(commitment=c)
        c.refresh_from_db()
    return c


def change_url(c: Commitment) -> str:
    return reverse("admin:billing_commitment_change", args=[c.pk])


def run_action(client: Client, action: str, commitments: list[Commitment], **data: str) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, helpers.ACTION_CHECKBOX_NAME: [c.pk for c in commitments], **data},
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


class _Inputs(HTMLParser):
    """The name/value pairs a browser would submit from a form."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id, self.in_form, self.fields = form_id, False, {}
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.in_form = a.get("id") == self.form_id
        elif not self.in_form:
            return
        elif tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self.fields[a["name"]] = a.get("value") or "on"
            elif kind not in {"submit", "button", "image", "file", "reset"}:
                self.fields[a["name"]] = a.get("value") or ""
        elif tag == "select" and a.get("name"):
            self._select, self._options = a["name"], []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value") or "", "selected" in a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected]
            self.fields[self._select] = chosen[0] if chosen else (self._options[0][0] if self._options else "")
            self._select = None


def form_data(client: Client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    parser = _Inputs("commitment_form")
    parser.feed(response.content.decode())
    assert parser.fields
    return parser.fields


# --- The list -----------------------------------------------------------------------------------


def test_changelist_shows_balances_in_a_bounded_number_of_queries(admin_client: Client) -> None:
    plan = annual_plan()

    def add(n: int) -> None:
        for _ in range(n):
            sub = subscription(plan, customer=CustomerFactory(external_id=f"cust-{Commitment.objects.count():03d}"))
            c = commitment(sub, "1440", prepaid=False)
            c.status = CommitmentStatus.ACTIVE
            c.save()
            LedgerEntry.objects.create(commitment=c, kind=LedgerKind.PURCHASE, amount=Decimal("1440"))
            for _ in range(3):  # 0.10 three times: a float sum on SQLite is not exactly 0.30
                LedgerEntry.objects.create(
                    commitment=c, kind=LedgerKind.ADJUSTMENT, amount=Decimal("-0.10"), reason="Rounding"
                )

    add(10)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(reverse(CHANGELIST)).status_code == 200
    add(90)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    assert len(many) == len(few) <= 10, [q["sql"] for q in many.captured_queries]
    rows = response.context["cl"].result_list
    assert len(rows) == 100
    content = response.content.decode()
    assert content.count("1,439.70 USD") == 100  # the balance column, rounded to cents
    assert "1,440.00 USD" in content  # the amount column
    assert "cust-000" in content and "cust-099" in content


def test_changelist_lists_the_prepayment_invoice_and_filters_and_searches(admin_client: Client) -> None:
    active = commitment(subscription(customer=CustomerFactory(external_id="acme")))
    pending = commitment(
        subscription(customer=CustomerFactory(external_id="globex")), start=at(2027, 1, 1), prepaid=False
    )
    assert active.invoice is not None and active.invoice.number

    response = admin_client.get(reverse(CHANGELIST))
    content = response.content.decode()
    assert active.invoice.number in content
    assert "January 1, 2026 – December 31, 2026" in content  # first and last day of the term

    filtered = admin_client.get(reverse(CHANGELIST), {"status__exact": "pending"})
    assert [c.pk for c in filtered.context["cl"].result_list] == [pending.pk]
    found = admin_client.get(reverse(CHANGELIST), {"q": "acme"})
    assert [c.pk for c in found.context["cl"].result_list] == [active.pk]
    found = admin_client.get(reverse(CHANGELIST), {"q": pending.subscription.external_id})
    assert [c.pk for c in found.context["cl"].result_list] == [pending.pk]
    for params in ({"covers__exact": "all"}, {"auto_renew__exact": "1"}):
        assert admin_client.get(reverse(CHANGELIST), params).status_code == 200


# --- The commitment page ------------------------------------------------------------------------


def test_started_commitment_page_is_read_only_with_its_ledger(admin_client: Client, admin_user: User) -> None:
    c = commitment(subscription())
    LedgerEntry.objects.create(
        commitment=c, kind=LedgerKind.ADJUSTMENT, amount=Decimal("-40"), reason="Refund of March", created_by=admin_user
    )

    response = admin_client.get(change_url(c))

    assert response.status_code == 200
    content = response.content.decode()
    assert escape(STARTED_NOTE) in content
    assert "1,400.00 USD" in content  # the balance
    assert "Refund of March" in content and f"Prepayment {c.invoice.number}" in content
    # Nothing is editable: no inputs for the terms or the ledger, no Save, no "Add another".
    editable = ("amount", "months", "start_day", "auto_renew", "entries-0-amount", "entries-0-reason")
    for name in editable:
        assert f'name="{name}"' not in content
    assert 'name="_save"' not in content and "entries-0-DELETE" not in content
    inline = response.context["inline_admin_formsets"][0]
    assert not inline.has_add_permission and not inline.has_change_permission and not inline.has_delete_permission
    # And a forged POST changes nothing.
    response = admin_client.post(change_url(c), {"amount": "1", "months": "1", "auto_renew": ""})
    assert response.status_code == 403
    c.refresh_from_db()
    assert (c.amount, c.months, c.auto_renew) == (Decimal("1440"), 12, True)


def test_finance_staff_with_commitment_permissions_see_the_ledger() -> None:
    c = commitment(subscription())
    user = User.objects.create_user("finance", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_commitment", "change_commitment"]))
    client = Client()
    client.force_login(user)

    response = client.get(change_url(c))

    assert response.status_code == 200
    assert f"Prepayment {c.invoice.number}" in response.content.decode()


def test_pending_commitment_can_be_edited_and_its_term_is_recomputed(admin_client: Client) -> None:
    sub = subscription()
    c = commitment(sub, "1440", start=at(2027, 1, 1), prepaid=False)
    data = form_data(admin_client, change_url(c))
    assert data["amount"] == "1440" and data["start_day"] == "2027-01-01"
    data.update(amount="1200", start_day="2027-02-28", months="6")

    with time_machine.travel(at(2026, 6, 1), tick=False):
        response = admin_client.post(change_url(c), data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    c.refresh_from_db()
    assert (c.amount, c.months, c.status) == (Decimal("1200"), 6, CommitmentStatus.PENDING)
    assert (c.term_start, c.term_end) == (at(2027, 2, 28), at(2027, 8, 28))
    assert c.invoice is None and not c.entries.exists()
    assert escape(PENDING_NOTE) in admin_client.get(change_url(c)).content.decode()


# --- Adding a commitment ------------------------------------------------------------------------


def add_data(sub: Subscription, **changes: str) -> dict[str, str]:
    return {
        "subscription": str(sub.pk),
        "amount": "1440",
        "start_day": "2026-07-01",
        "months": "12",
        "covers": CommitmentCovers.BASE_FEE,
        "auto_renew": "on",
        **changes,
    }


def test_adding_a_future_commitment_leaves_it_pending(admin_client: Client) -> None:
    sub = subscription(annual_plan(currency="EUR"), customer=CustomerFactory(currency="EUR", timezone="Europe/Paris"))

    with time_machine.travel(at(2026, 6, 10), tick=False):
        response = admin_client.post(reverse("admin:billing_commitment_add"), add_data(sub))

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    c = Commitment.objects.get()
    assert c.status == CommitmentStatus.PENDING and c.invoice is None
    assert c.currency == "EUR"  # the plan's
    # Local midnights in Paris (summer time: UTC+2), twelve months apart.
    assert (c.term_start, c.term_end) == (at(2026, 6, 30, 22), at(2027, 6, 30, 22))
    assert not c.entries.exists()


def test_adding_a_commitment_that_has_started_prepays_it(admin_client: Client) -> None:
    sub = subscription()

    with time_machine.travel(at(2026, 7, 1, 9), tick=False):
        response = admin_client.post(reverse("admin:billing_commitment_add"), add_data(sub), follow=True)

    c = Commitment.objects.get()
    assert c.status == CommitmentStatus.ACTIVE
    assert c.invoice is not None and c.invoice.kind == InvoiceKind.COMMITMENT
    assert c.invoice.total == Decimal("1440.00")
    assert [(e.kind, e.amount) for e in c.entries.all()] == [(LedgerKind.PURCHASE, Decimal("1440.00"))]
    assert any(c.invoice.number in m for m in messages_of(response))


def test_adding_an_overlapping_commitment_is_refused(admin_client: Client) -> None:
    sub = subscription()
    existing = commitment(sub)

    with time_machine.travel(at(2026, 6, 10), tick=False):
        response = admin_client.post(reverse("admin:billing_commitment_add"), add_data(sub))

    assert response.status_code == 200
    error = TERM_OVERLAPS.format(commitment=commitment_label(existing), status="active")
    assert escape(error) in response.content.decode()
    assert Commitment.objects.count() == 1


# --- Actions ------------------------------------------------------------------------------------


def test_adjust_balance_asks_for_amount_and_reason_then_records_who_made_it(
    admin_client: Client, admin_user: User
) -> None:
    c = commitment(subscription())

    page = run_action(admin_client, "adjust_balance", [c])
    assert page.status_code == 200
    assert page.templates[0].name == "admin/billing/commitment/adjust_balance.html"
    assert "1,440.00 USD" in page.content.decode()  # the balance now

    response = run_action(admin_client, "adjust_balance", [c], apply="yes", amount="-100.50", reason="Service credit")

    entry = LedgerEntry.objects.get(commitment=c, kind=LedgerKind.ADJUSTMENT)
    assert (entry.amount, entry.reason, entry.created_by) == (Decimal("-100.50"), "Service credit", admin_user)
    assert balance(c) == Decimal("1339.50")
    assert COMMITMENTS_ADJUSTED[0] % {"count": 1, "amount": "-$100.50"} in messages_of(response)


@pytest.mark.parametrize(
    ("amount", "reason", "error"),
    [
        ("50", "   ", REASON_MISSING),
        ("-1440.01", "Refund", "would take the balance below zero (1440.00 USD left)"),
        ("0", "Nothing", "Give a non-zero amount"),
        ("10.001", "Too precise", "USD amounts have at most 2 decimal places."),
    ],
)
def test_invalid_adjustment_shows_the_error_and_records_nothing(
    admin_client: Client, amount: str, reason: str, error: str
) -> None:
    c = commitment(subscription())

    response = run_action(admin_client, "adjust_balance", [c], apply="yes", amount=amount, reason=reason)

    assert response.status_code == 200
    assert response.templates[0].name == "admin/billing/commitment/adjust_balance.html"
    assert escape(error) in response.content.decode()
    assert not LedgerEntry.objects.filter(kind=LedgerKind.ADJUSTMENT).exists()
    assert balance(c) == Decimal("1440.00")


def test_cancel_selected_reports_counts_and_refusals(admin_client: Client) -> None:
    first = commitment(subscription())
    second = commitment(subscription(), start=at(2027, 1, 1), prepaid=False)
    expired = commitment(subscription())
    expired.status = CommitmentStatus.EXPIRED
    expired.save()

    response = run_action(admin_client, "cancel_selected", [first, second, expired])

    assert response.status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.auto_renew) == (CommitmentStatus.CANCELED, False)
    assert second.status == CommitmentStatus.CANCELED
    shown = messages_of(response)
    assert COMMITMENTS_CANCELED[1] % {"count": 2} in shown
    assert CANCEL_REFUSED.format(commitment=commitment_label(expired), status="expired") in shown
    # The ledger stays as it was.
    assert [e.kind for e in first.entries.all()] == [LedgerKind.PURCHASE]


def test_commitments_cannot_be_bulk_deleted_and_started_ones_not_at_all(admin_client: Client) -> None:
    started = commitment(subscription())
    response = admin_client.get(reverse(CHANGELIST))
    assert "delete_selected" not in response.content.decode()
    delete_url = reverse("admin:billing_commitment_delete", args=[started.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Commitment.objects.filter(pk=started.pk).exists()


# --- The ledger is append-only ------------------------------------------------------------------


def test_ledger_entries_cannot_be_added_changed_or_deleted_in_the_admin(admin_client: Client) -> None:
    c = commitment(subscription())
    entry = c.entries.get()

    assert admin_client.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    assert admin_client.post(reverse("admin:billing_ledgerentry_add"), {"commitment": c.pk}).status_code == 403
    page = admin_client.get(reverse("admin:billing_ledgerentry_change", args=[entry.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = admin_client.post(
        reverse("admin:billing_ledgerentry_change", args=[entry.pk]), {"amount": "1", "kind": "adjustment"}
    )
    assert response.status_code == 403
    delete_url = reverse("admin:billing_ledgerentry_delete", args=[entry.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get(reverse("admin:billing_ledgerentry_changelist"))
    assert changelist.status_code == 200 and "delete_selected" not in changelist.content.decode()
    response = admin_client.post(
        reverse("admin:billing_ledgerentry_changelist"),
        {"action": "delete_selected", helpers.ACTION_CHECKBOX_NAME: [entry.pk], "post": "yes"},
    )
    entry.refresh_from_db()
    assert (entry.kind, entry.amount) == (LedgerKind.PURCHASE, Decimal("1440.00"))
    assert LedgerEntry.objects.count() == 1
