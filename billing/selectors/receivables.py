"""Receivables: what customers still owe on finalized invoices, and how late it is (DESIGN §6
"Payment terms and payments").

- What is due on an invoice is its total − its payments − its credit notes' offsets (as
  billing.services.payments.amount_due decides it under lock); only finalized invoices are due,
  never drafts or voided ones.
- Lateness is counted in the customer's own days: an invoice is overdue from the customer-local
  day after its `payment_due_date` (we leave the customer the whole due day), so its days
  overdue are (the customer's today − the due date), and it is "not yet due" up to 0.
- Amounts in different currencies are never added: every figure is per currency.
- Sums are exact Decimals on both databases (grouped_sums: SQLite's SUM is a float), and each
  figure is a fixed number of queries, however many invoices, customers or payments there are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Q, QuerySet

from billing.engine.money import ZERO
from billing.models import CreditNote, CreditStatus, Invoice, InvoiceStatus, Payment, PaymentStatus
from billing.selectors.dashboard import grouped_sums
from customers.models import Customer
from metering.days import local_date


@dataclass(frozen=True)
class Bucket:
    key: str
    label: str
    up_to: int | None  # the most days overdue it holds (None: no bound)


# Days past the payment due date, in the customer's time zone.
BUCKETS: tuple[Bucket, ...] = (
    Bucket("not_yet_due", "Not yet due", 0),
    Bucket("days_1_30", "1–30 days", 30),
    Bucket("days_31_60", "31–60 days", 60),
    Bucket("days_61_90", "61–90 days", 90),
    Bucket("over_90", "Over 90 days", None),
)
NOT_YET_DUE = 0  # the index of the first bucket


def days_overdue(due_date: date | None, today: date) -> int:
    """Days past the due date on the customer's `today` (0 or less: not yet due). An invoice
    finalized before due dates were kept has none and counts as not yet due."""
    return (today - due_date).days if due_date is not None else 0


def bucket_index(days: int) -> int:
    """The bucket of an invoice `days` overdue: 0 (not yet due), 1–30, 31–60, 61–90, over 90."""
    for index, bucket in enumerate(BUCKETS):
        if bucket.up_to is None or days <= bucket.up_to:
            return index
    raise AssertionError("the last bucket has no bound")  # pragma: no cover


def unsettled_invoices(invoices: QuerySet[Invoice] | None = None) -> QuerySet[Invoice]:
    """Finalized invoices not settled yet (of `invoices`, default all). The payment services keep
    `payment_status` succeeded exactly when nothing is due any more, so these are the invoices
    with something due."""
    base = invoices if invoices is not None else Invoice.objects.all()
    return base.filter(status=InvoiceStatus.FINALIZED).exclude(payment_status=PaymentStatus.SUCCEEDED)


def overdue_condition(now: datetime) -> Q:
    """Unsettled invoices past their due date in their customer's time zone (one query for the
    zones in use, which are few; the condition has one branch per zone)."""
    zones = Customer.all_objects.order_by().values_list("timezone", flat=True).distinct()
    late = Q(pk__in=[])
    for tz in zones:
        late |= Q(customer__timezone=tz, payment_due_date__lt=local_date(now, tz))
    return Q(status=InvoiceStatus.FINALIZED) & ~Q(payment_status=PaymentStatus.SUCCEEDED) & late


@dataclass(frozen=True)
class Settlement:
    """Payments and credit-note offsets per invoice id."""

    paid: dict[int, Decimal]
    offset: dict[int, Decimal]

    def due(self, invoice_id: int, total: Decimal) -> Decimal:
        return total - self.paid.get(invoice_id, ZERO) - self.offset.get(invoice_id, ZERO)


def settlements(invoices: QuerySet[Invoice]) -> Settlement:
    """Payments and offsets of these invoices, each summed exactly per invoice: two queries."""
    ids = invoices.order_by().values("pk")
    paid = grouped_sums(Payment.objects.filter(invoice__in=ids), ("invoice_id",), "amount")
    offset = grouped_sums(CreditNote.objects.filter(invoice__in=ids), ("invoice_id",), "offset_amount")
    return Settlement(
        paid={key[0]: total for key, (_rows, total) in paid.items()},
        offset={key[0]: total for key, (_rows, total) in offset.items()},
    )


# --- The aging report ---------------------------------------------------------------------------


def _zeros() -> list[Decimal]:
    return [ZERO for _ in BUCKETS]


@dataclass
class AgingRow:
    """One customer's amounts due in one currency, per bucket."""

    customer_id: int
    external_id: str
    name: str
    currency: str
    amounts: list[Decimal] = field(default_factory=_zeros)
    invoices: int = 0
    overdue_invoices: int = 0

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, ZERO)

    @property
    def overdue(self) -> Decimal:
        return self.total - self.amounts[NOT_YET_DUE]

    def add(self, due: Decimal, bucket: int) -> None:
        self.amounts[bucket] += due
        self.invoices += 1
        if bucket != NOT_YET_DUE:
            self.overdue_invoices += 1


