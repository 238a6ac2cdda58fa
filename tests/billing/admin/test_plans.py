"""The catalog admin: plans with nested charges and tiers, sold-plan locking, the price calculator,
and the metric and promotion pages.

Forms are posted the way a browser would: the change page is fetched, every field of its form is
read from the HTML, a few values are changed, and the whole form is sent back.
"""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from billing.admin.calculator import QUANTITY_INVALID, QUANTITY_NEGATIVE
from billing.admin.plans import SOLD_PLAN_NOTE, TIER_TABLE_INVALID, TIERS_NOT_USED
from billing.admin.promotions import SOLD_PROMOTION_NOTE
from billing.documents.formats import tier_range_label
from billing.engine.pricing import TIER_LAST_BOUNDED
from billing.engine.vocabulary import CouponType
from billing.models import Charge, ChargeModel, Coupon, Plan, Tax, Tier
from metering.admin import METRIC_IN_USE_NOTE
from metering.models import Aggregation
from tests.factories import (
    BillableMetricFactory,
    ChargeFactory,
    PlanFactory,
    PromotionFactory,
    SubscriptionFactory,
    TierFactory,
    team_plan,
)

pytestmark = pytest.mark.django_db


class _FormFields(HTMLParser):
    """The name/value pairs a browser would submit from the form with the given id."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.in_form = False
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.in_form = a.get("id") == self.form_id
            return
        if not self.in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in {"submit", "button", "image", "file", "reset"}:
                return
            if kind in {"checkbox", "radio"}:
                if "checked" in a:
                    self.fields[name] = a.get("value") or "on"
                return
            self.fields[name] = a.get("value") or ""
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value") or "", "selected" in a))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.in_form = False
        elif tag == "select" and self._select is not None:
            chosen = [value for value, selected in self._options if selected]
            default = self._options[0][0] if self._options else ""
            self.fields[self._select] = chosen[0] if chosen else default
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields[self._textarea] = "".join(self._text).lstrip("\n")
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)


def form_data(client: Client, url: str, form_id: str = "plan_form") -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    parser = _FormFields(form_id)
    parser.feed(response.content.decode())
    assert parser.fields, f"no form {form_id!r} on {url}"
    return parser.fields


def change_url(plan: Plan) -> str:
    return reverse("admin:billing_plan_change", args=[plan.pk])


def calculator_url(plan: Plan) -> str:
    return reverse("admin:billing_plan_calculator", args=[plan.pk])


def tier_table(plan: Plan) -> list[tuple[Decimal | None, Decimal]]:
    tiers = Tier.objects.filter(charge__plan=plan).order_by("position", "id")
    return [(t.up_to, t.unit_amount) for t in tiers]


# --- Plan list ----------------------------------------------------------------------------------


def test_plan_changelist_lists_plans_in_a_bounded_number_of_queries(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    promotion = PromotionFactory(code="trial-14d-base", name="14-day free trial")
    plans = [PlanFactory(code=f"plan-{i:02d}", base_fee=Decimal("120"), promotion=promotion) for i in range(50)]
    for plan in plans[:10]:
        SubscriptionFactory(plan=plan)
    SubscriptionFactory(plan=plans[0])

    # Session, user, counts and one list query: the same however many plans there are.
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:billing_plan_changelist"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "plan-00" in content and "plan-49" in content
    assert "120.00 USD" in content
    assert "14-day free trial (trial-14d-base)" in content
    rows = {obj.code: obj for obj in response.context["cl"].result_list}
    assert rows["plan-00"].subscription_count == 2
    assert rows["plan-05"].subscription_count == 1
    assert rows["plan-49"].subscription_count == 0


# --- Plan page: charges and tiers ---------------------------------------------------------------


def test_plan_page_renders_charges_and_tiers_with_their_ranges(admin_client: Client) -> None:
    plan = team_plan()

    response = admin_client.get(change_url(plan))

    assert response.status_code == 200
    content = response.content.decode()
    for label in ("Up to 10,000", "10,001 – 25,000", "25,001 – 100,000", "100,001 and above"):
        assert label in content
    # Editable, with prices as typed rather than with the 10 stored decimal places.
    assert 'name="charges-0-metric"' in content
    assert 'name="charges-0-tiers-1-up_to" value="25000"' in content
    assert 'name="charges-0-tiers-1-unit_amount" value="0.012"' in content
    assert 'name="base_fee" value="120"' in content
    assert calculator_url(plan) in content
    assert "Price calculator" in content
    assert SOLD_PLAN_NOTE not in content


def test_editing_a_tier_from_the_plan_page_saves_it(admin_client: Client) -> None:
    plan = team_plan()
    data = form_data(admin_client, change_url(plan))
    data["charges-0-tiers-1-unit_amount"] = "0.013"

    response = admin_client.post(change_url(plan), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert tier_table(plan)[1] == (Decimal("25000"), Decimal("0.013"))


def test_out_of_order_tier_table_is_rejected_and_nothing_changes(admin_client: Client) -> None:
    plan = team_plan()
    before = tier_table(plan)
    data = form_data(admin_client, change_url(plan))
    data["name"] = "Team (renamed)"
    data["charges-0-tiers-1-up_to"] = "5000"  # below the 10,000 of the tier before it

    response = admin_client.post(change_url(plan), data)

    assert response.status_code == 200
    content = response.content.decode()
    assert escape(TIER_TABLE_INVALID) in content
    assert escape("Tier 2, “up to”: must be greater than 10000.") in content
    plan.refresh_from_db()
    assert plan.name == "Team"
    assert tier_table(plan) == before


def test_a_negative_tier_price_is_an_error_on_its_input_in_words(admin_client: Client) -> None:
    plan = team_plan()
    before = tier_table(plan)
    data = form_data(admin_client, change_url(plan))
    data["charges-0-tiers-1-unit_amount"] = "-0.5"

    response = admin_client.post(change_url(plan), data)

    assert response.status_code == 200
    content = response.content.decode()
    assert "must not be negative" in content and "is violated" not in content
    tier_forms = response.context["inline_admin_formsets"][0].formset.forms[0].nested_formsets[0].forms
    assert tier_forms[1].errors == {"unit_amount": ["must not be negative"]}
    assert tier_table(plan) == before


def test_tier_table_must_end_with_an_unbounded_tier(admin_client: Client) -> None:
    plan = team_plan()
    before = tier_table(plan)
    data = form_data(admin_client, change_url(plan))
    data["charges-0-tiers-3-up_to"] = "200000"

    response = admin_client.post(change_url(plan), data)

    assert response.status_code == 200
    assert escape(TIER_TABLE_INVALID) in response.content.decode()
    assert escape(TIER_LAST_BOUNDED) in response.content.decode()
    assert tier_table(plan) == before


def test_switching_a_tiered_charge_to_standard_with_its_tiers_is_rejected(admin_client: Client) -> None:
    plan = team_plan()
    data = form_data(admin_client, change_url(plan))
    data["charges-0-model"] = ChargeModel.STANDARD

    response = admin_client.post(change_url(plan), data)

    assert response.status_code == 200
    assert escape(TIERS_NOT_USED.format(model="standard")) in response.content.decode()
    assert Charge.objects.get(plan=plan).model == ChargeModel.GRADUATED


def _new_plan_with_graduated_charge(client: Client, tiers: list[tuple[str, str]]) -> dict[str, str]:
    """The add page's form, filled in as finance staff would: one graduated charge and its tiers."""
    metric = BillableMetricFactory()
    data = form_data(client, reverse("admin:billing_plan_add"))
    data.update({"code": "growth", "name": "Growth", "base_fee": "50", "currency": "USD"})
    data.update(
        {
            "charges-TOTAL_FORMS": "1",
            "charges-0-position": "0",
            "charges-0-metric": str(metric.pk),
            "charges-0-model": ChargeModel.GRADUATED,
            "charges-0-unit_amount": "0",
            "charges-0-free_units": "0",
            "charges-0-tiers-TOTAL_FORMS": str(len(tiers)),
            "charges-0-tiers-INITIAL_FORMS": "0",
            "charges-0-tiers-MIN_NUM_FORMS": "0",
            "charges-0-tiers-MAX_NUM_FORMS": "1000",
        }
    )
    for i, (up_to, unit_amount) in enumerate(tiers):
        data.update(
            {
                f"charges-0-tiers-{i}-position": str(i),
                f"charges-0-tiers-{i}-up_to": up_to,
                f"charges-0-tiers-{i}-unit_amount": unit_amount,
                f"charges-0-tiers-{i}-flat_amount": "0",
            }
        )
    return data


