"""/api/v1/coupons, /api/v1/applied_coupons and a customer's applied coupons: Lago's official
SDK (lago-python-client 1.55, unmodified) against the live server, through the real period close;
and what is refused (422 naming the field, nothing stored; Lago's 404 envelopes).

The SDK test runs on the real clock (the server is another thread), so its months are relative
to today, as in test_lago_lifecycle: the subscription starts at the beginning of the month three
months ago (M0, the trial month); M1 has 300 users on the scaled-down Team plan, $355.00; M2 has
none, $120.00.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.applied_coupon import AppliedCoupon as LagoAppliedCoupon
from lago_python_client.models.coupon import Coupon as LagoCoupon
from lago_python_client.models.coupon import LimitationConfiguration
from lago_python_client.models.customer import Customer as LagoCustomer
from lago_python_client.models.subscription import Subscription as LagoSubscription
from rest_framework.test import APIClient

from billing.engine.periods import add_months, month_start
from billing.models import AppliedCoupon, Coupon, CouponStatus
from billing.services.applied_coupons import NOT_REUSABLE, UNKNOWN_COUPON, UNKNOWN_CUSTOMER
from billing.services.coupons import APPLIED_NOT_DELETED, CODE_TAKEN, FIXED_ONCE_APPLIED, ONLY_FIXED, UNKNOWN_PLANS
from billing.services.period_close import close_periods
from config.api import NOT_AN_INTEGER, NOT_SUPPORTED
from customers.models import Customer
from customers.services import api_key_create
from tests.factories import CustomerFactory, scaled_team_plan, store_users
from tests.helpers import delete, errors, get, messages, post

FIXED: dict[str, Any] = {
    "name": "Welcome",
    "code": "welcome-50",
    "coupon_type": "fixed_amount",
    "amount_cents": 5000,
    "amount_currency": "USD",
    "frequency": "once",
    "expiration": "no_expiration",
}
PERCENT: dict[str, Any] = {
    "name": "Launch",
    "code": "launch-10",
    "coupon_type": "percentage",
    "percentage_rate": 10,
    "frequency": "forever",
    "expiration": "no_expiration",
}


def moment(day: date, hours: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hours, tzinfo=UTC)


def refused(call: Any) -> dict[str, Any]:
    """The SDK call fails with Lago's 422 envelope; returns its error details."""
    with pytest.raises(LagoApiError) as caught:
        call()
    assert caught.value.status_code == 422, caught.value.response
    body = caught.value.response
    assert body["code"] == "validation_errors"
    return dict(messages(body["error_details"]))


def stored() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return (
        list(Coupon.objects.order_by("pk").values()),
        list(AppliedCoupon.objects.order_by("pk").values()),
    )


# --- with Lago's SDK, through the period close ----------------------------------------------------


@pytest.fixture
def lago(live_server: Any) -> Client:
    scaled_team_plan()
    _, raw_key = api_key_create(name="lago sdk")
    return Client(api_key=raw_key, api_url=live_server.url)


