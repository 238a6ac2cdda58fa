"""One-off invoices (DESIGN §6 "Add-ons and one-off invoices"; Lago's Invoices::CreateOneOffService
and Fees::OneOffService): add-ons billed once to a customer, outside any subscription.

An invoice of kind `one_off` (Lago's invoice_type `one_off`), finalized and numbered at once:
- one `add_on` line per fee: `units` (default 1, > 0) × `unit_amount` (default the add-on's
  price), rounded once to the currency's minor unit; the line is described by the fee's
  `invoice_display_name`, else the add-on's, else its name; the fee's `description` (default
  the add-on's) is kept in its details with the add-on's id, code and name;
- then its taxes: the customer's (its tax codes, else the organization's), one line per tax on
  the sum of the fees, each fee with its share (billing.engine.adjustments.taxed);
- total = fees + taxes. Coupons, credit notes and wallets do not apply to it (DESIGN §6).
Its period starts and ends when it is created, as Lago's one-off fees do; a fee may say what it
covers (`from_datetime` ≤ `to_datetime`, both or neither: Lago's "boundaries"), which its line
shows. It is announced (`invoice.one_off_created`) and emailed like every finalized invoice.

Refused, naming the field, with nothing stored: no fees; an unknown add-on code; units not
greater than 0; a negative price; a currency other than the customer's (Lago would switch a
customer without a currency to it; here every customer has one). Lago prices a fee without
`unit_amount_cents` at the add-on's `amount_cents` whatever the add-on's currency; here an
add-on priced in another currency than the invoice's has no default price for it: the fee must
give `unit_amount_cents` (a price in cents of one currency is not a price in another).

It runs under the customer's row lock, the lock every finalization of the customer's invoices
takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from billing.engine.adjustments import taxed
from billing.engine.lines import Line, total
from billing.engine.money import PRICE_DECIMAL_PLACES, quantize_money
from billing.engine.periods import Period
from billing.engine.vocabulary import InvoiceKind, LineKind
from billing.models import AddOn, Invoice
from billing.selectors.adjustments import tax_rates
from billing.services.errors import FieldErrors
from billing.services.invoice_events import invoice_finalized
from billing.services.invoices import insert_lines
from billing.services.numbering import assign_number
from customers.models import Customer
from metering.days import local_date

# Messages are constants so tests can match them.
FEES_REQUIRED = "at least one fee is required"
CURRENCY_NOT_CUSTOMERS = "must be the customer's currency ({currency})"
UNKNOWN_ADD_ON = "unknown add-on code {code!r}"
UNITS_NOT_POSITIVE = "must be greater than 0"
TOO_PRECISE = "must have at most {places} decimal places"
PRICE_NEGATIVE = "must not be negative"
NO_PRICE_IN_CURRENCY = (
    "is required: add-on {code!r} is priced in {add_on_currency}, not {currency}; give the price in {currency}"
)
TOO_LARGE = "makes the fee too large"
BOUNDARIES = "from_datetime and to_datetime go together, from_datetime not after to_datetime"

# Amounts are stored with 16 integer digits (billing.engine.money.amount_field_kwargs).
MAX_AMOUNT = Decimal(10) ** 15


class OneOffInvoiceError(FieldErrors):
    """A one-off invoice refused; messages by field (`currency`, `fees.0.add_on_code`, …)."""


@dataclass(frozen=True)
class OneOffFee:
    """One fee of a one-off invoice, as asked for. None: not given (the defaults apply)."""

    add_on_code: str
    units: Decimal | None = None
    unit_amount: Decimal | None = None  # in the currency's major unit
    description: str | None = None
    invoice_display_name: str | None = None
    from_datetime: datetime | None = None
    to_datetime: datetime | None = None


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _fee_line(
    fee: OneOffFee, add_on: AddOn, currency: str, now: datetime, path: str, errors: dict[str, list[str]]
) -> Line | None:
    """The fee's add-on line, or None with its errors added."""
    before = len(errors)
    units = Decimal(1) if fee.units is None else fee.units
    if not units.is_finite() or units <= 0:
        errors[f"{path}.units"] = [UNITS_NOT_POSITIVE]
    elif _places(units) > PRICE_DECIMAL_PLACES:
        errors[f"{path}.units"] = [TOO_PRECISE.format(places=PRICE_DECIMAL_PLACES)]
    unit_amount = fee.unit_amount
    if unit_amount is None:
        if add_on.currency != currency:
            errors[f"{path}.unit_amount_cents"] = [
                NO_PRICE_IN_CURRENCY.format(code=add_on.code, add_on_currency=add_on.currency, currency=currency)
            ]
        unit_amount = add_on.amount
    elif not unit_amount.is_finite() or unit_amount < 0:
        errors[f"{path}.unit_amount_cents"] = [PRICE_NEGATIVE]
    elif _places(unit_amount) > PRICE_DECIMAL_PLACES:
        errors[f"{path}.unit_amount_cents"] = [TOO_PRECISE.format(places=PRICE_DECIMAL_PLACES)]
    if (fee.from_datetime is None) != (fee.to_datetime is None) or (
        fee.from_datetime is not None and fee.to_datetime is not None and fee.from_datetime > fee.to_datetime
    ):
        errors[f"{path}.from_datetime"] = [BOUNDARIES]
    if len(errors) > before:
        return None
    if units * unit_amount >= MAX_AMOUNT:  # compared before rounding, which could not hold it
        errors[f"{path}.units"] = [TOO_LARGE]
        return None
    amount = quantize_money(units * unit_amount, currency)
    description = fee.description if fee.description is not None else add_on.description
    return Line(
        kind=LineKind.ADD_ON,
        description=fee.invoice_display_name or add_on.invoice_display_name or add_on.name,
        quantity=units,
        unit_amount=unit_amount,
        amount=amount,
        period_start=fee.from_datetime or now,
        period_end=fee.to_datetime or now,
        details={
            "add_on_id": add_on.pk,
            "add_on_code": add_on.code,
            "add_on_name": add_on.name,
            "description": description,
        },
    )