def test_plan_with_a_graduated_charge_is_created_from_the_add_page(admin_client: Client) -> None:
    data = _new_plan_with_graduated_charge(admin_client, [("1000", "0"), ("", "0.5")])

    response = admin_client.post(reverse("admin:billing_plan_add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    plan = Plan.objects.get(code="growth")
    assert plan.base_fee == Decimal("50")
    assert tier_table(plan) == [(Decimal("1000"), Decimal("0")), (None, Decimal("0.5"))]


def test_graduated_charge_without_tiers_is_rejected(admin_client: Client) -> None:
    data = _new_plan_with_graduated_charge(admin_client, [])

    response = admin_client.post(reverse("admin:billing_plan_add"), data)

    assert response.status_code == 200
    assert "At least one tier is required." in response.content.decode()
    assert not Plan.objects.filter(code="growth").exists()


# --- Sold plans ---------------------------------------------------------------------------------


def test_sold_plan_shows_its_pricing_read_only_with_a_note(admin_client: Client) -> None:
    plan = team_plan(commitment_amount=Decimal("1440"), commitment_months=12)
    SubscriptionFactory(plan=plan)

    response = admin_client.get(change_url(plan))

    assert response.status_code == 200
    content = response.content.decode()
    assert escape(SOLD_PLAN_NOTE) in content
    assert "load_catalog" in content
    for field in ("interval", "currency", "base_fee", "pay_in_advance", "promotion", "commitment_amount"):
        assert f'name="{field}"' not in content
    assert 'name="name"' in content  # the label of a plan is not its price
    # Charges and tiers are shown, not editable: no inputs, no add or delete.
    assert 'name="charges-0-metric"' not in content
    assert 'name="charges-0-tiers-1-up_to"' not in content
    assert 'name="charges-0-DELETE"' not in content
    assert "10,001 – 25,000" in content
    assert "0.012" in content and "0.0120000000" not in content
    assert "1,440" in content


def test_posting_new_prices_to_a_sold_plan_changes_nothing_but_its_label(admin_client: Client) -> None:
    plan = team_plan()
    SubscriptionFactory(plan=plan)
    before = tier_table(plan)
    data = form_data(admin_client, change_url(plan))
    data.update(
        {
            "name": "Team (legacy)",
            "base_fee": "1",
            "charges-0-model": ChargeModel.STANDARD,
            "charges-0-tiers-1-up_to": "5000",
            "charges-0-tiers-1-unit_amount": "9",
            "charges-0-DELETE": "on",
            "charges-0-tiers-3-DELETE": "on",
        }
    )

    response = admin_client.post(change_url(plan), data)

    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.name == "Team (legacy)"
    assert plan.base_fee == Decimal("120")
    assert Charge.objects.get(plan=plan).model == ChargeModel.GRADUATED
    assert tier_table(plan) == before


# --- Price calculator ---------------------------------------------------------------------------


def test_calculator_prices_the_team_tiers(admin_client: Client) -> None:
    plan = team_plan()

    response = admin_client.get(calculator_url(plan), {"mtu": "30000"})

    assert response.status_code == 200
    content = response.content.decode()
    assert "355.00" in content
    result = response.context["result"]
    assert result["total"] == "355.00"
    usage = result["lines"][1]
    assert usage["amount"] == "235.00"
    assert [(t["range"], t["units"], t["unit_amount"], t["amount"]) for t in usage["tiers"]] == [
        ("Up to 10,000", "10,000", "0", "0.00"),
        ("10,001 – 25,000", "15,000", "0.012", "180.00"),
        ("25,001 – 100,000", "5,000", "0.011", "55.00"),
        ("100,001 and above", "0", "0.01", "0.00"),
    ]
    for shown in ("15,000", "180.00", "55.00", "120.00"):
        assert shown in content


def test_calculator_applies_a_coupon_then_the_organization_taxes_as_an_invoice_does(admin_client: Client) -> None:
    # The worked case of DESIGN §6: $355.00, a 10 % coupon (-35.50), a 20 % tax on 319.50 (+63.90).
    plan = team_plan()
    Coupon.objects.create(
        code="ten", name="Ten percent", coupon_type=CouponType.PERCENTAGE, percentage_rate=Decimal("10")
    )
    Coupon.objects.create(  # a fixed amount in another currency cannot reduce a USD plan: not offered
        code="eur", name="Euros", coupon_type=CouponType.FIXED_AMOUNT, amount=Decimal("5"), currency="EUR"
    )
    Tax.objects.create(code="vat", name="VAT", rate=Decimal("20"), applied_to_organization=True)

    response = admin_client.get(calculator_url(plan), {"mtu": "30000", "coupon": "ten", "organization_taxes": "on"})

    assert response.status_code == 200
    result = response.context["result"]
    assert [(line["description"], line["amount"]) for line in result["lines"][2:]] == [
        ("Coupon Ten percent", "-35.50"),
        ("VAT (20 %)", "63.90"),
    ]
    assert result["total"] == "383.40"
    assert 'value="eur"' not in response.content.decode()

    without = admin_client.get(calculator_url(plan), {"mtu": "30000"}).context["result"]
    assert without["total"] == "355.00"


def test_calculator_refuses_an_unknown_coupon_by_name(admin_client: Client) -> None:
    response = admin_client.get(calculator_url(team_plan()), {"mtu": "1", "coupon": "nope"})

    assert response.context["result"] is None
    assert response.context["form"].errors["coupon"] == ["coupon: choose one of the active coupons listed."]


def test_calculator_form_starts_empty_and_is_linked_from_the_plan_page(admin_client: Client) -> None:
    plan = team_plan()

    response = admin_client.get(calculator_url(plan))

    assert response.status_code == 200
    assert response.context["result"] is None
    assert 'name="mtu"' in response.content.decode()


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("abc", QUANTITY_INVALID), ("-5", QUANTITY_NEGATIVE), ("NaN", QUANTITY_INVALID)],
)
def test_calculator_rejects_bad_quantities_with_a_field_error(
    admin_client: Client, quantity: str, message: str
) -> None:
    plan = team_plan()

    response = admin_client.get(calculator_url(plan), {"mtu": quantity})

    assert response.status_code == 200
    assert response.context["result"] is None
    assert response.context["form"].errors == {"mtu": [message.format(code="mtu")]}
    assert escape(message.format(code="mtu")) in response.content.decode()


