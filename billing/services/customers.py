"""Customer writes that depend on billing: create or update a customer, with the rule for when its
currency and time zone may no longer change.

One rule, for the API and the admin alike:
- the time zone is locked once the customer has usage events or subscriptions: its local days
  cut the billing periods and the maintained per-day sets of events;
- the currency is locked once the customer has subscriptions: its plans are priced in it.
Sending the current value again is not a change. The check runs under the customer's row lock,
so a form opened before the first event arrived cannot change the zone after it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from billing.models import Subscription
from billing.services.errors import FieldErrors
from customers.models import Customer
from metering.models import Event

TIMEZONE_LOCKED = (
    "cannot change once the customer has usage events or subscriptions (their days and periods are counted in it)"
)
CURRENCY_LOCKED = "cannot change once the customer has subscriptions"
# The text fields a create or update may set (besides external_id); None means "not given".
TEXT_FIELDS = (
    "name",
    "firstname",
    "lastname",
    "customer_type",
    "email",
    "phone",
    "url",
    "logo_url",
    "currency",
    "timezone",
    "legal_name",
    "legal_number",
    "tax_identification_number",
    "address_line1",
    "address_line2",
    "city",
    "zipcode",
    "state",
    "country",
)
FIELDS = (
    *TEXT_FIELDS,
    "net_payment_term",
    "invoice_grace_period",
    "document_locale",
    "metadata",
    "shipping_address",
)


class CustomerError(FieldErrors):
    """The change is refused; `errors` are messages by field, as the API returns them."""


def locked_fields(customer: Customer) -> dict[str, str]:
    """The fields that may no longer change, each with the reason."""
    if customer.pk is None:
        # django-stubs types an AutoField pk as int, yet it is None until the row is saved.
        return {}  # type: ignore[unreachable]
    has_subscriptions = Subscription.objects.filter(customer=customer).exists()
    locked = {}
    if has_subscriptions or Event.objects.filter(customer=customer).exists():
        locked["timezone"] = TIMEZONE_LOCKED
    if has_subscriptions:
        locked["currency"] = CURRENCY_LOCKED
    return locked


def _apply(customer: Customer, changes: dict[str, Any]) -> None:
    """Set the given fields; refuse a change to a locked one (CustomerError)."""
    changed = {
        field: value for field, value in changes.items() if value is not None and value != getattr(customer, field)
    }
    locked = locked_fields(customer) if {"currency", "timezone"} & changed.keys() else {}
    errors = {field: [reason] for field, reason in locked.items() if field in changed}
    if errors:
        raise CustomerError(errors)
    for field, value in changed.items():
        setattr(customer, field, value.upper() if field == "country" else value)


@transaction.atomic
def customer_upsert(*, external_id: str, changes: dict[str, Any]) -> tuple[Customer, bool]:
    """Create the customer, or update the one with this external_id (as Lago's POST /customers).

    `changes`: validated values by field (FIELDS); None means not given. Returns the customer and
    whether it was created.
    """
    customer = Customer.objects.select_for_update().filter(external_id=external_id).first()
    created = customer is None
    if customer is None:
        customer = Customer(external_id=external_id)
    _apply(customer, {field: changes.get(field) for field in FIELDS})
    customer.save()
    return customer, created


@transaction.atomic
def customer_update(*, customer: Customer, changes: dict[str, Any]) -> Customer:
    """Change fields of an existing customer (the admin's form), under its row lock."""
    stored = Customer.objects.select_for_update().get(pk=customer.pk)
    _apply(stored, changes)
    stored.save()
    return stored
