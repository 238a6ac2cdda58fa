"""Admin for what billing adds to a customer: subscriptions, and the current usage of each.

- The customer admin (customers.admin.CustomerAdmin) is replaced by a subclass that counts each
  customer's active subscriptions, lists its subscriptions on its page, and shows a read-only
  "Current usage" panel per active subscription: the open period, each charge's units, amount,
  tier and distance to the next tier or to the usage limit, and the invoice preview. The panel
  is billing.usage.current_usage, the same measurement and pricing as the API and invoices;
  nothing is priced here. Currency and time zone turn read-only once the customer has
  subscriptions or events: they decide how periods are cut and what is billed.
- The subscription admin creates subscriptions through billing.subscriptions.subscription_create
  (which attaches the plan's promotion unless another one, or none, is chosen) and terminates
  them through subscription_terminate. A subscription's terms are read-only once it exists.

Imported at the end of billing.admin, so it registers with the rest of billing's admin.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import ngettext

from billing.admin_audit import customer_usage_charts
from billing.customer_commitments import commitment_panels
from billing.models import Plan, Promotion, Subscription, SubscriptionStatus
from billing.price_calculator import grouped, money, tier_range_label
from billing.pricing import PricedCharge, TierLine
from billing.selectors import plans_with_charges
from billing.subscriptions import CURRENCY_MISMATCH, subscription_create, subscription_terminate
from billing.usage import ChargeUsage, PeriodUsage, current_usage, promotion_window
from customers.admin import CustomerAdmin
from customers.models import Customer
from metering.models import Event

# Messages are constants so tests can match them.
CUSTOMER_LOCKED_NOTE = (
    "This customer has subscriptions or usage events, so its currency and time zone are read-only: "
    "they decide what its plans bill and where its billing periods start and end."
)
SUBSCRIPTION_TERMS_NOTE = (
    "A subscription's terms are read-only once it exists: end it with the action “Terminate selected "
    "subscriptions now”, and subscribe the customer again to change plan."
)
PROMOTION_HELP = "Empty: the plan's promotion (e.g. its free trial) is attached."
EXTERNAL_ID_LIVE = (
    "A live subscription already has this external id (customer {customer!r}, plan {plan!r}). "
    "Terminate it first, or change its plan through the API (same external id, new plan code)."
)
SUBSCRIPTIONS_TERMINATED = (
    "%(count)d subscription was terminated.",
    "%(count)d subscriptions were terminated.",
)
SUBSCRIPTIONS_ALREADY_TERMINATED = (
    "%(count)d selected subscription was already terminated.",
    "%(count)d selected subscriptions were already terminated.",
)
USAGE_UNAVAILABLE = "Current usage could not be priced: {error}"


def _admin_url(name: str, *args: Any) -> str | None:
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:  # not in this admin site
        return None


def promotion_end_display(subscription: Subscription) -> str:
    """When the subscription's promotion ends, as the start of its first day without it, local time."""
    window = promotion_window(subscription)
    if window is None:
        return "—"
    return f"{window.name}: until {window.end_day.isoformat()} 00:00 {subscription.customer.timezone}"


# --- The current usage panel --------------------------------------------------------------------


def _current_tier(priced: PricedCharge) -> tuple[int, TierLine] | None:
    """The tier the billed units are in: the first whose upper bound they do not pass."""
    for index, tier in enumerate(priced.tiers):
        if tier.up_to is None or priced.billed_units <= tier.up_to:
            return index, tier
    return None


