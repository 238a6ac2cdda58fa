"""Admin for plans, with their charges and tiers on one page, and the price calculator.

Charges and their tiers are edited in place with django-nested-admin. A plan that has been sold
(it has subscriptions) is never repriced from here: its pricing fields and its charges and tiers
turn read-only, and the page says how prices change instead (a new catalog version through
`load_catalog`, which adds a plan version and leaves existing subscriptions on theirs).

The plan page also links to a price calculator: one period of the plan at a usage typed in,
priced by the same line builders as invoices (billing.engine.quotes.quote_plan).

Override plans (a subscription's own prices, Lago's plan_overrides) are not catalog plans: the
list leaves them out unless its filter "Prices" asks for them, and their page is read-only (they
change through the API, billing.services.plan_overrides), linking to the catalog plan they copy
and to their subscription.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import nested_admin
from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Field, QuerySet, Window
from django.db.models.functions import Lag
from django.forms.formsets import DELETION_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join

from billing.admin.calculator import PriceCalculatorForm, quote_rows
from billing.admin.shared import admin_link, admin_page, admin_url, viewable_object
from billing.documents.formats import format_amount, format_quantity, tier_range_label
from billing.engine.money import ZERO, format_decimal
from billing.engine.pricing import TierSpec, tier_errors
from billing.engine.quotes import quote_plan
from billing.models import Charge, ChargeModel, Plan, Subscription, Tier
from billing.selectors.plans import plan_spec, plans_with_charges

if TYPE_CHECKING:
    from django.contrib.admin.options import InlineModelAdmin, _FieldGroups
    from django.utils.datastructures import _ListOrTuple

    # What SoldPlanLockMixin is mixed into (nested-admin's inlines, which are Django's).
    _Inline = InlineModelAdmin[Any, Any]
else:
    _Inline = object

# Messages are constants so tests can match them.
SOLD_PLAN_NOTE = (
    "This plan version has subscriptions, so its prices are read-only here. Prices of a sold plan "
    "change by loading a new catalog version (manage.py load_catalog FILE.json), which creates a "
    "new plan version for new subscriptions; existing subscriptions keep the version they bought."
)
TIER_TABLE_INVALID = (
    "Invalid tier table: each tier's “up to” must be greater than the previous tier's, and the "
    "last tier (and only it) must be unbounded (empty “up to”). Prices must not be negative."
)
TIERS_NOT_USED = "A {model} charge does not use tiers: remove them, or choose graduated or volume."
OVERRIDE_PLAN_NOTE = (
    "These are one subscription's own prices (Lago's plan_overrides), a copy of a catalog plan: "
    "read-only here. They change through the API: PUT /api/v1/subscriptions/<external_id> with "
    "plan_overrides. The catalog plan they copy is not affected."
)

PLAN_PRICING_FIELDS = (
    "interval",
    "currency",
    "base_fee",
    "pay_in_advance",
    "promotion",
    "commitment_amount",
    "commitment_months",
    "commitment_covers",
    "commitment_auto_renew",
)
TIERED_MODELS = frozenset({ChargeModel.GRADUATED, ChargeModel.VOLUME})


# --- Formatting ---------------------------------------------------------------------------------


def _plain_decimal(value: Decimal | None) -> Decimal | None:
    # Columns keep 10 decimal places; messages and inputs should say 25000, not 25000.0000000000.
    return None if value is None else Decimal(format_decimal(value))


def _decimal_display(field_name: str, description: str) -> Callable[[Any, Any], str]:
    """A read-only column showing a price column as a plain number (0.012 rather than 0.0120000000)."""

    @admin.display(description=description)
    def display(self: Any, obj: Any) -> str:
        value = getattr(obj, field_name)
        return "—" if value is None else format_quantity(value)

    return display


class PlainDecimalsForm(forms.ModelForm[Any]):
    """Shows stored prices as typed (25000, 0.012) instead of with all 10 stored decimal places."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, value in self.initial.items():
            if isinstance(value, Decimal):
                self.initial[name] = _plain_decimal(value)


# --- Whether a plan has been sold ---------------------------------------------------------------


def _plan_id(obj: Plan | Charge | None) -> int | None:
    if isinstance(obj, Plan):
        return obj.pk
    if isinstance(obj, Charge):
        return obj.plan_id
    return None


def plan_is_sold(request: HttpRequest, plan_id: int | None) -> bool:
    """True when the plan has subscriptions, or is a subscription's own prices (an override plan,
    read-only here even once its subscription moved to another); asked once per plan and request.

    The permission checks of the nested inlines ask this for every charge and tier form, so the
    answer is kept on the request instead of being queried each time.
    """
    if plan_id is None:
        return False
    sold: dict[int, bool] = request.__dict__.setdefault("_billing_sold_plans", {})
    if plan_id not in sold:
        sold[plan_id] = (
            Subscription.objects.filter(plan_id=plan_id).exists()
            or Plan.objects.filter(pk=plan_id, parent__isnull=False).exists()
        )
    return sold[plan_id]


