"""The finance roles: two permission groups, defined here and written by `manage.py setup_roles`.

- `Finance`: manages billing: add, change, delete and view customers, API keys, subscriptions,
  plans with their charges and tiers, promotions, billable metrics, commitments and invoices;
  records payments and issues credit notes (add; a credit note's change is marking its refund
  done or voiding its credit; neither is ever deleted, and a payment never changes);
  views what is only ever written by the system (usage events, commitment ledger entries,
  invoice lines, invoice emails, the change history of the catalog and commitments); views and changes the
  django-q2 schedules (e.g. to pause the hourly period close); manages webhook endpoints (their
  signing key is shown to those who may change them) and resends webhook deliveries (a
  delivery's change is "Resend"; deliveries are written by the outbox, never added or deleted).
  Manages usage alerts and their thresholds; views the alerts they triggered (written by
  check_alerts). Creates wallets, tops them up, voids their credits and terminates them (a
  wallet's change); views their transactions (written by the wallet services).
  Manages taxes and add-ons, sets customers' tax codes, and bills add-ons on one-off invoices.
  Manages coupons (a coupon that was applied is terminated, not deleted) and applies them to
  customers (an applied coupon's change is terminating it; never deleted).
- `Finance read-only`: the view permission on every one of those, nothing else. The admins are
  written so that a view permission shows everything and changes nothing: every action declares
  the permission it needs (`@admin.action(permissions=[...])`) and every custom admin page checks
  it (tests/billing/admin/test_roles.py proves both for every registered model).

Neither group reaches the users, groups, task results or the task queue: task results stay
out because django-q2's own admin offers "Resubmit selected tasks to queue" to anyone who can
see them (its action declares no permission).

ensure_roles() is idempotent and runs on every start: each group ends up with exactly the
permissions listed here, so a permission granted by hand to one of these groups is taken back on
the next start. Give people extra rights with a group of your own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Model, Q

FINANCE = "Finance"
FINANCE_READ_ONLY = "Finance read-only"

# Error messages are constants so tests can match them.
PERMISSIONS_MISSING = "Permissions missing from the database (run `manage.py migrate` first): {missing}"

# (app label, model name): the models finance staff manage.
MANAGED_MODELS: tuple[tuple[str, str], ...] = (
    ("customers", "customer"),
    ("customers", "apikey"),
    ("billing", "subscription"),
    ("billing", "plan"),
    ("billing", "charge"),
    ("billing", "tier"),
    ("billing", "promotion"),
    ("metering", "billablemetric"),
    ("billing", "commitment"),
    ("billing", "invoice"),
    ("billing", "webhookendpoint"),
    ("billing", "alert"),  # usage alerts, with their thresholds inline
    ("billing", "alertthreshold"),
    ("billing", "tax"),  # through billing.services.taxes; a customer's tax codes are a change of the customer
    ("billing", "addon"),  # through billing.services.addons; a one-off invoice needs add_invoice
    ("billing", "coupon"),  # through billing.services.coupons; an applied one is never deleted (PROTECT)
)
# Money recorded by finance through the services, never edited in place or deleted: (app label,
# model name, the actions finance may take on it).
RECORDED_MODELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("billing", "creditnote", ("add", "change", "view")),
    ("billing", "payment", ("add", "view")),
    # Written by the webhook outbox; its change is "Resend" (billing.admin.webhook_deliveries).
    ("billing", "webhookdelivery", ("change", "view")),
    # Created, topped up, voided and terminated through billing.services.wallets; never deleted
    # (its transactions are its history).
    ("billing", "wallet", ("add", "change", "view")),
    # Applied through billing.services.applied_coupons; its change is terminating it; never
    # deleted (the invoices that used it name it).
    ("billing", "appliedcoupon", ("add", "change", "view")),
)
# Written only by the services (ingestion, period close, drawdowns, …): viewed, never edited.
VIEWED_MODELS: tuple[tuple[str, str], ...] = (
    ("metering", "event"),
    ("billing", "ledgerentry"),
    ("billing", "invoiceline"),
    ("billing", "triggeredalert"),  # written by check_alerts
    ("billing", "invoiceemail"),  # resent by the invoice admin's action, which needs change_invoice
    ("billing", "wallettransaction"),  # a wallet's movements, written by billing.services.wallets
)
# The django-q2 schedules (period close, commitment processing): Finance may pause or retime them.
SCHEDULE_MODEL = ("django_q", "schedule")

FULL_ACTIONS = ("add", "change", "delete", "view")


@dataclass(frozen=True)
class RoleResult:
    name: str
    created: bool
    permissions: int
    changed: bool


def history_models(models: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The django-simple-history models recording changes to `models` (e.g. billing.historicalplan)."""
    wanted = set(models)
    found: list[tuple[str, str]] = []
    for model in apps.get_models():
        # Historical models carry the model they record as `instance_type`.
        instance_type: type[Model] | None = getattr(model, "instance_type", None)
        if instance_type is None or not hasattr(model, "history_object"):
            continue
        if (instance_type._meta.app_label, instance_type._meta.model_name) in wanted:
            # A registered model has its model_name (the stub allows None, as before registration).
            found.append((model._meta.app_label, cast(str, model._meta.model_name)))
    return sorted(found)


