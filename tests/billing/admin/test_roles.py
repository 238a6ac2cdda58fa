"""The finance roles (billing.services.roles): `Finance` manages billing, `Finance read-only` sees
everything and changes nothing.

The admin checks are generic: they run for every model in the admin site's registry, every
action each ModelAdmin declares and every custom page its get_urls() adds, so an admin added
later is checked without a new test. A read-only user must get 403 on every add, change (POST)
and delete page, be offered no action, never be shown a link that refuses it, and leave the
database exactly as it was whatever it posts. A Finance user must be offered every action and be
able to run it.

The data is built by the services, as in production: the shipped catalog, subscriptions to
`team` and `team-annual` (with its prepaid commitment), usage events, and invoices from closing
periods (one finalized, two drafts).
"""

from __future__ import annotations

import html
import re
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse

from billing.management.commands.setup_schedules import ensure_schedules
from billing.models import (
    Commitment,
    CommitmentStatus,
    CreditNote,
    CreditNoteReason,
    CreditStatus,
    DeliveryStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    LineKind,
    PaymentStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
    WebhookDelivery,
    WebhookEndpoint,
)
from billing.selectors.credit_notes import fee_lines
from billing.services.addons import add_on_create
from billing.services.alerts import AlertInput, ThresholdInput, alert_create, check_alerts
from billing.services.applied_coupons import applied_coupon_create
from billing.services.coupons import CouponFields, coupon_create
from billing.services.credit_notes import credit_note_create
from billing.services.one_off_invoices import OneOffFee, one_off_invoice_create
from billing.services.payments import payment_create
from billing.services.period_close import close_periods
from billing.services.roles import FINANCE, FINANCE_READ_ONLY, PERMISSIONS_MISSING, ensure_roles, role_permissions
from billing.services.subscriptions import subscription_create
from billing.services.taxes import customer_taxes_set, tax_create
from billing.services.wallets import wallet_create
from billing.services.webhooks import deliver_due, signing_key, webhook_endpoint_create
from customers.models import ApiKey, Customer
from customers.services import api_key_create
from metering.ingest import store_events
from metering.models import BillableMetric
from metering.validation import Owner, ValidEvent, payload_hash
from tests.billing.services.webhook_receiver import Receiver, webhook_receiver

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
CLOSED_AT = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
AFTER_GRACE = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # February's 48 hours of grace are over

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]

# What finance staff see: every admin of these apps, and the django-q2 schedules.
FINANCE_APPS = {"customers", "metering", "billing"}
FINANCE_EXTRA_MODELS = {"django_q.Schedule"}
# Tables a read-only user must leave untouched (sessions are left out: logging in writes one).
WATCHED_APPS = ("customers", "metering", "billing", "django_q", "sequences", "admin", "auth", "simple_history")
# The admin's own pages; anything else in a ModelAdmin's get_urls() is a custom page.
STANDARD_VIEWS = {"changelist", "add", "history", "delete", "change"}
# Posted with every action, so actions with a confirmation step (void, adjust) run to the end.
ACTION_EXTRA = {"apply": "1", "post": "yes", "reason": "roles test", "amount": "10"}
# A crawl of the admin stops after this many pages (the test data gives about 150).
CRAWL_LIMIT = 600

REGISTRY: list[tuple[type[Model], admin.ModelAdmin]] = sorted(
    admin.site._registry.items(), key=lambda item: item[0]._meta.label
)


def in_finance_scope(model: type[Model]) -> bool:
    return model._meta.app_label in FINANCE_APPS or model._meta.label in FINANCE_EXTRA_MODELS


FINANCE_ADMINS = [(model, model_admin) for model, model_admin in REGISTRY if in_finance_scope(model)]


def _action_cases() -> list[Any]:
    cases = []
    for model, model_admin in FINANCE_ADMINS:
        for _func, name, _description in model_admin._get_base_actions():
            cases.append(pytest.param(model, name, id=f"{model._meta.label}.{name}"))
    return cases


def _custom_views() -> list[Any]:
    """Every named URL a ModelAdmin adds to the admin's own five pages (document, audit, …)."""
    cases = []
    for model, model_admin in REGISTRY:
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        standard = {prefix + view for view in STANDARD_VIEWS}
        for pattern in model_admin.get_urls():
            if isinstance(pattern, URLPattern) and pattern.name and pattern.name not in standard:
                cases.append(pytest.param(model, pattern, id=pattern.name))
    return cases


ACTIONS = _action_cases()
CUSTOM_VIEWS = _custom_views()


# --- Data ---------------------------------------------------------------------------------------