@pytest.mark.django_db(transaction=True)
def test_coupons_with_the_lago_sdk(lago: Client) -> None:
    today = timezone.now().date()
    m0 = add_months(month_start(today), -3)
    m1, m2, m3 = add_months(m0, 1), add_months(m0, 2), add_months(m0, 3)
    lago.customers.create(LagoCustomer(external_id="acme", name="Acme", currency="USD", timezone="UTC"))
    lago.subscriptions.create(
        LagoSubscription(
            external_customer_id="acme",
            plan_code="team",
            external_id="acme-team",
            subscription_at=f"{m0.isoformat()}T00:00:00Z",
        )
    )
    store_users(Customer.objects.get(external_id="acme"), range(300), moment(m1 + timedelta(days=19)), "m1")
    close_periods(now=moment(m1, hours=9))  # M0, the trial month, before any coupon

    # 1. Coupons: create, find, list, update; a coupon never applied is deleted.
    launch = lago.coupons.create(LagoCoupon(**PERCENT))
    assert launch is not None
    assert (launch.code, launch.coupon_type, launch.percentage_rate, launch.amount_cents) == (
        "launch-10",
        "percentage",
        10.0,
        None,
    )
    assert (launch.frequency, launch.reusable, launch.limited_plans, launch.plan_codes) == ("forever", True, False, [])
    welcome = lago.coupons.create(
        LagoCoupon(
            **{**FIXED, "reusable": False},
            applies_to=LimitationConfiguration(plan_codes=["team"], billable_metric_codes=None),
        )
    )
    assert welcome is not None
    assert (welcome.amount_cents, welcome.amount_currency, welcome.reusable) == (5000, "USD", False)
    assert (welcome.limited_plans, welcome.plan_codes, welcome.limited_billable_metrics) == (True, ["team"], False)
    assert lago.coupons.find("welcome-50").lago_id == welcome.lago_id
    listed = lago.coupons.find_all({"per_page": 1})
    assert [c.code for c in listed["coupons"]] == ["welcome-50"]  # newest first
    assert listed["meta"]["total_count"] == 2 and listed["meta"]["next_page"] == 2
    renamed = lago.coupons.update(LagoCoupon(name="Launch offer", description="10 % off"), "launch-10")
    assert (renamed.name, renamed.description, renamed.percentage_rate) == ("Launch offer", "10 % off", 10.0)
    lago.coupons.create(LagoCoupon(**{**PERCENT, "code": "unused"}))
    assert lago.coupons.destroy("unused").code == "unused"
    assert not Coupon.objects.filter(code="unused").exists()

    # 2. Apply 10 % forever: M1's $355.00 invoice is $319.50.
    applied = lago.applied_coupons.create(LagoAppliedCoupon(external_customer_id="acme", coupon_code="launch-10"))
    assert applied is not None
    assert (applied.coupon_code, applied.external_customer_id, applied.status) == ("launch-10", "acme", "active")
    assert (applied.percentage_rate, applied.amount_cents, applied.amount_cents_remaining) == (10.0, None, None)
    close_periods(now=moment(m2, hours=9))  # M1 ends
    m1_invoice = next(
        inv
        for inv in lago.invoices.find_all({"external_customer_id": "acme", "per_page": 100})["invoices"]
        if inv.total_amount_cents == 31950
    )

    # 3. $50.00 once, on the team plan, not reusable; a second application is refused.
    once = lago.applied_coupons.create(LagoAppliedCoupon(external_customer_id="acme", coupon_code="welcome-50"))
    assert once is not None
    assert (once.amount_cents, once.amount_cents_remaining, once.amount_currency) == (5000, 5000, "USD")
    errors_ = refused(
        lambda: lago.applied_coupons.create(LagoAppliedCoupon(external_customer_id="acme", coupon_code="welcome-50"))
    )
    assert errors_ == {"coupon_code": [NOT_REUSABLE.format(code="welcome-50")]}
    # Once applied, a coupon's amount is fixed; its name is not.
    errors_ = refused(lambda: lago.coupons.update(LagoCoupon(amount_cents=6000), "welcome-50"))
    assert errors_ == {"amount_cents": [FIXED_ONCE_APPLIED]}
    assert lago.coupons.update(LagoCoupon(name="Welcome!"), "welcome-50").name == "Welcome!"
    errors_ = refused(lambda: lago.coupons.destroy("welcome-50"))
    assert errors_ == {"coupon": [APPLIED_NOT_DELETED]}

    # 4. M2's $120.00: the $50.00 first, as it is limited to plans (Lago's order), used up; then
    # 10 % of the $70.00 left.
    close_periods(now=moment(m3, hours=9))
    listed = lago.applied_coupons.find_all({"external_customer_id": "acme"})
    assert listed["meta"]["total_count"] == 2
    by_code = {a.coupon_code: a for a in listed["applied_coupons"]}
    used = by_code["welcome-50"]
    assert (used.status, used.amount_cents_remaining) == ("terminated", 0)
    assert used.terminated_at is not None
    assert used.credits is not None
    assert [(c.amount_cents, c.item.type, c.item.code, c.before_taxes) for c in used.credits.__root__] == [
        (5000, "coupon", "welcome-50", True)
    ]
    forever = by_code["launch-10"]
    assert forever.credits is not None
    credits = forever.credits.__root__
    assert [c.amount_cents for c in credits] == [3550, 700]
    assert credits[0].invoice is not None and credits[0].invoice.lago_id == m1_invoice.lago_id
    assert credits[0].invoice.payment_status == "pending"

    # 5. Filters, as Lago's: status and coupon_code[].
    assert [a.coupon_code for a in lago.applied_coupons.find_all({"status": "active"})["applied_coupons"]] == [
        "launch-10"
    ]
    only = lago.applied_coupons.find_all({"coupon_code[]": "welcome-50"})["applied_coupons"]
    assert [a.lago_id for a in only] == [used.lago_id]

    # 6. Terminate the 10 %: M3 would get nothing from it.
    stopped = lago.applied_coupons.destroy("acme", forever.lago_id)
    assert (stopped.status, stopped.lago_id) == ("terminated", forever.lago_id)
    assert AppliedCoupon.objects.get(pk=forever.lago_id).status == CouponStatus.TERMINATED