def charge_row(usage: ChargeUsage, currency: str) -> dict[str, Any]:
    """One charge of the panel, as display strings; every number comes from the pricing engine."""
    priced = usage.line.priced
    assert priced is not None
    spec = usage.measured.charge
    tier = "—"
    to_next = "—"
    found = _current_tier(priced)
    if found is not None:
        index, current = found
        tier = f"Tier {current.position}: {tier_range_label(current.from_units, current.up_to)}"
        if current.up_to is None:
            to_next = "Top tier"
        elif index + 1 < len(priced.tiers):
            following = priced.tiers[index + 1]
            to_next = (
                f"{grouped(current.up_to - priced.billed_units)} more until tier {following.position} "
                f"({tier_range_label(following.from_units, following.up_to)} at {grouped(following.unit_amount)})"
            )
    limit = None
    if spec.usage_limit is not None:
        quantity = usage.measured.quantity
        cap = grouped(spec.usage_limit)
        if priced.limit_exceeded:
            limit = f"Exceeded by {grouped(quantity - spec.usage_limit)} (limit {cap}; the excess is not billed)"
        else:
            limit = f"{grouped(spec.usage_limit - quantity)} left of {cap}"
    return {
        "metric_code": usage.measured.metric_code,
        "metric_name": usage.measured.metric_name,
        "units": grouped(usage.measured.quantity),
        "billed_units": grouped(priced.billed_units),
        "events_count": f"{usage.events_count:,}",
        "amount": money(usage.line.amount, currency),
        "tier": tier,
        "to_next_tier": to_next,
        "usage_limit": limit,
        "limit_exceeded": priced.limit_exceeded,
    }


def usage_panel(usage: PeriodUsage) -> dict[str, Any]:
    """The panel of one subscription's open period, as display strings for the template."""
    period = usage.period
    currency = usage.currency
    subscription = usage.subscription
    return {
        "subscription": subscription,
        "subscription_url": _admin_url("billing_subscription_change", subscription.pk),
        "plan": subscription.plan,
        "timezone": subscription.customer.timezone,
        "first_day": period.start_day,
        "last_day": period.end_day - timedelta(days=1),
        "start": period.start,
        "end": period.end,
        "is_partial": period.is_partial,
        "currency": currency,
        "charges": [charge_row(c, currency) for c in usage.charges],
        "lines": [
            {
                "kind": line.kind,
                "description": line.description,
                "quantity": grouped(line.quantity) if line.quantity != 1 or line.kind == "usage" else "",
                "amount": money(line.amount, currency),
            }
            for line in usage.lines
        ],
        "usage_amount": money(usage.usage_amount, currency),
        "total": money(usage.total, currency),
        "error": None,
    }


def current_usage_panels(customer: Customer, at: Any) -> list[dict[str, Any]]:
    """One panel per active subscription of the customer, at the moment `at`."""
    subscriptions = (
        Subscription.objects.filter(customer=customer, status=SubscriptionStatus.ACTIVE)
        .select_related("customer", "promotion")
        .prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
        .order_by("subscription_at", "id")
    )
    panels = []
    for subscription in subscriptions:
        try:
            panels.append(usage_panel(current_usage(subscription=subscription, at=at)))
        except ValueError as exc:  # a stored charge the engine cannot price: say so, keep the page
            panels.append(
                {"subscription": subscription, "plan": subscription.plan, "error": USAGE_UNAVAILABLE.format(error=exc)}
            )
    return panels


# --- Customers ----------------------------------------------------------------------------------


