"""Taxes and a customer's tax codes: every write (DESIGN §6 "Taxes"; Lago's Taxes::CreateService,
UpdateService, DestroyService and Customers::ApplyTaxesService).

- A tax has a unique `code`, a `name` and a `rate` in percent (0–100, at most 4 decimal places,
  as the column keeps them). `applied_to_organization` taxes apply to every customer without
  tax codes of its own; a customer's codes replace them for that customer
  (billing.selectors.adjustments.tax_rates).
- Changing or deleting a tax changes no invoice that is final: each tax line keeps the tax's
  id, code, name and rate in its details, so finalized invoices, their documents and credit
  notes read nothing from the tax row. Drafts take the taxes as they are when they are next
  computed (every close run, and again at finalization), as Lago refreshes them.
- Deleting a tax follows Lago's destroy: it is taken off the customers that had it (who then
  fall back to the organization's taxes, if they have no other code) and the row goes. Lago
  keeps a soft-deleted row; here the code may be used again at once, which is what Lago allows
  too (its unique index ignores deleted taxes). Nothing refers to a tax row but those customer
  links, so nothing of the history is lost, and there is nothing to refuse.
- A customer's tax codes are replaced as a whole (Lago's `tax_codes`: the list sent is the
  list kept; an empty list clears them); an unknown code refuses the change, naming
  `tax_codes`, and nothing is stored. It runs under the customer's row lock, the lock an
  invoice of the customer is finalized under.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.db import IntegrityError, transaction

from billing.models import CustomerTax, Tax
from billing.services.errors import FieldErrors
from customers.models import Customer

# Messages are constants so tests can match them.
REQUIRED = "is required"
TOO_LONG = "must be at most {length} characters"
CODE_TAKEN = "is already used by another tax"
RATE_NOT_A_PERCENTAGE = "must be a percentage from 0 to 100"
RATE_PRECISION = "must have at most 4 decimal places"
UNKNOWN_TAX_CODES = "unknown tax code(s): {codes}"

HUNDRED = Decimal(100)
RATE_PLACES = 4
MAX_LENGTH = 255


class TaxError(FieldErrors):
    """A tax change refused; messages by field (`code`, `name`, `rate`, `tax_codes`)."""


def _text_errors(value: str | None, field: str, errors: dict[str, list[str]]) -> None:
    if value is None or not value.strip():
        errors[field] = [REQUIRED]
    elif len(value) > MAX_LENGTH:
        errors[field] = [TOO_LONG.format(length=MAX_LENGTH)]


def _rate_errors(rate: Decimal | None, errors: dict[str, list[str]]) -> None:
    if rate is None:
        errors["rate"] = [REQUIRED]
    elif not rate.is_finite() or rate < 0 or rate > HUNDRED:
        errors["rate"] = [RATE_NOT_A_PERCENTAGE]
    elif rate != rate.quantize(Decimal(1).scaleb(-RATE_PLACES)):
        errors["rate"] = [RATE_PRECISION]


def _checked(*, code: str, name: str, rate: Decimal | None, exclude: int | None) -> Decimal:
    """The rate, once every field is valid; TaxError with every field at fault otherwise."""
    errors: dict[str, list[str]] = {}
    _text_errors(code, "code", errors)
    _text_errors(name, "name", errors)
    _rate_errors(rate, errors)
    if "code" not in errors and Tax.objects.filter(code=code).exclude(pk=exclude or 0).exists():
        errors["code"] = [CODE_TAKEN]
    if errors or rate is None:
        raise TaxError(errors)
    return rate


def _save(tax: Tax) -> Tax:
    """Save under a savepoint: a code taken by a concurrent request since the check is refused
    as the check would have (the unique constraint decides), not a 500."""
    try:
        with transaction.atomic():
            tax.save()
    except IntegrityError as exc:
        if Tax.objects.filter(code=tax.code).exclude(pk=tax.pk or 0).exists():
            raise TaxError({"code": [CODE_TAKEN]}) from exc
        raise
    return tax


@transaction.atomic
def tax_create(
    *,
    code: str,
    name: str,
    rate: Decimal | None,
    description: str = "",
    applied_to_organization: bool = False,
) -> Tax:
    checked = _checked(code=code, name=name, rate=rate, exclude=None)
    tax = Tax(
        code=code,
        name=name,
        rate=checked,
        description=description,
        applied_to_organization=applied_to_organization,
    )
    return _save(tax)


@transaction.atomic
def tax_update(
    *,
    tax: Tax,
    code: str | None = None,
    name: str | None = None,
    rate: Decimal | None = None,
    description: str | None = None,
    applied_to_organization: bool | None = None,
) -> Tax:
    """Change what is given (None: not given), under the tax's row lock. A new rate applies to
    invoices computed from now on; finalized ones keep the rate they were taxed at."""
    locked = Tax.objects.select_for_update().get(pk=tax.pk)
    locked.rate = _checked(
        code=locked.code if code is None else code,
        name=locked.name if name is None else name,
        rate=locked.rate if rate is None else rate,
        exclude=locked.pk,
    )
    if code is not None:
        locked.code = code
    if name is not None:
        locked.name = name
    if description is not None:
        locked.description = description
    if applied_to_organization is not None:
        locked.applied_to_organization = applied_to_organization
    return _save(locked)


@transaction.atomic
def tax_destroy(*, tax: Tax) -> Tax:
    """Delete the tax, taking it off the customers that had it (see the module docstring).
    Returns the tax as it was, for the answer."""
    locked = Tax.objects.select_for_update().get(pk=tax.pk)
    CustomerTax.objects.filter(tax=locked).delete()
    pk = locked.pk
    locked.delete()
    locked.pk = pk  # the answer still names it, as Lago's does
    return locked


def taxes_by_code(codes: Sequence[str]) -> list[Tax]:
    """The taxes with these codes, in the order given (each once); TaxError naming `tax_codes`
    when one is unknown."""
    wanted = list(dict.fromkeys(codes))
    found = {tax.code: tax for tax in Tax.objects.filter(code__in=wanted)}
    unknown = [code for code in wanted if code not in found]
    if unknown:
        raise TaxError({"tax_codes": [UNKNOWN_TAX_CODES.format(codes=", ".join(unknown))]})
    return [found[code] for code in wanted]


@transaction.atomic
def customer_taxes_set(*, customer: Customer, tax_codes: Sequence[str]) -> list[Tax]:
    """Replace the customer's tax codes with `tax_codes` (empty: none; the organization's taxes
    apply again). Returns the customer's taxes."""
    Customer.all_objects.select_for_update().filter(pk=customer.pk).first()
    taxes = taxes_by_code(tax_codes)
    keep = {tax.pk for tax in taxes}
    CustomerTax.objects.filter(customer=customer).exclude(tax_id__in=keep).delete()
    have = set(CustomerTax.objects.filter(customer=customer).values_list("tax_id", flat=True))
    CustomerTax.objects.bulk_create([CustomerTax(customer=customer, tax=tax) for tax in taxes if tax.pk not in have])
    return sorted(taxes, key=lambda tax: tax.code)