def send_mtu(customer: Customer, users: list[str], *, at: datetime, prefix: str) -> None:
    """Store one `mtu` event per user, through the service the events API uses."""
    metric = BillableMetric.objects.get(code="mtu")
    owner = Owner(customer.pk, customer.timezone, customer.external_id)
    store_events(
        [
            ValidEvent(
                owner=owner,
                metric=metric,
                transaction_id=f"{prefix}-{i}",
                timestamp=at,
                properties={"user_id": user},
                value=None,
                distinct=user,
                payload_hash=payload_hash(metric.code, at.isoformat(), {"user_id": user}),
            )
            for i, user in enumerate(users)
        ],
        received_at=at,
    )


@pytest.fixture
def webhook_sink() -> Iterator[Receiver]:
    """A real HTTP receiver for the world's webhook endpoint."""
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def world(settings: Any, webhook_sink: Receiver) -> dict[str, Any]:
    """The catalog, schedules, roles, two customers with subscriptions, events, a prepaid
    commitment and its ledger, and period invoices: Globex's January (finalized) and February
    (draft), Acme's February (draft); a webhook endpoint, to which what they announced was sent."""
    settings.BILLING_GRACE_PERIOD_HOURS = 48  # February closes as drafts on March 1
    call_command("load_catalog", stdout=StringIO())
    ensure_schedules()
    ensure_roles()
    webhook_endpoint_create(webhook_url=webhook_sink.url, name="ops")
    team = Plan.objects.current().get(code="team")
    annual = Plan.objects.current().get(code="team-annual")
    acme = Customer.objects.create(external_id="acme", name="Acme Inc.", email="billing@acme.test")
    globex = Customer.objects.create(external_id="globex", name="Globex", email="ap@globex.test")
    initech = Customer.objects.create(external_id="initech", name="Initech", email="ap@initech.test")  # no subscription
    _key, _raw = api_key_create(name="ingest")
    subscription_create(
        customer=globex,
        plan=team,
        external_id="globex-team",
        subscription_at=JAN_1,
        billing_time="calendar",
        now=JAN_1,
    )
    subscription_create(
        customer=acme,
        plan=annual,
        external_id="acme-annual",
        subscription_at=FEB_1,
        billing_time="calendar",
        now=FEB_1,
    )
    send_mtu(globex, [f"user-{i}" for i in range(12)], at=datetime(2026, 1, 20, tzinfo=UTC), prefix="jan")
    send_mtu(globex, [f"user-{i}" for i in range(5)], at=datetime(2026, 2, 20, tzinfo=UTC), prefix="feb")
    send_mtu(acme, [f"user-{i}" for i in range(7)], at=datetime(2026, 2, 21, tzinfo=UTC), prefix="feb")
    # A usage alert on Globex's MTUs, triggered in February (billing.services.alerts).
    alert_create(
        subscription=Subscription.objects.get(external_id="globex-team"),
        alert=AlertInput(
            alert_type="billable_metric_current_usage_units",
            code="mtu-1",
            billable_metric_code="mtu",
            thresholds=[ThresholdInput(value="1")],
        ),
    )
    assert len(check_alerts(now=datetime(2026, 2, 25, tzinfo=UTC)).triggered) == 1
    report = close_periods(now=CLOSED_AT)
    assert not report.errors
    assert Invoice.objects.filter(status=InvoiceStatus.DRAFT).count() == 2
    assert Invoice.objects.filter(status=InvoiceStatus.FINALIZED).count() == 2  # January and the prepayment
    assert LedgerEntry.objects.filter(kind=LedgerKind.PURCHASE).count() == 1
    # Money after the invoice, on Acme's prepayment: a payment, and a credit note that refunds
    # part of it and credits the rest (both left for the actions: a refund to mark done, credit to void).
    prepayment = Invoice.objects.get(customer=acme, kind=InvoiceKind.COMMITMENT)
    payment_create(invoice=prepayment, amount=Decimal(100), reference="wire 1", paid_at=CLOSED_AT, now=CLOSED_AT)
    credit_note_create(
        invoice=prepayment,
        items=[(fee_lines(prepayment)[0].pk, Decimal(60))],
        reason=CreditNoteReason.ORDER_CHANGE,
        credit_amount=Decimal(30),
        refund_amount=Decimal(30),
        offset_amount=Decimal(0),
        now=CLOSED_AT,
    )
    # Initech's own tax, and a one-off invoice of an add-on taxed with it (billing.services.one_off_invoices).
    tax_create(code="vat-fr", name="TVA", rate=Decimal(20))
    customer_taxes_set(customer=initech, tax_codes=["vat-fr"])
    add_on_create(code="setup", name="Set-up fee", amount=Decimal(125), currency="USD")
    one_off_invoice_create(customer=initech, fees=[OneOffFee(add_on_code="setup", units=Decimal(2))], now=CLOSED_AT)
    # A wallet for Initech: granted credits, and paid ones on a credit invoice (billing.services.wallets).
    wallet_create(
        customer=Customer.objects.get(external_id="initech"),
        rate_amount=Decimal(1),
        granted_credits=Decimal(10),
        paid_credits=Decimal(5),
        now=CLOSED_AT,
    )
    # Coupons: one applied to Initech (no subscription: no invoice changes), one not applied yet.
    welcome: CouponFields = {"name": "Welcome", "code": "welcome", "coupon_type": "fixed_amount", "amount_cents": 5000}
    coupon_create(fields={**welcome, "amount_currency": "USD", "plan_codes": ["team"]}, now=CLOSED_AT)
    spring: CouponFields = {"name": "Spring", "code": "spring", "coupon_type": "percentage"}
    coupon_create(fields={**spring, "percentage_rate": Decimal(10)}, now=CLOSED_AT)
    applied_coupon_create(external_customer_id="initech", coupon_code="welcome", now=CLOSED_AT)
    assert not deliver_due().failed  # the deliveries are sent (and the signing key made) before anyone looks
    return {"acme": acme, "globex": globex}


