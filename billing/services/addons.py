"""Add-ons: every write (DESIGN §6 "Add-ons and one-off invoices"; Lago's AddOns::CreateService,
UpdateService, DestroyService).

- An add-on has a unique `code`, a `name`, an optional `invoice_display_name` and
  `description`, and a default price for one unit: `amount` (≥ 0, a whole number of the
  currency's minor unit, as Lago's `amount_cents`) in `currency` (an ISO 4217 code in use). The
  price is only a default: a one-off invoice may price each fee itself.
- Per-add-on taxes (Lago's `tax_codes`) are not part of this version: one-off invoices are taxed
  with the customer's taxes; the API refuses the field, naming it.
- Changing or deleting an add-on changes no invoice: an add-on line keeps the add-on's id, code
  and name in its details. Deleting follows Lago's destroy (the add-on is gone from the catalog;
  Lago keeps a soft-deleted row, whose code may be used again, as it may here).
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from billing.engine.money import PRICE_DECIMAL_PLACES, currency_minor_digits, quantize_money
from billing.models import AddOn
from billing.services.errors import FieldErrors
from customers.validators import INVALID_CURRENCY, validate_currency

# Messages are constants so tests can match them.
REQUIRED = "is required"
TOO_LONG = "must be at most {length} characters"
CODE_TAKEN = "is already used by another add-on"
AMOUNT_NEGATIVE = "must not be negative"
AMOUNT_PRECISION = "{currency} amounts have at most {digits} decimal places"
AMOUNT_TOO_LARGE = "is too large"

MAX_LENGTH = 255
# The price column keeps 20 integer digits.
MAX_AMOUNT = Decimal(10) ** (30 - PRICE_DECIMAL_PLACES)


class AddOnError(FieldErrors):
    """An add-on change refused; messages by field (`code`, `name`, `amount`, `currency`, …)."""


def _checked(
    *, code: str, name: str, invoice_display_name: str, amount: Decimal | None, currency: str, exclude: int | None
) -> Decimal:
    """The amount, once every field is valid; AddOnError with every field at fault otherwise."""
    errors: dict[str, list[str]] = {}
    for field, value, required in (
        ("code", code, True),
        ("name", name, True),
        ("invoice_display_name", invoice_display_name, False),
    ):
        if required and not value.strip():
            errors[field] = [REQUIRED]
        elif len(value) > MAX_LENGTH:
            errors[field] = [TOO_LONG.format(length=MAX_LENGTH)]
    if not currency:
        errors["currency"] = [REQUIRED]
    else:
        try:
            validate_currency(currency)
        except ValidationError:
            errors["currency"] = [INVALID_CURRENCY.format(value=currency)]
    if amount is None:
        errors["amount"] = [REQUIRED]
    elif not amount.is_finite() or amount.copy_abs() >= MAX_AMOUNT:
        errors["amount"] = [AMOUNT_TOO_LARGE]
    elif amount < 0:
        errors["amount"] = [AMOUNT_NEGATIVE]
    elif "currency" not in errors and amount != quantize_money(amount, currency):
        errors["amount"] = [AMOUNT_PRECISION.format(currency=currency, digits=currency_minor_digits(currency))]
    if "code" not in errors and AddOn.objects.filter(code=code).exclude(pk=exclude or 0).exists():
        errors["code"] = [CODE_TAKEN]
    if errors or amount is None:
        raise AddOnError(errors)
    return amount


def _save(add_on: AddOn) -> AddOn:
    """Save under a savepoint: a code a concurrent request took since the check is refused as the
    check would have (the unique constraint decides)."""
    try:
        with transaction.atomic():
            add_on.save()
    except IntegrityError as exc:
        if AddOn.objects.filter(code=add_on.code).exclude(pk=add_on.pk or 0).exists():
            raise AddOnError({"code": [CODE_TAKEN]}) from exc
        raise
    return add_on


@transaction.atomic
def add_on_create(
    *,
    code: str,
    name: str,
    amount: Decimal | None,
    currency: str,
    invoice_display_name: str = "",
    description: str = "",
) -> AddOn:
    """A new add-on; `amount` and `currency` are required (None, "": not given)."""
    checked = _checked(
        code=code, name=name, invoice_display_name=invoice_display_name, amount=amount, currency=currency, exclude=None
    )
    return _save(
        AddOn(
            code=code,
            name=name,
            invoice_display_name=invoice_display_name,
            description=description,
            amount=checked,
            currency=currency,
        )
    )


@transaction.atomic
def add_on_update(
    *,
    add_on: AddOn,
    code: str | None = None,
    name: str | None = None,
    amount: Decimal | None = None,
    currency: str | None = None,
    invoice_display_name: str | None = None,
    description: str | None = None,
) -> AddOn:
    """Change what is given (None: not given), under the add-on's row lock."""
    locked = AddOn.objects.select_for_update().get(pk=add_on.pk)
    locked.code = locked.code if code is None else code
    locked.name = locked.name if name is None else name
    if invoice_display_name is not None:
        locked.invoice_display_name = invoice_display_name
    locked.amount = locked.amount if amount is None else amount
    locked.currency = locked.currency if currency is None else currency
    if description is not None:
        locked.description = description
    _checked(
        code=locked.code,
        name=locked.name,
        invoice_display_name=locked.invoice_display_name,
        amount=locked.amount,
        currency=locked.currency,
        exclude=locked.pk,
    )
    return _save(locked)


@transaction.atomic
def add_on_destroy(*, add_on: AddOn) -> AddOn:
    """Delete the add-on (its invoice lines keep what they billed). Returns it as it was."""
    locked = AddOn.objects.select_for_update().get(pk=add_on.pk)
    pk = locked.pk
    locked.delete()
    locked.pk = pk  # the answer still names it, as Lago's does
    return locked