@dataclass
class AgingTotal:
    """A currency's total row: the sum of its customers' rows."""

    currency: str
    amounts: list[Decimal] = field(default_factory=_zeros)
    invoices: int = 0
    overdue_invoices: int = 0
    customers: int = 0

    @property
    def total(self) -> Decimal:
        return sum(self.amounts, ZERO)

    @property
    def overdue(self) -> Decimal:
        return self.total - self.amounts[NOT_YET_DUE]


@dataclass(frozen=True)
class AgingReport:
    as_of: datetime
    rows: list[AgingRow]  # by currency, then customer name
    totals: dict[str, AgingTotal]  # by currency, in currency order

    def rows_in(self, currency: str) -> list[AgingRow]:
        return [row for row in self.rows if row.currency == currency]


def aging_report(*, now: datetime, invoices: QuerySet[Invoice] | None = None) -> AgingReport:
    """Amounts due per customer and currency, bucketed by days past the due date in each
    customer's time zone on `now`, with a total row per currency. Three queries: the unsettled
    invoices with their customers, then their payments and their offsets, each grouped per invoice.

    `invoices` narrows the report (e.g. to one customer's); it defaults to every invoice.
    """
    unsettled = unsettled_invoices(invoices)
    settled = settlements(unsettled)
    rows: dict[tuple[int, str], AgingRow] = {}
    todays: dict[str, date] = {}
    for pk, customer_id, external_id, name, tz, currency, total, due_date in unsettled.order_by().values_list(
        "pk",
        "customer_id",
        "customer__external_id",
        "customer__name",
        "customer__timezone",
        "currency",
        "total",
        "payment_due_date",
    ):
        due = settled.due(pk, total)
        if due <= 0:  # settled by a payment being recorded right now: nothing to chase
            continue
        if tz not in todays:
            todays[tz] = local_date(now, tz)
        row = rows.get((customer_id, currency))
        if row is None:
            row = rows[(customer_id, currency)] = AgingRow(customer_id, external_id, name, currency)
        row.add(due, bucket_index(days_overdue(due_date, todays[tz])))
    ordered = sorted(rows.values(), key=lambda r: (r.currency, (r.name or r.external_id).casefold(), r.external_id))
    return AgingReport(as_of=now, rows=ordered, totals=_totals(ordered))


def _totals(rows: Iterable[AgingRow]) -> dict[str, AgingTotal]:
    totals: dict[str, AgingTotal] = {}
    for row in rows:
        total = totals.setdefault(row.currency, AgingTotal(row.currency))
        total.amounts = [a + b for a, b in zip(total.amounts, row.amounts, strict=True)]
        total.invoices += row.invoices
        total.overdue_invoices += row.overdue_invoices
        total.customers += 1
    return dict(sorted(totals.items()))


# --- One customer's account ---------------------------------------------------------------------


@dataclass(frozen=True)
class AccountInvoice:
    invoice: Invoice
    due: Decimal | None  # None: a draft or a voided invoice, which is not due
    days_overdue: int  # > 0: overdue; 0 or less: not yet (−10: due in ten days)


@dataclass(frozen=True)
class CustomerAccount:
    """What the customer page shows of a customer's money: its latest invoices with what is due
    on each, payments and credit notes, its available credit and what it owes, per currency."""

    invoices: list[AccountInvoice]
    more_invoices: bool
    payments: list[Payment]
    more_payments: bool
    credit_notes: list[CreditNote]
    more_credit_notes: bool
    available_credit: dict[str, Decimal]
    aging: AgingReport


def customer_account(customer: Customer, *, now: datetime, limit: int = 20) -> CustomerAccount:
    """The customer's latest `limit` invoices, payments and credit notes (and whether there are
    more), its available credit (the balance of its available notes) and its aging: nine queries."""
    invoices = list(Invoice.objects.filter(customer=customer).order_by("-period_start", "-id")[: limit + 1])
    listed = invoices[:limit]
    finalized = [i.pk for i in listed if i.status == InvoiceStatus.FINALIZED]
    settled = settlements(Invoice.objects.filter(pk__in=finalized)) if finalized else Settlement({}, {})
    today = local_date(now, customer.timezone)
    rows = []
    for invoice in listed:
        invoice.customer = customer  # the page's customer: no query per row
        due = settled.due(invoice.pk, invoice.total) if invoice.status == InvoiceStatus.FINALIZED else None
        late = days_overdue(invoice.payment_due_date, today) if due is not None and due > 0 else 0
        rows.append(AccountInvoice(invoice, due, late))
    payments = list(
        Payment.objects.filter(invoice__customer=customer)
        .select_related("invoice", "created_by")
        .order_by("-paid_at", "-id")[: limit + 1]
    )
    notes = list(
        CreditNote.objects.filter(customer=customer)
        .select_related("invoice")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    available = grouped_sums(
        CreditNote.objects.filter(customer=customer, credit_status=CreditStatus.AVAILABLE, balance_amount__gt=0),
        ("currency",),
        "balance_amount",
    )
    return CustomerAccount(
        invoices=rows,
        more_invoices=len(invoices) > limit,
        payments=payments[:limit],
        more_payments=len(payments) > limit,
        credit_notes=notes[:limit],
        more_credit_notes=len(notes) > limit,
        available_credit={key[0]: total for key, (_rows, total) in sorted(available.items())},
        aging=aging_report(now=now, invoices=Invoice.objects.filter(customer=customer)),
    )