def staff_user(username: str, group: str | None) -> User:
    user = User.objects.create_user(username, is_staff=True)  # no password to hash: clients force_login
    if group is not None:
        user.groups.add(Group.objects.get(name=group))
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)  # before any snapshot: logging in writes last_login
    return client


@pytest.fixture
def finance(world: dict[str, Any]) -> User:
    return staff_user("fiona", FINANCE)


@pytest.fixture
def reader(world: dict[str, Any]) -> User:
    return staff_user("rita", FINANCE_READ_ONLY)


@pytest.fixture
def finance_client(finance: User) -> Client:
    return client_for(finance)


@pytest.fixture
def reader_client(reader: User) -> Client:
    return client_for(reader)


@pytest.fixture
def nobody_client(world: dict[str, Any]) -> Client:
    """A staff user without any permission."""
    return client_for(staff_user("nora", None))


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every watched table."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.app_label in WATCHED_APPS
    }


def admin_request(user: User) -> Any:
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def first_pk(model: type[Model]) -> Any:
    obj = model._default_manager.order_by("pk").first()
    return obj.pk if obj is not None else 1  # unknown ids are refused (403) before they are looked up


def url_argument_sources() -> dict[str, Any]:
    """What each URL argument of a custom page names; `object_id` is the admin's own model."""
    return {
        "line_id": InvoiceLine.objects.filter(kind=LineKind.USAGE),  # the MTU audit of a usage line
        "subscription_id": Subscription.objects.filter(status=SubscriptionStatus.ACTIVE),
    }


def custom_view_url(model: type[Model], pattern: URLPattern) -> str:
    sources = url_argument_sources()
    kwargs = {}
    for name in pattern.pattern.converters:
        if name in ("object_id", "id"):  # the admin's own model (auth's user pages say "id")
            kwargs[name] = str(first_pk(model))
            continue
        assert name in sources, f"{pattern.name}: say in url_argument_sources() which rows {name!r} names"
        row = sources[name].order_by("pk").first()
        assert row is not None, f"{pattern.name}: the test data has no row for {name!r}"
        kwargs[name] = str(row.pk)
    return reverse(f"admin:{pattern.name}", kwargs=kwargs)


def levels(response: Any) -> list[int]:
    return [m.level for m in response.context["messages"]]