class SoldPlanLockMixin(_Inline):
    """View-only inlines once the plan is sold: no add, no change, no delete."""

    locked_fields: tuple[str, ...] = ()
    sortable_field_name: str | None  # nested-admin's

    def is_locked(self, request: HttpRequest, obj: Plan | Charge | None) -> bool:
        return plan_is_sold(request, _plan_id(obj))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        if self.is_locked(request, obj):
            # Nothing to reorder, and nested-admin's sorting reads the position field from the
            # form, which a locked inline does not have. Inline instances are made per request.
            self.sortable_field_name = None
            return self.locked_fields
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> _ListOrTuple[str]:
        if self.is_locked(request, obj):
            return self.locked_fields
        return super().get_readonly_fields(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.is_locked(request, obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.is_locked(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not self.is_locked(request, obj) and super().has_delete_permission(request, obj)


# --- Tiers --------------------------------------------------------------------------------------


class TierForm(PlainDecimalsForm):
    class Meta:
        model = Tier
        fields = ("position", "up_to", "unit_amount", "flat_amount")
        widgets = {"position": forms.HiddenInput}


class TierFormSet(nested_admin.NestedInlineFormSet):
    """Checks a charge's tier table as a whole (billing.engine.pricing.tier_errors), in position order.

    nested-admin gives each tier formset its charge form as `parent_form`, and that form's
    instance (already updated from the POST) as `instance`, so a change of the charge model
    from standard to graduated is checked against the tiers submitted with it.
    """

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return  # field errors are already shown; a table check on half-read rows would only add noise
        parent = getattr(self, "parent_form", None)
        if parent is not None and parent.is_valid() and parent.cleaned_data.get(DELETION_FIELD_NAME):
            return  # the charge goes, and its tiers with it
        rows = [
            (index, form)
            for index, form in enumerate(self.forms)
            if not self._should_delete_form(form) and (form in self.initial_forms or form.has_changed())
        ]
        touched = (
            (parent is not None and parent.has_changed())
            or any(form.has_changed() for form in self.forms)
            or any(self._should_delete_form(form) for form in self.forms)
        )
        if not touched:
            return  # view-only, or nothing submitted for this charge: nothing to re-check
        rows.sort(key=lambda row: (row[1].cleaned_data.get("position") or 0, row[0]))
        forms_in_order = [form for _index, form in rows]

        model = self.instance.model
        if model not in TIERED_MODELS:
            if forms_in_order:
                raise ValidationError(TIERS_NOT_USED.format(model=model), code="tiers_not_used")
            return

        specs = [
            TierSpec(
                up_to=_plain_decimal(form.cleaned_data.get("up_to")),
                unit_amount=_plain_decimal(form.cleaned_data.get("unit_amount")) or ZERO,
                flat_amount=_plain_decimal(form.cleaned_data.get("flat_amount")) or ZERO,
            )
            for form in forms_in_order
        ]
        errors = tier_errors(specs)
        if not errors:
            return
        details = []
        for index, field, message in errors:
            if field == "tiers":
                details.append(f"{message[0].upper()}{message[1:]}.")
                continue
            label = cast("Field[Any, Any]", Tier._meta.get_field(field)).verbose_name  # a column, not a relation
            details.append(f"Tier {index + 1}, “{label}”: {message}.")
            forms_in_order[index].add_error(field, message)
        raise ValidationError([TIER_TABLE_INVALID, *details], code="invalid_tiers")


class TierInline(SoldPlanLockMixin, nested_admin.NestedTabularInline):
    model = Tier
    form = TierForm
    formset = TierFormSet
    extra = 0
    sortable_field_name = "position"
    ordering = ("position", "id")
    fields = ("position", "tier_range", "up_to", "unit_amount", "flat_amount")
    readonly_fields = ("tier_range",)
    locked_fields = ("tier_range", "up_to_display", "unit_amount_display", "flat_amount_display")

    up_to_display = _decimal_display("up_to", "up to")
    unit_amount_display = _decimal_display("unit_amount", "unit amount")
    flat_amount_display = _decimal_display("flat_amount", "flat amount")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tier]:
        # The previous tier's bound, for the range column, in the same query as the tiers.
        tiers: QuerySet[Tier] = super().get_queryset(request)
        return tiers.annotate(
            previous_up_to=Window(
                Lag("up_to"),
                partition_by=[F("charge_id")],
                order_by=[F("position").asc(), F("id").asc()],
            )
        )

    @admin.display(description="range (units)")
    def tier_range(self, obj: Tier) -> str:
        if obj.pk is None:  # a new tier's range is known once the table is saved
            # django-stubs types an AutoField pk as int, yet it is None until the row is saved.
            return "—"  # type: ignore[unreachable]
        if hasattr(obj, "previous_up_to"):
            lower = obj.previous_up_to
        else:
            # A form re-shown after a failed save is built from a queryset without the
            # annotation: the lower bound is then the saved previous tier's.
            previous = (
                Tier.objects.filter(charge_id=obj.charge_id, position__lte=obj.position)
                .exclude(pk=obj.pk)
                .exclude(position=obj.position, id__gt=obj.pk)
                .order_by("-position", "-id")
                .first()
            )
            lower = previous.up_to if previous is not None else None
        return tier_range_label(lower, obj.up_to)


# --- Charges ------------------------------------------------------------------------------------


class ChargeForm(PlainDecimalsForm):
    class Meta:
        model = Charge
        fields = (
            "position",
            "metric",
            "model",
            "unit_amount",
            "package_size",
            "package_amount",
            "free_units",
            "usage_limit",
        )
        widgets = {"position": forms.HiddenInput}


class ChargeInline(SoldPlanLockMixin, nested_admin.NestedStackedInline):
    model = Charge
    form = ChargeForm
    inlines = [TierInline]
    extra = 0
    sortable_field_name = "position"
    ordering = ("position", "id")
    fields = (
        "position",
        ("metric", "model"),
        "unit_amount",
        ("package_size", "package_amount", "free_units"),
        "usage_limit",
    )
    locked_fields = (
        "metric",
        "model",
        "unit_amount_display",
        "package_size",
        "package_amount_display",
        "free_units_display",
        "usage_limit_display",
    )

    unit_amount_display = _decimal_display("unit_amount", "unit amount (standard)")
    package_amount_display = _decimal_display("package_amount", "package amount")
    free_units_display = _decimal_display("free_units", "free units")
    usage_limit_display = _decimal_display("usage_limit", "usage limit")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Charge]:
        return super().get_queryset(request).select_related("metric")


# --- Plans and the price calculator -------------------------------------------------------------


class PlanPricesFilter(admin.SimpleListFilter):
    """Catalog plans by default; a subscription's own prices (override plans) on request."""

    title = "prices"
    parameter_name = "prices"
    OWN = "own"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(self.OWN, "Own prices of a subscription")]

    def choices(self, changelist: Any) -> Any:
        yield {
            "selected": self.value() != self.OWN,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Catalog plans",
        }
        yield {
            "selected": self.value() == self.OWN,
            "query_string": changelist.get_query_string({self.parameter_name: self.OWN}),
            "display": "Own prices of a subscription",
        }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Plan]) -> QuerySet[Plan]:
        return queryset.filter(parent__isnull=self.value() != self.OWN)


