"""The invoice document: one self-contained, printable HTML page per invoice.

`invoice_context` turns an invoice into display strings; `render_invoice_html` renders them with
templates/billing/invoice.html (inline CSS, no external assets, so the file can be saved, mailed
or printed to PDF as it is).

Choices a finance reader would ask about:
- Billing details: a finalized (or paid, or void) invoice shows the snapshot taken at
  finalization (`customer_snapshot`, `seller_name`), so editing the customer later never changes
  a sent invoice; a draft shows the customer's live details and the configured seller.
- Money is formatted by billing.documents.formats (`$355.00`, `€1,234.50`, `¥1,235`). Line
  amounts are already rounded once to the currency's minor unit (ROUND_HALF_UP,
  billing.engine.money); they are quantized again there only so Babel (which rounds half-even)
  never gets to round anything.
- Unit prices and tier amounts are shown exact (`$0.012`, `$0.012` for one unit of a tier):
  each line is rounded once, its tiers are not, as DESIGN §3 prescribes.
- The billing period is shown as local days in the customer's time zone, from the first day to
  the last day inclusive (the stored bounds are half-open [start, end)).
- Usage lines are followed by their tier breakdown; tiers that priced nothing are left out.
- An invoice that belongs to no subscription says what it is instead of a plan: "One-off
  invoice" (its add-on lines, each with its description, then its taxes) or "Wallet credit
  purchase". A one-off invoice is dated, not a period: it shows no billing period.
- With taxes, the sub-total they are levied on (the lines before them) and their sum are shown
  above the total; each tax line names its rate.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from babel import Locale
from django.conf import settings
from django.template.loader import render_to_string

from billing.documents.formats import (
    LOCALE,
    format_day,
    format_line_quantity,
    format_money,
    format_price,
    format_quantity,
    tier_range_label,
)
from billing.engine.money import ZERO
from billing.engine.vocabulary import FEE_KINDS
from billing.models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, LineKind, PaymentStatus
from billing.selectors.invoices import customer_snapshot
from metering.days import local_date

DRAFT_BANNER = "DRAFT — not final"
VOID_BANNER = "VOID"
NOT_ISSUED = "Not issued yet"
# What an invoice that belongs to no subscription is, where a subscription's shows its plan.
KIND_LABELS = {InvoiceKind.ONE_OFF: "One-off invoice", InvoiceKind.CREDIT: "Wallet credit purchase"}


# --- Reading details ----------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    """A decimal from the JSON details (amounts are strings there); 0 when absent or malformed."""
    if value is None:
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return ZERO


# --- Parties ------------------------------------------------------------------------------------


def _country_name(code: str) -> str:
    return Locale.parse(LOCALE).territories.get(code.upper(), code) if code else ""


def billing_details(invoice: Invoice) -> dict[str, str]:
    """The customer's billing details: the finalization snapshot, or live fields for a draft."""
    if invoice.status != InvoiceStatus.DRAFT and invoice.customer_snapshot:
        details = {key: str(value or "") for key, value in invoice.customer_snapshot.items()}
    else:
        details = customer_snapshot(invoice)
    return {key: value or "" for key, value in details.items()}


def customer_block(details: dict[str, str]) -> dict[str, Any]:
    """The "Bill to" block: the legal name first, then the address lines a letter would carry."""
    name = details.get("name", "")
    legal_name = details.get("legal_name", "")
    city_line = " ".join(part for part in (details.get("zipcode", ""), details.get("city", "")) if part)
    if details.get("state"):
        city_line = f"{city_line}, {details['state']}" if city_line else details["state"]
    address = [
        line
        for line in (
            details.get("address_line1", ""),
            details.get("address_line2", ""),
            city_line,
            _country_name(details.get("country", "")),
        )
        if line
    ]
    return {
        "display_name": legal_name or name or details.get("external_id", ""),
        # The trading name too when the legal name differs from it ("Acme" of "Acme Corp Ltd").
        "trading_name": name if legal_name and name and name != legal_name else "",
        "external_id": details.get("external_id", ""),
        "email": details.get("email", ""),
        "tax_identification_number": details.get("tax_identification_number", ""),
        "address": address,
        "timezone": details.get("timezone", "") or "UTC",
    }


# --- Lines --------------------------------------------------------------------------------------


def tier_rows(line: InvoiceLine) -> list[dict[str, str]]:
    """The tier breakdown of a usage line; tiers that priced nothing (0 units, 0 amount) are left out."""
    rows = []
    lower: Decimal | None = None  # the previous tier's up_to: where this one starts (after it)
    for tier in line.details.get("tiers") or []:
        up_to = _decimal(tier["up_to"]) if tier.get("up_to") is not None else None
        tier_range = tier_range_label(lower, up_to)
        lower = up_to
        units = _decimal(tier.get("units"))
        amount = _decimal(tier.get("amount"))
        flat = _decimal(tier.get("flat_amount"))
        if units == 0 and amount == 0:
            continue
        rows.append(
            {
                "label": f"Tier {tier.get('position', '')}: {tier_range}",
                "units": format_quantity(units),
                "unit_price": format_price(_decimal(tier.get("unit_amount")), line.currency),
                "flat_amount": format_price(flat, line.currency) if flat else "",
                "amount": format_price(amount, line.currency),
            }
        )
    return rows