# --- the routes, with a test client ---------------------------------------------------------------

pytestmark_db = pytest.mark.django_db


@pytest.fixture
def acme() -> Customer:
    return CustomerFactory(external_id="acme", name="Acme")


@pytestmark_db
def test_a_coupon_is_created_found_listed_and_deleted(api: APIClient) -> None:
    created = post(api, "/api/v1/coupons", {"coupon": {**FIXED, "description": "Fifty off"}})["coupon"]
    assert created == {
        "lago_id": created["lago_id"],
        "name": "Welcome",
        "code": "welcome-50",
        "description": "Fifty off",
        "coupon_type": "fixed_amount",
        "amount_cents": 5000,
        "amount_currency": "USD",
        "percentage_rate": None,
        "frequency": "once",
        "frequency_duration": None,
        "reusable": True,
        "limited_plans": False,
        "limited_billable_metrics": False,
        "plan_codes": [],
        "billable_metric_codes": [],
        "created_at": created["created_at"],
        "expiration": "no_expiration",
        "expiration_at": None,
        "terminated_at": None,
    }
    assert get(api, "/api/v1/coupons/welcome-50")["coupon"] == created
    recurring = post(
        api,
        "/api/v1/coupons",
        {
            "coupon": {
                **PERCENT,
                "code": "thrice",
                "percentage_rate": "12.5",
                "frequency": "recurring",
                "frequency_duration": 3,
                "expiration": "time_limit",
                "expiration_at": "2099-12-31T00:00:00Z",
            }
        },
    )["coupon"]
    assert (recurring["percentage_rate"], recurring["frequency_duration"], recurring["expiration_at"]) == (
        12.5,
        3,
        "2099-12-31T00:00:00Z",
    )
    # Active and without expiration first, then the nearest expiration, newest first (Lago's order).
    listed = get(api, "/api/v1/coupons")
    assert [c["code"] for c in listed["coupons"]] == ["welcome-50", "thrice"]
    assert listed["meta"] == {
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "total_pages": 1,
        "total_count": 2,
    }
    assert delete(api, "/api/v1/coupons/thrice")["coupon"]["code"] == "thrice"
    assert list(Coupon.objects.values_list("code", flat=True)) == ["welcome-50"]