def test_calculator_needs_the_view_permission(client: Client, django_user_model: Any) -> None:
    plan = team_plan()
    user = django_user_model.objects.create_user("clerk", password="x", is_staff=True)
    client.force_login(user)

    assert client.get(calculator_url(plan), {"mtu": "1"}).status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="view_plan"))
    response = client.get(calculator_url(plan), {"mtu": "1"})
    assert response.status_code == 200
    assert response.context["result"]["total"] == "120.00"


def test_calculator_of_a_missing_plan_redirects(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:billing_plan_calculator", args=[999_999]))
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("lower", "up_to", "label"),
    [
        (None, Decimal("10000"), "Up to 10,000"),
        (Decimal("10000"), Decimal("25000"), "10,001 – 25,000"),
        (Decimal("100000"), None, "100,001 and above"),
        (None, None, "Every unit"),
        (Decimal("10.5"), Decimal("20"), "over 10.5 – 20"),
    ],
)
def test_tier_range_labels(lower: Decimal | None, up_to: Decimal | None, label: str) -> None:
    assert tier_range_label(lower, up_to) == label


# --- Metrics and promotions ---------------------------------------------------------------------


def test_metric_admin_pages_render(admin_client: Client) -> None:
    mtu = BillableMetricFactory()
    BillableMetricFactory(code="api_calls", name="API calls", aggregation=Aggregation.COUNT, field="")

    listing = admin_client.get(reverse("admin:metering_billablemetric_changelist"))
    filtered = admin_client.get(
        reverse("admin:metering_billablemetric_changelist"), {"aggregation__exact": "count", "q": "api"}
    )
    change = admin_client.get(reverse("admin:metering_billablemetric_change", args=[mtu.pk]))
    add = admin_client.get(reverse("admin:metering_billablemetric_add"))

    assert listing.status_code == filtered.status_code == change.status_code == add.status_code == 200
    assert "user_id" in listing.content.decode() and "api_calls" in listing.content.decode()
    assert [m.code for m in filtered.context["cl"].result_list] == ["api_calls"]
    assert 'value="user_id"' in change.content.decode()