def role_permissions() -> dict[str, list[tuple[str, str]]]:
    """Each role's permissions as (app label, codename), e.g. ("billing", "change_invoice")."""
    recorded = history_models([*MANAGED_MODELS, *VIEWED_MODELS])
    full = [(app, f"{action}_{model}") for app, model in MANAGED_MODELS for action in FULL_ACTIONS]
    full += [(app, f"{action}_{model}") for app, model, actions in RECORDED_MODELS for action in actions]
    viewed = [(app, f"view_{model}") for app, model in [*VIEWED_MODELS, *recorded]]
    schedule_app, schedule = SCHEDULE_MODEL
    finance = [*full, *viewed, (schedule_app, f"view_{schedule}"), (schedule_app, f"change_{schedule}")]
    read_only = [(app, codename) for app, codename in finance if codename.startswith("view_")]
    return {FINANCE: sorted(finance), FINANCE_READ_ONLY: sorted(read_only)}


def _permissions(wanted: list[tuple[str, str]]) -> list[Permission]:
    condition = Q(pk__in=[])
    for app_label, codename in wanted:
        condition |= Q(content_type__app_label=app_label, codename=codename)
    found = {
        (p.content_type.app_label, p.codename): p
        for p in Permission.objects.filter(condition).select_related("content_type")
    }
    missing = [f"{app}.{codename}" for app, codename in wanted if (app, codename) not in found]
    if missing:
        raise RuntimeError(PERMISSIONS_MISSING.format(missing=", ".join(missing)))
    return [found[key] for key in wanted]


@transaction.atomic
def ensure_roles() -> list[RoleResult]:
    """Create the finance groups, or bring their permissions back to the definition. Idempotent."""
    roles = role_permissions()
    # Permissions are created after `migrate`; creating any missing ones here too keeps the
    # command usable on a database migrated with post_migrate signals inhibited (e.g. a flush).
    for label in sorted({app for wanted in roles.values() for app, _codename in wanted}):
        create_permissions(apps.get_app_config(label), verbosity=0)
    results = []
    for name, wanted in roles.items():
        permissions = _permissions(wanted)
        # The name is unique, so two processes starting at once share one group; the row lock
        # then makes the second wait for the first's permissions instead of inserting them twice.
        group, created = Group.objects.get_or_create(name=name)
        group = Group.objects.select_for_update().get(pk=group.pk)
        current = set(group.permissions.values_list("pk", flat=True))
        target = {p.pk for p in permissions}
        if current != target:
            group.permissions.set(permissions)
        results.append(RoleResult(name=name, created=created, permissions=len(target), changed=current != target))
    return results