@pytestmark_db
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({**FIXED, "foo": 1}, {"foo": [NOT_SUPPORTED]}),
        ({**FIXED, "amount_cents": "5000"}, {"amount_cents": [NOT_AN_INTEGER]}),
        ({**FIXED, "amount_cents": 50.5}, {"amount_cents": [NOT_AN_INTEGER]}),
        ({**FIXED, "name": 12}, {"name": ["Not a valid string."]}),
        ({**PERCENT, "amount_cents": 100}, {"amount_cents": [ONLY_FIXED]}),
        (
            {**FIXED, "applies_to": {"plan_codes": ["gold"]}},
            {"applies_to.plan_codes": [UNKNOWN_PLANS.format(codes="gold")]},
        ),
        ({**FIXED, "applies_to": {"plans": ["team"]}}, {"applies_to.plans": [NOT_SUPPORTED]}),
        ({**FIXED, "applies_to": {"plan_codes": [1]}}, {"applies_to.plan_codes.0": ["Not a valid string."]}),
        ({**FIXED, "expiration": "time_limit", "expiration_at": "soon"}, {"expiration_at": None}),
        ({**FIXED, "coupon_type": "free"}, {"coupon_type": ['"free" is not a valid choice.']}),
        ({**PERCENT, "percentage_rate": "ten"}, {"percentage_rate": ["A valid number is required."]}),
        ({**FIXED, "reusable": None}, {"reusable": ["This field may not be null."]}),
    ],
)
def test_a_coupon_refused_names_the_field_and_stores_nothing(
    api: APIClient, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    response = api.post("/api/v1/coupons", {"coupon": body}, format="json")
    found = errors(response)
    assert list(found) == list(expected)
    for field, wanted in expected.items():
        if wanted is not None:
            assert found[field] == wanted
    assert stored() == ([], [])


@pytestmark_db
def test_the_coupon_envelope_and_its_code_are_required(api: APIClient) -> None:
    assert errors(api.post("/api/v1/coupons", {}, format="json")) == {"coupon": ["This field is required."]}
    post(api, "/api/v1/coupons", {"coupon": FIXED})
    found = errors(api.post("/api/v1/coupons", {"coupon": FIXED}, format="json"))
    assert found == {"code": [CODE_TAKEN.format(code="welcome-50")]}
    assert Coupon.objects.count() == 1


@pytestmark_db
def test_unknown_coupons_and_applied_coupons_are_lagos_404(api: APIClient, acme: Customer) -> None:
    for method, path, code in (
        ("get", "/api/v1/coupons/nope", "coupon_not_found"),
        ("put", "/api/v1/coupons/nope", "coupon_not_found"),
        ("delete", "/api/v1/coupons/nope", "coupon_not_found"),
        ("get", "/api/v1/customers/ghost/applied_coupons", "customer_not_found"),
        ("delete", "/api/v1/customers/ghost/applied_coupons/1", "customer_not_found"),
        ("delete", "/api/v1/customers/acme/applied_coupons/1", "applied_coupon_not_found"),
        ("delete", "/api/v1/customers/acme/applied_coupons/x", "applied_coupon_not_found"),
    ):
        response = getattr(api, method)(path, {"coupon": {"name": "x"}} if method == "put" else None, format="json")
        assert (response.status_code, response.json()["code"]) == (404, code), path


@pytestmark_db
def test_applying_a_coupon_with_overrides(api: APIClient, acme: Customer) -> None:
    post(api, "/api/v1/coupons", {"coupon": FIXED})
    applied = post(
        api,
        "/api/v1/applied_coupons",
        {
            "applied_coupon": {
                "external_customer_id": "acme",
                "coupon_code": "welcome-50",
                "amount_cents": 2500,
                "frequency": "recurring",
                "frequency_duration": 2,
            }
        },
    )["applied_coupon"]
    assert applied == {
        "lago_id": applied["lago_id"],
        "lago_coupon_id": str(Coupon.objects.get().pk),
        "coupon_code": "welcome-50",
        "coupon_name": "Welcome",
        "coupon_description": None,
        "coupon_status": "active",
        "coupon_deleted_at": None,
        "lago_customer_id": str(acme.pk),
        "external_customer_id": "acme",
        "status": "active",
        "amount_cents": 2500,
        "amount_cents_remaining": None,
        "amount_currency": "USD",
        "percentage_rate": None,
        "frequency": "recurring",
        "frequency_duration": 2,
        "frequency_duration_remaining": 2,
        "expiration_at": None,
        "created_at": applied["created_at"],
        "terminated_at": None,
        "credits": [],
    }


@pytestmark_db
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"external_customer_id": "ghost", "coupon_code": "nope"},
            {
                "external_customer_id": [UNKNOWN_CUSTOMER.format(ref="ghost")],
                "coupon_code": [UNKNOWN_COUPON.format(ref="nope")],
            },
        ),
        ({"external_customer_id": "acme"}, {"coupon_code": ["This field is required."]}),
        (
            {"external_customer_id": "acme", "coupon_code": "welcome-50", "plan_code": "team"},
            {"plan_code": [NOT_SUPPORTED]},
        ),
        (
            {"external_customer_id": "acme", "coupon_code": "welcome-50", "percentage_rate": 5},
            {"percentage_rate": None},
        ),
        (
            {"external_customer_id": "acme", "coupon_code": "welcome-50", "amount_currency": "EUR"},
            {"amount_currency": None},
        ),
        ({"external_customer_id": 1, "coupon_code": "welcome-50"}, {"external_customer_id": ["Not a valid string."]}),
    ],
)
def test_an_application_refused_names_the_field_and_stores_nothing(
    api: APIClient, acme: Customer, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    post(api, "/api/v1/coupons", {"coupon": FIXED})
    before = stored()
    found = errors(api.post("/api/v1/applied_coupons", {"applied_coupon": body}, format="json"))
    assert list(found) == list(expected)
    for field, wanted in expected.items():
        if wanted is not None:
            assert found[field] == wanted
    assert stored() == before


@pytestmark_db
def test_the_applied_coupon_lists_filter_as_lago(api: APIClient, acme: Customer) -> None:
    CustomerFactory(external_id="globex")
    post(api, "/api/v1/coupons", {"coupon": FIXED})
    post(api, "/api/v1/coupons", {"coupon": PERCENT})
    ids = {}
    for customer, code in (("acme", "welcome-50"), ("acme", "launch-10"), ("globex", "launch-10")):
        body = {"applied_coupon": {"external_customer_id": customer, "coupon_code": code}}
        ids[customer, code] = post(api, "/api/v1/applied_coupons", body)["applied_coupon"]["lago_id"]
    delete(api, f"/api/v1/customers/acme/applied_coupons/{ids['acme', 'welcome-50']}")

    def listed(path: str, **params: Any) -> list[tuple[str, str]]:
        return [(a["external_customer_id"], a["coupon_code"]) for a in get(api, path, **params)["applied_coupons"]]

    everything = [("globex", "launch-10"), ("acme", "launch-10"), ("acme", "welcome-50")]  # newest first
    assert listed("/api/v1/applied_coupons") == everything
    assert listed("/api/v1/applied_coupons", external_customer_id="globex") == [("globex", "launch-10")]
    assert listed("/api/v1/applied_coupons", external_customer_id="nobody") == []
    assert listed("/api/v1/applied_coupons", status="terminated") == [("acme", "welcome-50")]
    assert listed("/api/v1/applied_coupons", **{"coupon_code[]": ["welcome-50", "launch-10"]}) == everything
    assert listed("/api/v1/applied_coupons", coupon_code="welcome-50") == [("acme", "welcome-50")]
    # A customer's list: the path's customer wins over the query's.
    assert listed("/api/v1/customers/acme/applied_coupons", external_customer_id="globex") == everything[1:]
    assert listed("/api/v1/customers/acme/applied_coupons", status="active") == [("acme", "launch-10")]
    page = get(api, "/api/v1/applied_coupons", page="2", per_page="2")
    assert [a["lago_id"] for a in page["applied_coupons"]] == [ids["acme", "welcome-50"]]
    assert page["meta"]["prev_page"] == 1
    assert errors(api.get("/api/v1/applied_coupons", {"status": "expired", "page": "0"})) == {
        "page": ["must be a whole number from 1 to 1000000"],
        "status": ["must be one of: active, terminated"],
    }


@pytestmark_db
def test_a_customers_applied_coupon_is_terminated_only_through_that_customer(api: APIClient, acme: Customer) -> None:
    CustomerFactory(external_id="globex")
    post(api, "/api/v1/coupons", {"coupon": PERCENT})
    body = {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "launch-10"}}
    lago_id = post(api, "/api/v1/applied_coupons", body)["applied_coupon"]["lago_id"]
    response = api.delete(f"/api/v1/customers/globex/applied_coupons/{lago_id}")
    assert (response.status_code, response.json()["code"]) == (404, "applied_coupon_not_found")
    assert AppliedCoupon.objects.get().status == CouponStatus.ACTIVE
    answer = delete(api, f"/api/v1/customers/acme/applied_coupons/{lago_id}")["applied_coupon"]
    assert (answer["status"], answer["terminated_at"] is not None) == ("terminated", True)
    again = delete(api, f"/api/v1/customers/acme/applied_coupons/{lago_id}")["applied_coupon"]
    assert again["terminated_at"] == answer["terminated_at"]  # terminating twice changes nothing


@pytestmark_db
def test_an_update_of_a_coupon_sends_only_what_changes(api: APIClient) -> None:
    post(api, "/api/v1/coupons", {"coupon": FIXED})
    changed = api.put(
        "/api/v1/coupons/welcome-50",
        {"coupon": {"code": "welcome-75", "amount_cents": 7500, "applies_to": None}},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["coupon"]["code"], changed.json()["coupon"]["amount_cents"]) == ("welcome-75", 7500)
    assert get(api, "/api/v1/coupons/welcome-75")["coupon"]["name"] == "Welcome"
    found = errors(api.put("/api/v1/coupons/welcome-75", {"coupon": {"name": None, "bar": 1}}, format="json"))
    assert found == {"bar": [NOT_SUPPORTED]}
    found = errors(api.put("/api/v1/coupons/welcome-75", {"coupon": {"name": ""}}, format="json"))
    assert found == {"name": ["is required"]}
    assert Coupon.objects.get().name == "Welcome"