class SubscriptionInline(admin.TabularInline):
    """The customer's subscriptions, read-only: they are created and ended from the subscription admin."""

    model = Subscription
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("plan_display", "status", "subscription_at", "billing_time", "promotion_end", "terminated_at")
    readonly_fields = fields
    ordering = ("-subscription_at", "id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("plan", "promotion", "customer")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="plan")
    def plan_display(self, obj: Subscription) -> str:
        return str(obj.plan)

    @admin.display(description="trial / promotion ends")
    def promotion_end(self, obj: Subscription) -> str:
        return promotion_end_display(obj)


class BilledCustomerAdmin(CustomerAdmin):
    """The customer admin with what billing knows: subscriptions and their current usage."""

    list_display = (
        "external_id",
        "name",
        "email",
        "currency",
        "timezone",
        "active_subscriptions",
        "created_at",
    )
    inlines = [SubscriptionInline]
    change_form_template = "admin/billing/audit/customer_change_form.html"  # + MTU charts (billing.admin_audit)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # The count is part of the list query: no query per row.
        return (
            super()
            .get_queryset(request)
            .annotate(
                active_subscription_count=Count(
                    "subscriptions", filter=Q(subscriptions__status=SubscriptionStatus.ACTIVE)
                )
            )
        )

    @admin.display(description="active subscriptions", ordering="active_subscription_count")
    def active_subscriptions(self, obj: Customer) -> int:
        return obj.active_subscription_count  # type: ignore[attr-defined]

    def is_billed(self, request: HttpRequest, obj: Customer | None) -> bool:
        """Whether the customer has subscriptions or events; asked once per customer and request."""
        if obj is None or obj.pk is None:
            return False
        billed: dict[int, bool] = request.__dict__.setdefault("_billing_billed_customers", {})
        if obj.pk not in billed:
            billed[obj.pk] = (
                Subscription.objects.filter(customer=obj).exists() or Event.objects.filter(customer=obj).exists()
            )
        return billed[obj.pk]

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> Sequence[str]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "currency", "timezone") if self.is_billed(request, obj) else fields

    def get_fieldsets(self, request: HttpRequest, obj: Customer | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if not self.is_billed(request, obj):
            return fieldsets
        return [
            (name, {**options, "description": CUSTOMER_LOCKED_NOTE}) if name == "Billing" else (name, options)
            for name, options in fieldsets
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Customer | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            now = timezone.now()
            context["current_usage"] = current_usage_panels(obj, now)
            subscriptions = [panel["subscription"] for panel in context["current_usage"]]
            context["usage_charts"] = customer_usage_charts(obj, subscriptions, now)
            context["current_usage_shown"] = True
            context["commitment_panels"] = commitment_panels(obj)
            events_url = _admin_url("metering_event_changelist")
            if events_url is not None:
                context["customer_events_url"] = f"{events_url}?customer__id__exact={obj.pk}"
            add_url = _admin_url("billing_subscription_add")
            subscription_admin = self.admin_site._registry.get(Subscription)
            # Only offer the button to someone who may use it (read-only staff would get a 403).
            if add_url is not None and subscription_admin and subscription_admin.has_add_permission(request):
                context["add_subscription_url"] = f"{add_url}?customer={obj.pk}"
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)


admin.site.unregister(Customer)
admin.site.register(Customer, BilledCustomerAdmin)


# --- Subscriptions ------------------------------------------------------------------------------


class PlanCodeFilter(admin.SimpleListFilter):
    """By plan family (code), whatever the version."""

    title = "plan"
    parameter_name = "plan_code"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        codes = Plan.objects.order_by("code").values_list("code", flat=True).distinct()
        return [(code, code) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> QuerySet[Subscription]:
        if self.value():
            return queryset.filter(plan__code=self.value())
        return queryset


class SubscriptionAddForm(forms.ModelForm):
    """A new subscription: to a current plan version, in the customer's currency."""

    no_promotion = forms.BooleanField(
        required=False,
        label="No promotion",
        help_text="Do not attach the plan's promotion either.",
    )

    class Meta:
        model = Subscription
        fields = ("external_id", "customer", "plan", "subscription_at", "billing_time", "promotion")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = Plan.objects.current().order_by("code")
        self.fields["plan"].help_text = "The plan's current version; its promotion is attached unless you choose one."
        self.fields["promotion"].help_text = PROMOTION_HELP
        self.fields["subscription_at"].initial = timezone.now

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        external_id = cleaned.get("external_id")
        if external_id:
            # Unique among live subscriptions (a conditional constraint the form cannot check itself).
            live = (
                Subscription.objects.exclude(status=SubscriptionStatus.TERMINATED)
                .filter(external_id=external_id)
                .select_related("customer", "plan")
                .first()
            )
            if live is not None:
                self.add_error(
                    "external_id", EXTERNAL_ID_LIVE.format(customer=live.customer.external_id, plan=live.plan.code)
                )
        customer = cleaned.get("customer")
        plan = cleaned.get("plan")
        if customer is not None and plan is not None and plan.currency != customer.currency:
            self.add_error(
                "plan",
                CURRENCY_MISMATCH.format(
                    plan=plan.code,
                    plan_currency=plan.currency,
                    customer=customer.external_id,
                    currency=customer.currency,
                ),
            )
        if cleaned.get("no_promotion") and cleaned.get("promotion") is not None:
            self.add_error("no_promotion", "Choose a promotion or “No promotion”, not both.")
        return cleaned


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = (
        "external_id",
        "customer_display",
        "plan_display",
        "status",
        "billing_time",
        "subscription_at",
        "terminated_at",
        "promotion",
    )
    list_filter = ("status", PlanCodeFilter, "billing_time")
    search_fields = ("external_id", "customer__external_id")
    list_select_related = ("customer", "plan", "promotion")
    autocomplete_fields = ("customer",)
    ordering = ("-subscription_at", "id")
    actions = ("terminate_selected",)
    readonly_fields = ("promotion_end", "created_at", "updated_at")

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_display(self, obj: Subscription) -> str:
        return obj.customer.external_id

    @admin.display(description="plan", ordering="plan__code")
    def plan_display(self, obj: Subscription) -> str:
        return f"{obj.plan.code} v{obj.plan.version}"

    @admin.display(description="promotion ends")
    def promotion_end(self, obj: Subscription) -> str:
        return promotion_end_display(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("customer", "plan", "promotion")

    def get_form(
        self, request: HttpRequest, obj: Subscription | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = SubscriptionAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Subscription | None = None) -> Any:
        if obj is None:
            return (
                (None, {"fields": ("external_id", "customer", "plan", "subscription_at", "billing_time")}),
                ("Promotion", {"fields": ("promotion", "no_promotion")}),
            )
        return (
            (
                None,
                {
                    "fields": ("external_id", "customer", "plan", "status", "subscription_at", "terminated_at"),
                    "description": SUBSCRIPTION_TERMS_NOTE,
                },
            ),
            ("Terms", {"fields": ("billing_time", "promotion", "promotion_start", "promotion_end", "previous")}),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> Sequence[str]:
        if obj is None:
            return ()
        return (
            "external_id",
            "customer",
            "plan",
            "status",
            "subscription_at",
            "terminated_at",
            "billing_time",
            "promotion",
            "promotion_start",
            "promotion_end",
            "previous",
            "created_at",
            "updated_at",
        )

    def has_delete_permission(self, request: HttpRequest, obj: Subscription | None = None) -> bool:
        return False  # subscriptions are terminated, not deleted: their periods are billed

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        subscription, _created = subscription_create(
            customer=data["customer"],
            plan=data["plan"],
            external_id=data["external_id"],
            subscription_at=data["subscription_at"],
            billing_time=data["billing_time"],
            now=timezone.now(),
        )
        # subscription_create attached the plan's promotion; a promotion chosen here replaces it.
        promotion: Promotion | None = data.get("promotion") or subscription.promotion
        if data.get("no_promotion"):
            promotion = None
        if subscription.promotion_id != (promotion.pk if promotion is not None else None):
            subscription.promotion = promotion
            subscription.promotion_start = subscription.subscription_at if promotion is not None else None
            subscription.save(update_fields=["promotion", "promotion_start", "updated_at"])
        # The add view goes on with `obj` (history entry, redirect): make it the row just created.
        for field in Subscription._meta.concrete_fields:
            setattr(obj, field.attname, getattr(subscription, field.attname))
        obj._state.adding = False
        obj._state.db = subscription._state.db

    @admin.action(description="Terminate selected subscriptions now", permissions=["change"])
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        frozen_now = timezone.now()
        terminated = 0
        already = 0
        for subscription in queryset:
            if subscription.status == SubscriptionStatus.TERMINATED:
                already += 1
                continue
            subscription_terminate(subscription=subscription, at=frozen_now)
            terminated += 1
        self.message_user(
            request, ngettext(*SUBSCRIPTIONS_TERMINATED, terminated) % {"count": terminated}, messages.SUCCESS
        )
        if already:
            self.message_user(
                request, ngettext(*SUBSCRIPTIONS_ALREADY_TERMINATED, already) % {"count": already}, messages.INFO
            )