def texts(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- The roles ----------------------------------------------------------------------------------


def group_permissions(name: str) -> set[tuple[str, str]]:
    return set(Group.objects.get(name=name).permissions.values_list("content_type__app_label", "codename"))


def test_ensure_roles_creates_both_groups_once() -> None:
    first = ensure_roles()
    second = ensure_roles()
    assert [(r.name, r.created, r.changed) for r in first] == [(FINANCE, True, True), (FINANCE_READ_ONLY, True, True)]
    assert [(r.name, r.created, r.changed) for r in second] == [
        (FINANCE, False, False),
        (FINANCE_READ_ONLY, False, False),
    ]
    assert Group.objects.filter(name__in=[FINANCE, FINANCE_READ_ONLY]).count() == 2
    for name, wanted in role_permissions().items():
        assert group_permissions(name) == set(wanted)


def test_ensure_roles_takes_back_a_permission_granted_by_hand() -> None:
    ensure_roles()
    group = Group.objects.get(name=FINANCE_READ_ONLY)
    group.permissions.add(Permission.objects.get(content_type__app_label="billing", codename="change_invoice"))
    (_finance, read_only) = ensure_roles()
    assert read_only.changed
    assert ("billing", "change_invoice") not in group_permissions(FINANCE_READ_ONLY)


def test_read_only_role_holds_only_view_permissions_and_all_of_finances() -> None:
    ensure_roles()
    finance = group_permissions(FINANCE)
    read_only = group_permissions(FINANCE_READ_ONLY)
    assert read_only and all(codename.startswith("view_") for _app, codename in read_only)
    assert read_only == {(app, codename) for app, codename in finance if codename.startswith("view_")}


def test_finance_manages_the_catalog_customers_and_invoices_and_only_views_what_the_system_writes() -> None:
    ensure_roles()
    finance = group_permissions(FINANCE)
    managed = [
        ("customers", "customer"), ("customers", "apikey"), ("billing", "subscription"), ("billing", "plan"),
        ("billing", "charge"), ("billing", "tier"), ("billing", "promotion"), ("metering", "billablemetric"),
        ("billing", "commitment"), ("billing", "invoice"),
    ]  # fmt: skip
    for app, model in managed:
        for action in ("add", "change", "delete", "view"):
            assert (app, f"{action}_{model}") in finance
    viewed = [
        ("metering", "event"), ("billing", "ledgerentry"), ("billing", "historicalplan"),
        ("billing", "historicalcharge"), ("billing", "historicaltier"), ("billing", "historicalpromotion"),
        ("billing", "historicalcommitment"),
    ]  # fmt: skip
    for app, model in viewed:
        assert (app, f"view_{model}") in finance
        assert not {(app, f"{action}_{model}") for action in ("add", "change", "delete")} & finance
    # Money recorded through the services: payments are added, never changed; credit notes are
    # issued and changed (refund done, credit voided); neither is ever deleted.
    assert {("billing", "add_payment"), ("billing", "view_payment")} <= finance
    assert {("billing", "add_creditnote"), ("billing", "change_creditnote"), ("billing", "view_creditnote")} <= finance
    assert (
        not {("billing", "change_payment"), ("billing", "delete_payment"), ("billing", "delete_creditnote")} & finance
    )
    assert {("django_q", "view_schedule"), ("django_q", "change_schedule")} <= finance
    assert not {("django_q", "add_schedule"), ("django_q", "delete_schedule")} & finance
    assert not {app for app, _codename in finance} & {"auth", "admin", "sessions", "sequences", "contenttypes"}


def test_finance_manages_webhook_endpoints_and_resends_deliveries_read_only_only_views_them() -> None:
    ensure_roles()
    finance = group_permissions(FINANCE)
    read_only = group_permissions(FINANCE_READ_ONLY)
    assert {("billing", f"{action}_webhookendpoint") for action in ("add", "change", "delete", "view")} <= finance
    # A delivery's change is "Resend"; the outbox writes them, and the log keeps them.
    assert {("billing", "change_webhookdelivery"), ("billing", "view_webhookdelivery")} <= finance
    assert not {("billing", "add_webhookdelivery"), ("billing", "delete_webhookdelivery")} & finance
    assert {("billing", "view_webhookendpoint"), ("billing", "view_webhookdelivery")} <= read_only


def test_ensure_roles_says_which_permissions_are_missing() -> None:
    with (
        mock.patch("billing.services.roles.create_permissions"),
        mock.patch("billing.services.roles.role_permissions", return_value={FINANCE: [("billing", "fly_invoice")]}),
        pytest.raises(RuntimeError) as raised,
    ):
        ensure_roles()
    assert str(raised.value) == PERMISSIONS_MISSING.format(missing="billing.fly_invoice")


@pytest.mark.parametrize("model", [model for model, _ in REGISTRY], ids=lambda m: m._meta.label)
def test_each_role_sees_exactly_the_finance_admins(model: type[Model]) -> None:
    ensure_roles()
    finance = staff_user("fiona", FINANCE)
    reader = staff_user("rita", FINANCE_READ_ONLY)
    model_admin = admin.site._registry[model]
    for user in (finance, reader):
        request = admin_request(user)
        assert model_admin.has_view_permission(request) is in_finance_scope(model), user
        assert model_admin.has_module_permission(request) is (model._meta.app_label in FINANCE_APPS | {"django_q"})


def test_setup_roles_command_creates_the_groups_and_puts_users_in_them() -> None:
    staff_user("fiona", None)
    User.objects.create_user("rita")  # not staff yet
    out = StringIO()
    call_command("setup_roles", "--finance", "fiona", "--read-only", "rita", stdout=out)
    assert f"group {FINANCE!r}: created" in out.getvalue()
    assert f"group {FINANCE_READ_ONLY!r}: created" in out.getvalue()
    rita = User.objects.get(username="rita")
    assert rita.is_staff
    assert list(rita.groups.values_list("name", flat=True)) == [FINANCE_READ_ONLY]
    assert list(User.objects.get(username="fiona").groups.values_list("name", flat=True)) == [FINANCE]

    # Again, moving rita to Finance: idempotent, and she leaves the read-only group.
    out = StringIO()
    call_command("setup_roles", "--finance", "rita", stdout=out)
    assert f"group {FINANCE!r}: up to date" in out.getvalue()
    assert list(rita.groups.values_list("name", flat=True)) == [FINANCE]
    assert Group.objects.filter(name__in=[FINANCE, FINANCE_READ_ONLY]).count() == 2


def test_setup_roles_refuses_an_unknown_user() -> None:
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("setup_roles", "--finance", "ghost", stdout=StringIO())


def test_start_sets_up_the_roles_after_the_schedules() -> None:
    from billing.management.commands import start

    called: list[str] = []
    with (
        mock.patch.object(start, "call_command", side_effect=lambda name, *a, **k: called.append(name)),
        mock.patch.object(start.Command, "ensure_admin", return_value="pw"),
        mock.patch.object(start.Command, "supervise"),
        mock.patch.object(start.subprocess, "Popen"),
    ):
        call_command("start", "--no-demo", stdout=StringIO())
    assert "setup_roles" in called
    assert called.index("setup_roles") > called.index("setup_schedules")


# --- Read-only: sees everything, changes nothing --------------------------------------------------


@pytest.mark.parametrize("model", [model for model, _ in REGISTRY], ids=lambda m: m._meta.label)
def test_read_only_user_sees_every_finance_page_and_may_not_add_change_or_delete(
    model: type[Model], reader_client: Client
) -> None:
    before = snapshot()
    seen = in_finance_scope(model)
    if seen:
        assert model._default_manager.exists(), f"the test data has no {model._meta.label} to look at"
    pk = first_pk(model)

    response = reader_client.get(url(model, "changelist"))
    assert response.status_code == (200 if seen else 403)
    response = reader_client.get(url(model, "change", pk))
    assert response.status_code == (200 if seen else 403)
    if seen:
        content = response.content.decode()
        assert 'name="_save"' not in content, "a read-only user is offered a Save button"
        assert 'name="_continue"' not in content and 'name="_addanother"' not in content
        assert reader_client.get(url(model, "history", pk)).status_code == 200

    assert reader_client.get(url(model, "add")).status_code == 403
    assert reader_client.post(url(model, "add"), {}).status_code == 403
    assert reader_client.post(url(model, "change", pk), {}).status_code == 403
    assert reader_client.get(url(model, "delete", pk)).status_code == 403
    assert reader_client.post(url(model, "delete", pk), {"post": "yes"}).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("model", [model for model, _ in FINANCE_ADMINS], ids=lambda m: m._meta.label)
def test_read_only_user_is_offered_no_action(model: type[Model], reader: User, reader_client: Client) -> None:
    model_admin = admin.site._registry[model]
    assert model_admin.get_actions(admin_request(reader)) == {}
    response = reader_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["action_form"] is None
    assert 'name="action"' not in response.content.decode()


@pytest.mark.parametrize(("model", "action"), ACTIONS)
def test_read_only_user_posting_an_action_changes_nothing(
    model: type[Model], action: str, reader_client: Client
) -> None:
    before = snapshot()
    pks = list(model._default_manager.values_list("pk", flat=True))
    response = reader_client.post(
        url(model, "changelist"),
        {"action": action, helpers.ACTION_CHECKBOX_NAME: pks, "index": "0", **ACTION_EXTRA},
        follow=True,
    )
    assert response.status_code in (200, 403)
    assert snapshot() == before


def test_every_action_of_the_finance_admins_declares_the_permission_it_needs() -> None:
    undeclared = []
    for model, model_admin in FINANCE_ADMINS:
        for func, name, _description in model_admin._get_base_actions():
            allowed = set(getattr(func, "allowed_permissions", ()) or ())
            # "view" would let read-only users run it; an action changes something.
            if not allowed or not allowed <= {"add", "change", "delete"}:
                undeclared.append(f"{model._meta.label}.{name}: permissions={sorted(allowed)}")
    assert undeclared == []


# --- Custom admin pages -------------------------------------------------------------------------


def test_the_custom_pages_are_found() -> None:
    # The generic tests below are only as good as the discovery: these pages exist today.
    names = {param.id for param in CUSTOM_VIEWS}
    assert {"billing_invoice_document", "billing_invoice_close_periods", "billing_plan_calculator"} <= names
    money = {"billing_invoice_record_payment", "billing_invoice_credit_note", "billing_receivables"}
    assert money | {"billing_receivables_csv", "billing_creditnote_document", "billing_creditnote_pdf"} <= names


@pytest.mark.parametrize(("model", "pattern"), CUSTOM_VIEWS)
def test_custom_pages_refuse_staff_without_permissions(
    model: type[Model], pattern: URLPattern, nobody_client: Client
) -> None:
    before = snapshot()
    target = custom_view_url(model, pattern)
    assert nobody_client.get(target).status_code == 403
    assert nobody_client.post(target, ACTION_EXTRA).status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize(("model", "pattern"), CUSTOM_VIEWS)
def test_custom_pages_change_nothing_for_read_only_users(
    model: type[Model], pattern: URLPattern, reader_client: Client
) -> None:
    before = snapshot()
    target = custom_view_url(model, pattern)
    assert reader_client.get(target).status_code in (200, 403)
    assert reader_client.post(target, ACTION_EXTRA).status_code in (200, 403, 405)
    assert snapshot() == before


@pytest.mark.parametrize(("model", "pattern"), CUSTOM_VIEWS)
def test_finance_opens_every_custom_page_of_the_finance_admins(
    model: type[Model], pattern: URLPattern, finance_client: Client
) -> None:
    expected = 200 if in_finance_scope(model) else 403  # e.g. auth's password change page
    assert finance_client.get(custom_view_url(model, pattern)).status_code == expected


def test_read_only_user_may_not_close_periods(reader_client: Client) -> None:
    target = reverse("admin:billing_invoice_close_periods")
    before = snapshot()
    with time_machine.travel(AFTER_GRACE, tick=False):  # the February drafts are due for finalization
        assert reader_client.get(target).status_code == 403
        assert reader_client.post(target).status_code == 403
    assert snapshot() == before
    listing = reader_client.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "close-periods-link" not in listing


def test_read_only_user_is_shown_no_money_button_and_refused_the_money_pages(
    reader_client: Client, finance_client: Client
) -> None:
    """No "Record payment" or "Issue credit note" for read-only staff, and both pages refuse them
    whatever they post; the receivables aging report and credit notes they may read."""
    prepayment = Invoice.objects.get(kind=InvoiceKind.COMMITMENT)  # finalized, 1,340.00 still due
    invoice_page = url(Invoice, "change", prepayment.pk)
    pages = [
        reverse("admin:billing_invoice_record_payment", args=[prepayment.pk]),
        reverse("admin:billing_invoice_credit_note", args=[prepayment.pk]),
    ]
    finance_page = finance_client.get(invoice_page).content.decode()
    assert all(page in finance_page for page in pages)  # the buttons are there for Finance …
    content = reader_client.get(invoice_page).content.decode()
    assert not any(page in content for page in pages)  # … not for read-only staff
    fee = prepayment.lines.first()
    assert fee is not None
    before = snapshot()
    posted = {"amount": "10", "reference": "x", "paid_at": "2026-03-01T10:00", "reason": "other", "credit": "10"}
    for page in pages:
        assert reader_client.get(page).status_code == 403
        for step in ("_preview", "_confirm", "_record"):
            assert reader_client.post(page, {**posted, f"fee_{fee.pk}": "10", step: "1"}).status_code == 403
    assert snapshot() == before
    assert reader_client.get(reverse("admin:billing_receivables")).status_code == 200
    assert reader_client.get(reverse("admin:billing_receivables_csv")).status_code == 200
    note = CreditNote.objects.get()
    assert reader_client.get(reverse("admin:billing_creditnote_document", args=[note.pk])).status_code == 200


def test_read_only_user_opens_the_invoice_document_and_the_price_calculator(reader_client: Client) -> None:
    invoice = Invoice.objects.exclude(number="").order_by("pk").first()
    assert invoice is not None
    response = reader_client.get(reverse("admin:billing_invoice_document", args=[invoice.pk]))
    assert response.status_code == 200
    assert invoice.number in response.content.decode()
    plan = Plan.objects.get(code="team", is_current=True)
    response = reader_client.get(reverse("admin:billing_plan_calculator", args=[plan.pk]), {"mtu": "30000"})
    assert response.status_code == 200


# --- Links: no one is shown a page that refuses them ----------------------------------------------

HREF = re.compile(r'href="(/admin/[^"#]*)')


def crawl(client: Client) -> list[str]:
    """GET every /admin/ page linked from the index, transitively (query strings dropped).

    Returns the pages that did not answer 200 (or a redirect), each with a page linking to it.
    """
    statuses: dict[str, int] = {}
    origins: dict[str, str] = {}
    queue = deque(["/admin/"])
    while queue and len(statuses) < CRAWL_LIMIT:
        path = queue.popleft()
        if path in statuses:
            continue
        response = client.get(path)
        statuses[path] = response.status_code
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue
        for href in HREF.findall(response.content.decode()):
            link = html.unescape(href).split("?")[0]
            if link == "/admin/logout/" or link in statuses:
                continue
            origins.setdefault(link, path)
            queue.append(link)
    assert len(statuses) > 50, "the crawl did not reach the pages"
    return sorted(
        f"{path} ({status}) linked from {origins.get(path)}"
        for path, status in statuses.items()
        if status not in (200, 302)
    )


def test_read_only_user_is_never_shown_a_link_that_refuses_them(reader_client: Client) -> None:
    before = snapshot()
    refused = crawl(reader_client)
    assert not refused, "pages link to what refuses a read-only user:\n" + "\n".join(refused)
    assert snapshot() == before


def test_finance_user_is_never_shown_a_link_that_refuses_them(finance_client: Client) -> None:
    before = snapshot()
    refused = crawl(finance_client)
    assert not refused, "pages link to what refuses a Finance user:\n" + "\n".join(refused)
    assert snapshot() == before  # looking (GET) never writes


# --- Finance: may do what the admin offers ------------------------------------------------------


@pytest.mark.parametrize("model", [model for model, _ in FINANCE_ADMINS], ids=lambda m: m._meta.label)
def test_finance_is_offered_every_action_the_admin_declares(model: type[Model], finance: User) -> None:
    model_admin = admin.site._registry[model]
    declared = {name for _func, name, _description in model_admin._get_base_actions()} - {"delete_selected"}
    assert declared <= set(model_admin.get_actions(admin_request(finance)))


@pytest.mark.parametrize(("model", "action"), [case for case in ACTIONS if case.values[1] != "delete_selected"])
def test_finance_runs_every_action(model: type[Model], action: str, finance_client: Client) -> None:
    pks = list(model._default_manager.values_list("pk", flat=True))
    response = finance_client.post(
        url(model, "changelist"),
        {"action": action, helpers.ACTION_CHECKBOX_NAME: pks, "index": "0", **ACTION_EXTRA},
        follow=True,
    )
    assert response.status_code == 200
    if response.get("Content-Disposition", "").startswith("attachment"):
        return  # a download (e.g. the CSV export): the file is the answer
    assert messages.SUCCESS in levels(response), texts(response)


def test_finance_actions_do_what_they_say(finance_client: Client) -> None:
    def run(model: type[Model], action: str, objects: list[Model], **extra: str) -> Any:
        data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [o.pk for o in objects], "index": "0", **extra}
        return finance_client.post(url(model, "changelist"), data, follow=True)

    drafts = list(Invoice.objects.filter(status=InvoiceStatus.DRAFT).order_by("pk"))
    run(Invoice, "finalize_selected", drafts[:1])
    finalized = Invoice.objects.get(pk=drafts[0].pk)
    assert finalized.status == InvoiceStatus.FINALIZED and finalized.number
    run(Invoice, "mark_paid_selected", [finalized])
    assert Invoice.objects.get(pk=finalized.pk).payment_status == PaymentStatus.SUCCEEDED
    january = Invoice.objects.get(customer__external_id="globex", period_start=JAN_1)
    run(Invoice, "void_selected", [january], apply="1", reason="issued twice")
    january.refresh_from_db()
    assert (january.status, january.void_reason) == (InvoiceStatus.VOIDED, "issued twice")

    # Void and regenerate: the voided January is made again, with a new number.
    response = run(Invoice, "regenerate_selected", [january], apply="1", reason="price fixed")
    regenerated = Invoice.objects.get(
        customer__external_id="globex", period_start=JAN_1, status=InvoiceStatus.FINALIZED
    )
    assert f"{january.number} → {regenerated.number}" in " ".join(texts(response))

    # Credit notes: the refund is marked done, the credit left voided.
    note = CreditNote.objects.get()
    run(CreditNote, "mark_refund_done", [note])
    run(CreditNote, "void_credit_selected", [note], apply="1")
    note.refresh_from_db()
    assert (note.refund_status, note.credit_status, note.balance_amount) == ("succeeded", CreditStatus.VOIDED, 0)

    commitment = Commitment.objects.get()
    run(Commitment, "adjust_balance", [commitment], apply="1", amount="-40", reason="goodwill correction")
    entry = LedgerEntry.objects.get(kind=LedgerKind.ADJUSTMENT)
    assert (entry.amount, entry.created_by.username) == (-40, "fiona")
    run(Commitment, "cancel_selected", [commitment])
    assert Commitment.objects.get().status == CommitmentStatus.CANCELED

    key = ApiKey.objects.get()
    run(ApiKey, "revoke_selected", [key])
    assert ApiKey.objects.get().revoked_at is not None
    subscription = Subscription.objects.get(external_id="globex-team")
    run(Subscription, "terminate_selected", [subscription])
    assert Subscription.objects.get(pk=subscription.pk).status == SubscriptionStatus.TERMINATED