class PlanForm(PlainDecimalsForm):
    class Meta:
        model = Plan
        fields = ("code", "version", "is_current", "name", "description", *PLAN_PRICING_FIELDS)


@admin.register(Plan)
class PlanAdmin(nested_admin.NestedModelAdmin):
    form = PlanForm
    inlines = [ChargeInline]
    list_display = (
        "code",
        "version",
        "is_current",
        "name",
        "base_fee_display",
        "promotion",
        "subscriptions_link",
    )
    list_filter = (PlanPricesFilter, "is_current", "interval", "currency")
    search_fields = ("code", "name")
    list_select_related = ("promotion",)
    ordering = ("code", "-version")
    readonly_fields = (
        "subscriptions_link",
        "override_of",
        "invoice_display_name",
        "metadata",
        "created_at",
        "updated_at",
    )

    base_fee_locked_display = _decimal_display("base_fee", "base fee")
    commitment_amount_locked_display = _decimal_display("commitment_amount", "commitment amount")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        # One count per plan in the list query itself: no query per row.
        plans: QuerySet[Plan] = super().get_queryset(request)  # nested-admin's (untyped)
        return plans.annotate(subscription_count=Count("subscriptions"))

    def is_sold(self, request: HttpRequest, obj: Plan | None) -> bool:
        if obj is None or obj.pk is None:
            return False
        count = getattr(obj, "subscription_count", None)
        if count is not None:
            request.__dict__.setdefault("_billing_sold_plans", {})[obj.pk] = count > 0 or obj.parent_id is not None
        return plan_is_sold(request, obj.pk)

    def has_change_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        if obj is not None and obj.parent_id is not None:
            return False  # a subscription's own prices change through the API only
        return bool(super().has_change_permission(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        if obj is not None and (obj.parent_id is not None or self.is_sold(request, obj)):
            return False  # a sold version is the record of what its subscribers pay: never deleted
        return bool(super().has_delete_permission(request, obj))

    @admin.display(description="own prices of")
    def override_of(self, obj: Plan) -> str:
        """An override plan's catalog plan and subscription, as links."""
        if obj.parent_id is None:
            return "—"
        parent = admin_link("billing_plan_change", obj.parent_id, str(obj.parent))
        subscriptions = [
            admin_link("billing_subscription_change", sub.pk, sub.external_id) for sub in obj.subscriptions.all()
        ]
        if not subscriptions:
            return format_html("a copy of {}; its subscription has moved to newer prices", parent)
        return format_html(
            "a copy of {}, for subscription {}", parent, format_html_join(", ", "{}", ((s,) for s in subscriptions))
        )

    @admin.display(description="base fee", ordering="base_fee")
    def base_fee_display(self, obj: Plan) -> str:
        return f"{format_amount(obj.base_fee, obj.currency)} {obj.currency} / {obj.get_interval_display().lower()}"

    @admin.display(description="subscriptions", ordering="subscription_count")
    def subscriptions_link(self, obj: Plan) -> str:
        count = getattr(obj, "subscription_count", None)
        if count is None:
            count = obj.subscriptions.count()
        url = admin_url("billing_subscription_changelist")
        if url is None:  # subscriptions not in this admin site
            return str(count)
        return format_html('<a href="{}?plan__id__exact={}">{}</a>', url, obj.pk, count)

    def get_fieldsets(self, request: HttpRequest, obj: Plan | None = None) -> Any:
        sold = self.is_sold(request, obj)
        pricing: tuple[Any, ...] = ("interval", "currency", "base_fee", "pay_in_advance", "promotion")
        commitment: tuple[Any, ...] = (
            ("commitment_amount", "commitment_months"),
            ("commitment_covers", "commitment_auto_renew"),
        )
        if sold:
            # Shown as plain numbers (120, not 120.0000000000); the fields themselves stay in
            # get_readonly_fields so they are left out of the form.
            pricing = ("interval", "currency", "base_fee_locked_display", "pay_in_advance", "promotion")
            commitment = (
                ("commitment_amount_locked_display", "commitment_months"),
                ("commitment_covers", "commitment_auto_renew"),
            )
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [
            (None, {"fields": ("code", "version", "is_current", "name", "description")}),
            ("Pricing", {"fields": pricing}),  # a sold plan's note is said once, above the form
            (
                "Default commitment",
                {
                    "fields": commitment,
                    "description": "Copied onto each new subscription; leave the amount empty for none.",
                },
            ),
        ]
        if obj is not None and obj.parent_id is not None:  # a subscription's own prices
            names = ("code", "version", "override_of", "name", "invoice_display_name", "description")
            fieldsets[0] = (None, {"fields": names})  # the page's note says what they are
            fieldsets[1] = ("Pricing", {"fields": pricing})
        if obj is not None:
            # Lago's metadata, set through the API (not pricing: no version).
            fieldsets.append(("Metadata", {"fields": ("metadata",), "classes": ("collapse",)}))
            fieldsets.append(("History", {"fields": ("subscriptions_link", "created_at", "updated_at")}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Plan | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        if self.is_sold(request, obj):
            # Its code, version and currency name what subscribers bought; only its labels change.
            fields += ("code", "version", "is_current")
            fields += (*PLAN_PRICING_FIELDS, "base_fee_locked_display", "commitment_amount_locked_display")
        return fields

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Plan | None = None,
    ) -> HttpResponse:
        context["plan_is_sold"] = self.is_sold(request, obj)
        is_override = obj is not None and obj.parent_id is not None
        context["sold_plan_note"] = OVERRIDE_PLAN_NOTE if is_override else SOLD_PLAN_NOTE
        response: HttpResponse = super().render_change_form(  # nested-admin's (untyped)
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )
        return response

    def get_urls(self) -> list[URLPattern]:
        opts = self.opts
        return [
            path(
                "<path:object_id>/calculator/",
                self.admin_site.admin_view(self.calculator_view),
                name=f"{opts.app_label}_{opts.model_name}_calculator",
            ),
            *super().get_urls(),
        ]

    def calculator_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Price one full period of the plan at the quantities in the query string."""
        obj: Plan | HttpResponse = viewable_object(self, request, object_id)
        if isinstance(obj, HttpResponse):
            return obj
        plan = plans_with_charges().get(pk=obj.pk)
        spec = plan_spec(plan)
        form = PriceCalculatorForm(request.GET or None, charges=spec.charges, currency=spec.currency)
        result = None
        if form.is_valid():
            try:
                result = quote_rows(quote_plan(spec, form.usage(), coupons=form.coupons(), taxes=form.taxes()))
            except ValueError as exc:  # a stored charge the engine cannot price
                form.add_error(None, str(exc))
        return admin_page(
            self,
            request,
            "admin/billing/plan/calculator.html",
            title="Price calculator",
            subtitle=str(plan),
            original=plan,
            plan=plan,
            plan_is_sold=self.is_sold(request, obj),
            form=form,
            result=result,
        )