def _line_notes(line: InvoiceLine) -> list[str]:
    """What a usage line's details add to its description: the usage limit, packages, a promotion."""
    details = line.details or {}
    notes = []
    if details.get("limit_exceeded"):
        notes.append(
            f"Usage limit reached: {format_quantity(_decimal(details.get('quantity')))} measured, "
            f"{format_quantity(_decimal(details.get('billed_units')))} billed."
        )
    if details.get("packages") is not None:
        packages = int(details["packages"])
        notes.append(f"{packages} package{'s' if packages != 1 else ''}.")
    if line.kind == LineKind.ADD_ON and details.get("description"):
        notes.append(str(details["description"]))
    if line.kind == LineKind.LATE_USAGE and details.get("previously_billed_quantity") is not None:
        notes.append(
            f"Previously billed: {format_quantity(_decimal(details['previously_billed_quantity']))}; "
            f"now measured: {format_quantity(_decimal(details.get('quantity')))}."
        )
    return notes


def line_row(line: InvoiceLine) -> dict[str, Any]:
    currency = line.currency
    # A promotion line's quantity is days or units of the promotion window, which its
    # description already states ("… for 14 of 30 days"); a bare number there would mislead.
    # A tax line's description says its rate; its quantity means nothing.
    show_quantity = line.kind not in (LineKind.PROMOTION, LineKind.TAX)
    return {
        "kind": line.kind,
        "kind_display": line.get_kind_display(),
        "description": line.description,
        # A prorated fee's quantity is days / full days: "21 of 31 days" (format_line_quantity).
        "quantity": format_line_quantity(line.kind, line.quantity, line.details) if show_quantity else "",
        "unit_price": format_price(line.unit_amount, currency) if line.unit_amount is not None else "",
        "amount": format_money(line.amount, currency),
        "is_credit": line.amount < 0,
        "tiers": tier_rows(line) if line.kind in {LineKind.USAGE, LineKind.LATE_USAGE} else [],
        "notes": _line_notes(line),
    }


# --- The document -------------------------------------------------------------------------------


def invoice_context(invoice: Invoice) -> dict[str, Any]:
    """Everything the invoice template shows, as display strings."""
    details = billing_details(invoice)
    customer = customer_block(details)
    tz = customer["timezone"]
    first_day = local_date(invoice.period_start, tz)
    last_day = local_date(invoice.period_end, tz) - timedelta(days=1)
    lines = list(invoice.lines.order_by("position", "id"))
    taxes = [line for line in lines if line.kind == LineKind.TAX]
    fees = [line for line in lines if line.kind in FEE_KINDS]
    before_taxes = sum((line.amount for line in lines[: lines.index(taxes[0])]), ZERO) if taxes else ZERO
    subscription = invoice.subscription
    plan = subscription.plan if subscription is not None else None
    is_draft = invoice.status == InvoiceStatus.DRAFT
    is_void = invoice.status == InvoiceStatus.VOIDED
    status_display = invoice.get_status_display()
    if invoice.payment_status == PaymentStatus.SUCCEEDED and invoice.paid_at is not None and not is_void:
        status_display = f"Paid on {format_day(local_date(invoice.paid_at, tz))}"
    elif is_void and invoice.voided_at is not None:
        status_display = f"Void since {format_day(local_date(invoice.voided_at, tz))}"
    return {
        "invoice": invoice,
        "number": invoice.number or "DRAFT",
        "title": f"Invoice {invoice.number}" if invoice.number else "Draft invoice",
        "status": invoice.status,
        "status_display": status_display,
        "is_draft": is_draft,
        "is_void": is_void,
        "draft_banner": DRAFT_BANNER if is_draft else "",
        "void_banner": VOID_BANNER if is_void else "",
        "void_reason": invoice.void_reason if is_void else "",
        "seller_name": invoice.seller_name or settings.BILLING_SELLER_NAME,
        "customer": customer,
        "issue_date": format_day(invoice.issued_on) if invoice.issued_on else NOT_ISSUED,
        "due_date": format_day(invoice.payment_due_date) if invoice.payment_due_date else "",
        # A one-off invoice is dated, not a period (it starts and ends when it is made).
        "has_period": invoice.period_start < invoice.period_end,
        "period_first_day": format_day(first_day),
        "period_last_day": format_day(last_day),
        "timezone": tz,
        "currency": invoice.currency,
        "invoice_type": invoice.get_kind_display(),
        "kind_label": KIND_LABELS.get(InvoiceKind(invoice.kind), ""),
        "items": ", ".join(dict.fromkeys(line.description for line in fees)),
        "subscription_external_id": subscription.external_id if subscription is not None else "",
        "plan_name": plan.name if plan is not None else "",
        "plan_code": plan.code if plan is not None else "",
        "lines": [line_row(line) for line in lines],
        "has_tiers": any(line.details.get("tiers") for line in lines),
        # With taxes, the amount they are levied on and their sum are shown above the total.
        "sub_total": format_money(before_taxes, invoice.currency) if taxes else "",
        "taxes_total": format_money(sum((line.amount for line in taxes), ZERO), invoice.currency) if taxes else "",
        "total": format_money(invoice.total, invoice.currency),
    }


def render_invoice_html(invoice: Invoice) -> str:
    return render_to_string("billing/invoice.html", invoice_context(invoice))
