"""Customer writes that depend on billing: create or update a customer, with the rule for when its
currency and time zone may no longer change; delete one.

One rule, for the API and the admin alike:
- the time zone is locked once the customer has usage events or subscriptions: its local days
  cut the billing periods and the maintained per-day sets of events;
- the currency is locked once the customer has subscriptions: its plans are priced in it.
Sending the current value again is not a change. The check runs under the customer's row lock,
so a form opened before the first event arrived cannot change the zone after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from billing.engine.vocabulary import CouponStatus, InvoiceStatus, PaymentStatus, SubscriptionStatus, WalletStatus
from billing.models import AppliedCoupon, Invoice, Subscription, Wallet
from billing.services.applied_coupons import applied_coupon_terminate
from billing.services.errors import FieldErrors
from billing.services.period_close_due import subscriptions_to_close
from billing.services.wallets import wallet_terminate
from customers.models import Customer
from metering.models import Event

TIMEZONE_LOCKED = (
    "cannot change once the customer has usage events or subscriptions (their days and periods are counted in it)"
)
CURRENCY_LOCKED = "cannot change once the customer has subscriptions"
HAS_LIVE_SUBSCRIPTIONS = "the customer has live (active or pending) subscriptions: {ids}; terminate them first"
HAS_UNPAID_INVOICES = "the customer has unpaid invoices: {numbers}; record their payment or void them first"
HAS_DRAFT_INVOICES = "the customer has draft invoices (ids {ids}); they are finalized when their grace period ends"
HAS_UNBILLED_SUBSCRIPTIONS = (
    "the customer has ended subscriptions whose last period is not invoiced yet: {ids}; the next close bills them"
)
LISTED = 10  # ids named in a refusal
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


def _listed(values: list[str]) -> str:
    more = f" and {len(values) - LISTED} more" if len(values) > LISTED else ""
    return ", ".join(values[:LISTED]) + more


def destroy_blockers(customer: Customer) -> dict[str, list[str]]:
    """Why the customer cannot be deleted now, by field (empty: it can)."""
    errors: dict[str, list[str]] = {}
    live = list(
        Subscription.objects.filter(
            customer=customer, status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING]
        )
        .order_by("id")
        .values_list("external_id", flat=True)
    )
    if live:
        errors["subscriptions"] = [HAS_LIVE_SUBSCRIPTIONS.format(ids=_listed(live))]
    # Ended, but a period of theirs is still to be invoiced (the next close bills it).
    unbilled = list(
        Subscription.objects.filter(pk__in=subscriptions_to_close(customer_id=customer.pk))
        .exclude(status__in=[SubscriptionStatus.ACTIVE, SubscriptionStatus.PENDING])
        .order_by("id")
        .values_list("external_id", flat=True)
    )
    if unbilled:
        errors.setdefault("subscriptions", []).append(HAS_UNBILLED_SUBSCRIPTIONS.format(ids=_listed(unbilled)))
    invoices = Invoice.objects.filter(customer=customer).order_by("id")
    unpaid = list(
        invoices.filter(status=InvoiceStatus.FINALIZED)
        .exclude(payment_status=PaymentStatus.SUCCEEDED)
        .values_list("number", flat=True)
    )
    if unpaid:
        errors["invoices"] = [HAS_UNPAID_INVOICES.format(numbers=_listed([str(n) for n in unpaid]))]
    drafts = [str(pk) for pk in invoices.filter(status=InvoiceStatus.DRAFT).values_list("pk", flat=True)]
    if drafts:
        errors.setdefault("invoices", []).append(HAS_DRAFT_INVOICES.format(ids=_listed(drafts)))
    return errors


@transaction.atomic
def customer_destroy(*, customer: Customer, now: datetime) -> Customer:
    """Delete the customer as Lago does: a soft delete (`deleted_at`), after which every lookup
    treats it as absent and its external_id may be used again; its invoices, events and
    terminated subscriptions keep pointing at the row. As Lago's, its applied coupons and
    wallets are terminated (a wallet's balance is voided).

    Refused (CustomerError) while it has live subscriptions or invoices not settled (unpaid,
    or drafts that will be finalized): deleting it would leave money nobody can bill or collect
    through the API (Lago terminates and finalizes them instead). Customer.DoesNotExist when it
    is already deleted.

    Under the customer's row lock, which subscription_create takes too: a subscription created
    at the same moment is either seen here (refused) or finds the customer gone.
    """
    locked = Customer.objects.select_for_update().filter(pk=customer.pk).first()
    if locked is None:
        raise Customer.DoesNotExist
    errors = destroy_blockers(locked)
    if errors:
        raise CustomerError(errors)
    for applied in AppliedCoupon.objects.filter(customer=locked, status=CouponStatus.ACTIVE).order_by("id"):
        applied_coupon_terminate(applied_coupon=applied, now=now)
    for wallet in Wallet.objects.filter(customer=locked, status=WalletStatus.ACTIVE).order_by("id"):
        wallet_terminate(wallet=wallet, now=now)
    locked.deleted_at = now
    locked.save(update_fields=["deleted_at", "updated_at"])
    return locked