def test_finance_records_a_payment_and_issues_a_credit_note(finance_client: Client, finance: User) -> None:
    prepayment = Invoice.objects.get(kind=InvoiceKind.COMMITMENT)
    response = finance_client.post(
        reverse("admin:billing_invoice_record_payment", args=[prepayment.pk]),
        {"amount": "340.00", "reference": "WIRE-2", "paid_at": "2026-03-02T09:00"},
        follow=True,
    )
    assert messages.SUCCESS in levels(response), texts(response)
    assert prepayment.payments.get(reference="WIRE-2").created_by == finance

    page = reverse("admin:billing_invoice_credit_note", args=[prepayment.pk])
    fee = fee_lines(prepayment)[0]
    data = {f"fee_{fee.pk}": "100", "reason": CreditNoteReason.ORDER_CHANGE, "offset": "100"}
    previewed = finance_client.post(page, {**data, "_preview": "1"}).context["previewed"]
    response = finance_client.post(page, {**data, "previewed": previewed, "_confirm": "1"}, follow=True)
    assert messages.SUCCESS in levels(response), texts(response)
    issued = CreditNote.objects.get(sequence=2)
    assert (issued.offset_amount, issued.created_by) == (100, finance)


def test_finance_closes_periods(finance_client: Client) -> None:
    target = reverse("admin:billing_invoice_close_periods")
    listing = finance_client.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "close-periods-link" in listing
    with time_machine.travel(AFTER_GRACE, tick=False):
        assert finance_client.get(target).status_code == 200
        response = finance_client.post(target, follow=True)
    assert response.status_code == 200
    assert messages.SUCCESS in levels(response), texts(response)
    assert not Invoice.objects.filter(status=InvoiceStatus.DRAFT).exists()  # both February drafts finalized


