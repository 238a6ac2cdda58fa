"""Admin for subscriptions: created through billing.services.subscriptions.subscription_create
(which attaches the plan's promotion, or the one chosen, or none) and terminated through
subscription_terminate. A subscription's terms are read-only once it exists; its page says when it
has its own prices (Lago's plan_overrides: an override plan, linked, read-only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from billing.admin.alerts import subscription_alerts_html
from billing.admin.shared import admin_link
from billing.documents.formats import format_day
from billing.models import Plan, Promotion, Subscription
from billing.selectors.usage import promotion_window
from billing.services.subscriptions import (
    CURRENCY_MISMATCH,
    ENDED,
    PLAN_PROMOTION,
    SubscriptionError,
    check_subscription_at,
    subscription_create,
    subscription_terminate,
)
from metering.days import local_date

# Messages are constants so tests can match them.
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


def promotion_end_display(subscription: Subscription) -> str:
    """The last day of the subscription's promotion, a day in the customer's time zone (the
    promotion ends at the midnight after it)."""
    window = promotion_window(subscription)
    if window is None:
        return "—"
    return f"{window.name}: through {format_day(window.end_day - timedelta(days=1))}"


class PlanCodeFilter(admin.SimpleListFilter):
    """By plan family (code), whatever the version."""

    title = "plan"
    parameter_name = "plan_code"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        codes = Plan.objects.order_by("code").values_list("code", flat=True).distinct()
        return [(code, code) for code in codes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> QuerySet[Subscription]:
        if self.value():
            return queryset.filter(plan__code=self.value())
        return queryset


class SubscriptionAddForm(forms.ModelForm[Subscription]):
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
        cast("forms.ModelChoiceField[Plan]", self.fields["plan"]).queryset = Plan.objects.current().order_by("code")
        self.fields["plan"].help_text = "The plan's current version; its promotion is attached unless you choose one."
        self.fields["promotion"].help_text = PROMOTION_HELP
        self.fields["subscription_at"].initial = timezone.now

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what super().clean() returns
        external_id = cleaned.get("external_id")
        if external_id:
            # Unique among live subscriptions (a conditional constraint the form cannot check itself).
            live = (
                Subscription.objects.exclude(status__in=ENDED)
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
        if cleaned.get("subscription_at") is not None:
            try:
                check_subscription_at(cleaned["subscription_at"], now=timezone.now())
            except SubscriptionError as exc:
                self.add_error("subscription_at", f"The start {exc.message}.")
        return cleaned


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin[Subscription]):
    list_display = (
        "external_id",
        "customer_display",
        "plan_display",
        "status",
        "subscription_at",
        "ending_at",
        "terminated_at",
        "next_plan_display",
        "promotion",
    )
    list_filter = ("status", PlanCodeFilter, "billing_time")
    search_fields = ("external_id", "customer__external_id")
    list_select_related = ("customer", "plan", "promotion", "next_plan")
    autocomplete_fields = ("customer",)
    ordering = ("-subscription_at", "id")
    actions = ("terminate_selected",)
    readonly_fields = ("prices", "promotion_end", "alerts_display", "next_plan_display", "created_at", "updated_at")

    @admin.display(description="downgrade to", ordering="downgrade_at")
    def next_plan_display(self, obj: Subscription) -> str:
        """A downgrade staged to the end of the current period (Lago's next_plan_code), and when."""
        if obj.next_plan is None or obj.downgrade_at is None:
            return "—"
        day = local_date(obj.downgrade_at, obj.customer.timezone)
        return f"{obj.next_plan.code} v{obj.next_plan.version} from {format_day(day)}"

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_display(self, obj: Subscription) -> str:
        return obj.customer.external_id

    @admin.display(description="plan", ordering="plan__code")
    def plan_display(self, obj: Subscription) -> str:
        own = ", own prices" if obj.plan.parent_id is not None else ""
        return f"{obj.plan.code} v{obj.plan.version}{own}"

    @admin.display(description="prices")
    def prices(self, obj: Subscription) -> str:
        """Whether the subscription has its own prices (an override plan) or the catalog's."""
        plan = obj.plan
        if plan.parent_id is None:
            return format_html("the catalog's: {}", admin_link("billing_plan_change", plan.pk, str(plan)))
        return format_html(
            "its own (Lago's plan_overrides; read-only, changed through the API): {}, a copy of {}",
            admin_link("billing_plan_change", plan.pk, str(plan)),
            admin_link("billing_plan_change", plan.parent_id, f"{plan.code} v{plan.version}"),
        )

    @admin.display(description="promotion ends")
    def promotion_end(self, obj: Subscription) -> str:
        return promotion_end_display(obj)

    @admin.display(description="usage alerts")
    def alerts_display(self, obj: Subscription) -> str:
        return subscription_alerts_html(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscription]:
        return super().get_queryset(request).select_related("customer", "plan", "promotion", "next_plan")

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
                    "fields": (
                        "external_id",
                        "name",
                        "customer",
                        "plan",
                        "prices",
                        "status",
                        "subscription_at",
                        "ending_at",
                        "terminated_at",
                        "canceled_at",
                    ),
                    "description": SUBSCRIPTION_TERMS_NOTE,
                },
            ),
            ("Terms", {"fields": ("billing_time", "promotion", "promotion_start", "promotion_end", "previous")}),
            (
                "Schedule (Lago's)",
                {
                    "fields": (
                        "next_plan_display",
                        "next_name",
                        "next_ending_at",
                        "on_termination_invoice",
                        "on_termination_credit_note",
                        "historical_usage_amount_cents",
                    )
                },
            ),
            ("Usage alerts", {"fields": ("alerts_display",)}),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return (
            "external_id",
            "name",
            "customer",
            "plan",
            "prices",
            "status",
            "subscription_at",
            "ending_at",
            "terminated_at",
            "canceled_at",
            "next_plan_display",
            "next_name",
            "next_ending_at",
            "on_termination_invoice",
            "on_termination_credit_note",
            "historical_usage_amount_cents",
            "billing_time",
            "promotion",
            "promotion_start",
            "promotion_end",
            "previous",
            "alerts_display",
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
        chosen: Promotion | None = data.get("promotion")
        subscription, _created = subscription_create(
            customer=data["customer"],
            plan=data["plan"],
            external_id=data["external_id"],
            subscription_at=data["subscription_at"],
            billing_time=data["billing_time"],
            now=timezone.now(),
            # The plan's promotion, the one chosen instead, or none.
            promotion=None if data.get("no_promotion") else (chosen or PLAN_PROMOTION),
        )
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
            if subscription.status in ENDED:
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