def test_metric_billed_on_a_sold_plan_keeps_its_aggregation(admin_client: Client) -> None:
    plan = team_plan()
    metric = BillableMetricFactory()
    url = reverse("admin:metering_billablemetric_change", args=[metric.pk])
    assert 'name="aggregation"' in admin_client.get(url).content.decode()

    SubscriptionFactory(plan=plan)
    data = form_data(admin_client, url, form_id="billablemetric_form")
    data.update({"name": "Tracked users", "aggregation": Aggregation.COUNT, "field": ""})
    response = admin_client.post(url, data)

    assert response.status_code == 302
    metric.refresh_from_db()
    assert (metric.name, metric.aggregation, metric.field) == ("Tracked users", "unique_count", "user_id")
    assert escape(METRIC_IN_USE_NOTE) in admin_client.get(url).content.decode()


def test_promotion_admin_pages_render(admin_client: Client) -> None:
    trial = PromotionFactory(code="trial-14d", name="14-day free trial", applies_to="plan")
    PlanFactory(promotion=trial)

    listing = admin_client.get(reverse("admin:billing_promotion_changelist"))
    change = admin_client.get(reverse("admin:billing_promotion_change", args=[trial.pk]))

    assert listing.status_code == change.status_code == 200
    content = listing.content.decode()
    assert "trial-14d" in content and "100.00" in content and "Whole plan" in content
    assert 'name="percent_off"' in change.content.decode()


def test_promotion_used_by_subscriptions_has_read_only_terms(admin_client: Client) -> None:
    trial = PromotionFactory()
    SubscriptionFactory(plan=PlanFactory(promotion=trial))

    response = admin_client.get(reverse("admin:billing_promotion_change", args=[trial.pk]))

    content = response.content.decode()
    assert escape(SOLD_PROMOTION_NOTE) in content
    assert 'name="percent_off"' not in content
    assert 'name="name"' in content


def test_factories_build_a_subscribed_graduated_plan() -> None:
    tier = TierFactory(up_to=None, unit_amount=Decimal("0.5"))
    subscription = SubscriptionFactory(plan=tier.charge.plan)
    second = ChargeFactory(plan=subscription.plan, metric=BillableMetricFactory(code="events", field="id"))

    assert tier.charge.model == ChargeModel.GRADUATED
    assert tier.charge.metric.code == "mtu"
    assert second.position == 0 and second.metric.code == "events"
    assert subscription.customer.currency == "USD" and subscription.customer.timezone == "UTC"