def test_finance_adds_changes_and_deletes_a_customer(finance_client: Client) -> None:
    data = {
        "external_id": "umbrella",
        "name": "Umbrella",
        "email": "ap@umbrella.test",
        "currency": "USD",
        "timezone": "Europe/Paris",
        "subscriptions-TOTAL_FORMS": "0",  # the (read-only) subscriptions inline
        "subscriptions-INITIAL_FORMS": "0",
    }
    response = finance_client.post(reverse("admin:customers_customer_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    customer = Customer.objects.get(external_id="umbrella")
    response = finance_client.post(url(Customer, "change", customer.pk), {**data, "name": "Umbrella Corp"})
    assert response.status_code == 302
    assert Customer.objects.get(pk=customer.pk).name == "Umbrella Corp"
    response = finance_client.post(url(Customer, "delete", customer.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Customer.objects.filter(external_id="umbrella").exists()


def test_finance_adds_an_api_key_and_a_promotion(finance_client: Client) -> None:
    response = finance_client.post(reverse("admin:customers_apikey_add"), {"name": "warehouse sync"})
    assert response.status_code == 200  # the page that shows the key once
    assert ApiKey.objects.filter(name="warehouse sync").exists()
    response = finance_client.post(
        reverse("admin:billing_promotion_add"),
        {"code": "spring", "name": "Spring", "percent_off": "20", "duration_days": "30", "applies_to": "plan"},
    )
    assert response.status_code == 302


# --- Webhooks: finance manages endpoints, sees the signing key and resends; read-only staff look ---


def test_only_finance_is_shown_the_webhook_signing_key_and_the_resend_button(
    finance_client: Client, reader_client: Client
) -> None:
    key = signing_key()
    endpoints = url(WebhookEndpoint, "changelist")
    assert key in finance_client.get(endpoints).content.decode()
    delivery = WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).order_by("pk").first()
    assert delivery is not None
    assert 'id="resend-delivery"' in finance_client.get(url(WebhookDelivery, "change", delivery.pk)).content.decode()

    before = snapshot()
    response = reader_client.get(endpoints)
    assert response.status_code == 200 and "ops" in response.content.decode()
    assert key not in response.content.decode() and "signing_key" not in response.context
    page = reader_client.get(url(WebhookDelivery, "change", delivery.pk)).content.decode()
    assert 'id="resend-delivery"' not in page and key not in page
    assert snapshot() == before


def test_finance_adds_changes_and_deletes_a_webhook_endpoint_and_resends_a_delivery(
    finance_client: Client, webhook_sink: Receiver
) -> None:
    data = {"name": "erp", "webhook_url": f"{webhook_sink.url}/erp", "event_types": ["invoice.created"]}
    assert finance_client.post(url(WebhookEndpoint, "add"), data).status_code == 302
    endpoint = WebhookEndpoint.objects.get(name="erp")
    assert endpoint.event_types == ["invoice.created"]
    response = finance_client.post(url(WebhookEndpoint, "change", endpoint.pk), {**data, "event_types": []})
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).event_types is None

    delivery = WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).order_by("pk").first()
    assert delivery is not None
    response = finance_client.post(
        url(WebhookDelivery, "changelist"),
        {"action": "resend_selected", helpers.ACTION_CHECKBOX_NAME: [delivery.pk], "index": "0"},
        follow=True,
    )
    assert messages.SUCCESS in levels(response), texts(response)
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING

    assert finance_client.post(url(WebhookEndpoint, "delete", endpoint.pk), {"post": "yes"}).status_code == 302
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()