def _instant(moment: datetime, tz: str) -> Period:
    """A period that is one moment: what a one-off invoice's tax lines cover."""
    day = local_date(moment, tz)
    return Period(moment, moment, moment, moment, day, day, day, day)


@transaction.atomic
def one_off_invoice_create(
    *, customer: Customer, fees: Sequence[OneOffFee], now: datetime, currency: str | None = None
) -> Invoice:
    """Bill add-ons to the customer now: a finalized, numbered `one_off` invoice (see the module
    docstring); OneOffInvoiceError with every field at fault, nothing stored."""
    customer = Customer.all_objects.select_for_update().get(pk=customer.pk)
    currency = currency or customer.currency
    errors: dict[str, list[str]] = {}
    if currency != customer.currency:
        errors["currency"] = [CURRENCY_NOT_CUSTOMERS.format(currency=customer.currency)]
        currency = customer.currency  # the fees are checked against the currency they would be in
    if not fees:
        errors["fees"] = [FEES_REQUIRED]
    add_ons = {add_on.code: add_on for add_on in AddOn.objects.filter(code__in={fee.add_on_code for fee in fees})}
    lines: list[Line] = []
    for i, fee in enumerate(fees):
        add_on = add_ons.get(fee.add_on_code)
        if add_on is None:
            errors[f"fees.{i}.add_on_code"] = [UNKNOWN_ADD_ON.format(code=fee.add_on_code)]
            continue
        line = _fee_line(fee, add_on, currency, now, f"fees.{i}", errors)
        if line is not None:
            lines.append(line)
    if errors:
        raise OneOffInvoiceError(errors)
    lines = taxed(lines, tax_rates(customer.pk), currency, _instant(now, customer.timezone))
    if total(lines) >= MAX_AMOUNT:
        raise OneOffInvoiceError({"fees": [TOO_LARGE]})
    invoice = Invoice(
        customer=customer,
        subscription=None,
        kind=InvoiceKind.ONE_OFF,
        period_start=now,
        period_end=now,
        currency=currency,
        total=total(lines),
    )
    # Numbered last thing before the INSERTs (as invoice_create): the sequence's row stays
    # locked until the commit.
    assign_number(invoice=invoice, now=now)  # saves: the INSERT
    insert_lines(invoice, lines, {})
    invoice_finalized(invoice=invoice)
    return invoice
