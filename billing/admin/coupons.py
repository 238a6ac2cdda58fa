"""Admin for coupons and applied coupons (DESIGN §6 "Coupons").

- Coupons: the list shows each one's type, amount or rate, frequency, expiration, status and how
  many customers it was applied to (linking to them). Adding and changing go through
  billing.services.coupons (coupon_create / coupon_update), whose refusals land on the inputs
  and store nothing; once a coupon has been applied, only its name, description and expiration
  can change (its terms are shown read-only). A coupon that was applied is never deleted (the
  delete page names its applications); "Terminate selected coupons" stops new applications.
- Applied coupons: the list, per customer (filter, or ?customer__id__exact= from a customer's
  page) with the amount or rate, what is left (amount, invoices), and the status. "Add" applies a
  coupon to a customer through billing.services.applied_coupons.applied_coupon_create (its
  overrides optional); `?customer=<id>` preselects the customer, so a customer's page can link
  "Apply coupon" there (customer_coupons_html). An applied coupon's page is read-only, with what
  each invoice took of it; "Terminate selected applied coupons" stops them. Never deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from billing.admin.money_input import add_service_errors
from billing.admin.shared import CustomerFilter, admin_link, admin_url
from billing.documents.formats import format_money
from billing.engine.money import currency_minor_digits, format_decimal, quantize_money, to_cents
from billing.engine.vocabulary import CouponExpiration, CouponFrequency, CouponStatus, CouponType
from billing.models import AppliedCoupon, Coupon, Plan
from billing.services.applied_coupons import CouponOverrides, applied_coupon_create, applied_coupon_terminate
from billing.services.coupons import (
    CouponError,
    CouponFields,
    coupon_create,
    coupon_destroy,
    coupon_terminate,
    coupon_update,
)
from customers.models import Customer
from customers.validators import INVALID_CURRENCY, validate_currency
from metering.models import BillableMetric

# Texts are constants so tests can match them.
TERMS_FIXED_NOTE = (
    "This coupon has been applied: its terms are fixed. Its name, description and expiration may change; "
    "terminate it and create another to offer other terms."
)
AMOUNT_DECIMALS = "{currency} amounts have at most {digits} decimal places."
COUPONS_TERMINATED = ("%(count)d coupon was terminated.", "%(count)d coupons were terminated.")
APPLIED_TERMINATED = ("%(count)d applied coupon was terminated.", "%(count)d applied coupons were terminated.")
ALREADY_TERMINATED = (
    "%(count)d selected was already terminated.",
    "%(count)d selected were already terminated.",
)
APPLY_COUPON = "Apply coupon"

# The services' API fields, as the forms' inputs (None: above the form).
COUPON_FORM_FIELDS: dict[str, str | None] = {
    "amount_cents": "amount",
    "amount_currency": "currency",
    "applies_to.plan_codes": "plan_codes",
    "applies_to.billable_metric_codes": "billable_metric_codes",
    "applies_to": None,
    "coupon": None,
}
APPLIED_FORM_FIELDS: dict[str, str | None] = {
    "external_customer_id": "customer",
    "coupon_code": "coupon",
    "amount_cents": "amount",
    "amount_currency": "currency",
}


def _form_field(mapping: dict[str, str | None]) -> Any:
    return lambda api_field: mapping.get(api_field, api_field)


def value_display(coupon_type: str, amount: Decimal | None, currency: str, rate: Decimal | None) -> str:
    """ "$50.00" or "10 %"."""
    if coupon_type == CouponType.FIXED_AMOUNT and amount is not None:
        return format_money(amount, currency)
    if rate is not None:
        return f"{format_decimal(rate)} %"
    return "—"


def frequency_display(frequency: str, duration: int | None) -> str:
    if frequency == CouponFrequency.RECURRING:
        return ngettext("%(n)d invoice", "%(n)d invoices", duration or 0) % {"n": duration or 0}
    return str(CouponFrequency(frequency).label) if frequency in CouponFrequency.values else frequency


def _cents(form: forms.BaseForm, amount: Decimal | None, currency: str | None) -> tuple[bool, int | None]:
    """The amount typed, in cents of its currency: (True, cents or None when empty), or (False,
    None) with an error added to the form when it cannot be read in that currency."""
    if amount is None or not currency:
        return True, None  # without a currency, the service says it is required
    try:
        validate_currency(currency)
    except ValidationError:
        form.add_error("currency", INVALID_CURRENCY.format(value=currency))
        return False, None
    if quantize_money(amount, currency) != amount:
        form.add_error("amount", AMOUNT_DECIMALS.format(currency=currency, digits=currency_minor_digits(currency)))
        return False, None
    return True, to_cents(amount, currency)


def customer_coupons_html(customer: Customer, *, may_apply: bool) -> str:
    """A customer's applied coupons for its admin page, in a line, with links to the list and to
    apply one."""
    rows = list(customer.applied_coupons.select_related("coupon").order_by("-created_at", "-id"))
    listing = admin_url("billing_appliedcoupon_changelist")
    add = admin_url("billing_appliedcoupon_add")
    links = []
    if listing and rows:
        links.append(format_html('<a href="{}?customer__id__exact={}">all</a>', listing, customer.pk))
    if add and may_apply:
        link = '<a href="{}?customer={}" id="apply-coupon-link">{}</a>'
        links.append(format_html(link, add, customer.pk, APPLY_COUPON))
    items = format_html_join(
        "; ",
        "{}: {}, {} ({})",
        (
            (
                admin_link("billing_appliedcoupon_change", row.pk, row.coupon.code),
                value_display(row.coupon_type, row.amount, row.currency, row.percentage_rate),
                frequency_display(row.frequency, row.frequency_duration).lower(),
                row.get_status_display().lower(),
            )
            for row in rows
        ),
    )
    return format_html(
        "{}{}{}",
        items if rows else "none",
        " — " if links else "",
        format_html_join(", ", "{}", ((link,) for link in links)),
    )


def terminate_each(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    queryset: QuerySet[Any],
    terminate: Callable[[Any, datetime], object],
    done_message: tuple[str, str],
) -> None:
    """Terminate each selected coupon (or applied coupon) not terminated yet, at one moment, and
    say how many were and how many already were."""
    frozen_now = timezone.now()
    done = already = 0
    for row in queryset.order_by("id"):
        if row.status == CouponStatus.TERMINATED:
            already += 1
            continue
        terminate(row, frozen_now)
        done += 1
    model_admin.message_user(request, ngettext(*done_message, done) % {"count": done}, messages.SUCCESS)
    if already:
        model_admin.message_user(request, ngettext(*ALREADY_TERMINATED, already) % {"count": already}, messages.INFO)


# --- coupons ---------------------------------------------------------------------------------------


def _code_choices(codes: Any) -> list[tuple[str, str]]:
    return [(code, code) for code in codes]


class CouponForm(forms.ModelForm[Coupon]):
    """A coupon's every field, saved by the service: its checks (and write) replace the model's."""

    amount = forms.DecimalField(
        required=False, label="Amount", help_text="Fixed amount coupons, in the currency: 50.00 is $50.00."
    )
    currency = forms.CharField(
        required=False, max_length=3, help_text="Fixed amount coupons: an ISO 4217 code, e.g. USD."
    )
    plan_codes = forms.MultipleChoiceField(
        required=False, label="Limited to plans", help_text="Only these plans' invoices count. None: every plan."
    )
    billable_metric_codes = forms.MultipleChoiceField(
        required=False,
        label="Limited to metrics",
        help_text="Only these metrics' usage fees count (not both plans and metrics).",
    )

    class Meta:
        model = Coupon
        fields = (
            "name",
            "code",
            "description",
            "coupon_type",
            "amount",
            "currency",
            "percentage_rate",
            "frequency",
            "frequency_duration",
            "expiration",
            "expiration_at",
            "reusable",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plans = Plan.objects.order_by("code").values_list("code", flat=True).distinct()
        cast(forms.MultipleChoiceField, self.fields["plan_codes"]).choices = _code_choices(plans)
        metrics = BillableMetric.objects.order_by("code").values_list("code", flat=True)
        cast(forms.MultipleChoiceField, self.fields["billable_metric_codes"]).choices = _code_choices(metrics)
        if self.instance.pk is not None:
            self.initial.setdefault("plan_codes", self.instance.plan_codes)
            self.initial.setdefault("billable_metric_codes", self.instance.billable_metric_codes)

    def fields_sent(self) -> CouponFields | None:
        """The form's values as the service takes them; None when an input is already refused."""
        data = self.cleaned_data
        read, cents = _cents(self, data.get("amount"), data.get("currency"))
        if not read:
            return None
        fields: CouponFields = {
            "name": data.get("name"),
            "code": data.get("code"),
            "description": data.get("description") or "",
            "coupon_type": data.get("coupon_type") or None,
            "amount_cents": cents,
            "amount_currency": data.get("currency") or None,
            "percentage_rate": data.get("percentage_rate"),
            "frequency": data.get("frequency") or None,
            "frequency_duration": data.get("frequency_duration"),
            "expiration": data.get("expiration") or None,
            "expiration_at": data.get("expiration_at"),
            "reusable": bool(data.get("reusable")),
            "plan_codes": list(data.get("plan_codes") or []),
            "billable_metric_codes": list(data.get("billable_metric_codes") or []),
        }
        return fields

    def _post_clean(self) -> None:
        # ModelForm validates against the model here (and would save it later); a coupon is
        # checked and written by its service instead, inside the admin's transaction.
        if self.errors:
            return
        fields = self.fields_sent()
        if fields is None:
            return
        try:
            if self.instance._state.adding:
                self.instance = coupon_create(fields=fields)
            else:
                self.instance = coupon_update(coupon=self.instance, fields=fields)
        except CouponError as exc:
            add_service_errors(self, exc.errors, _form_field(COUPON_FORM_FIELDS))


class AppliedCouponTermsForm(CouponForm):
    """A coupon already applied: only its name, description and expiration change."""

    class Meta:
        model = Coupon
        fields = ("name", "description", "expiration", "expiration_at")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("amount", "currency", "plan_codes", "billable_metric_codes"):
            del self.fields[name]

    def fields_sent(self) -> CouponFields | None:
        data = self.cleaned_data
        return {
            "name": data.get("name"),
            "description": data.get("description") or "",
            "expiration": data.get("expiration") or None,
            "expiration_at": data.get("expiration_at"),
        }


@admin.register(Coupon)
class CouponAdmin(admin.ModelAdmin[Coupon]):
    form = CouponForm
    list_display = (
        "code",
        "name",
        "value",
        "frequency_column",
        "expiration_column",
        "status",
        "applied_link",
    )
    list_filter = ("coupon_type", "frequency", "expiration", "status")
    search_fields = ("code", "name")
    search_help_text = "Code or name."
    ordering = ("status", "code")
    actions = ("terminate_selected",)
    readonly_fields = ("terms", "status", "terminated_at", "applied_link", "created_at", "updated_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Coupon]:
        return super().get_queryset(request).annotate(applied_count=Count("applied"))

    def get_form(self, request: HttpRequest, obj: Coupon | None = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = AppliedCouponTermsForm if self._applied(obj) else CouponForm
        return super().get_form(request, obj, change=change, **kwargs)

    def _applied(self, obj: Coupon | None) -> bool:
        return obj is not None and obj.applied.exists()

    def get_fieldsets(self, request: HttpRequest, obj: Coupon | None = None) -> Any:
        state = ("Status", {"fields": ("status", "terminated_at", "applied_link", "created_at", "updated_at")})
        expiration = ("Expiration", {"fields": ("expiration", "expiration_at")})
        if self._applied(obj):
            return (
                (None, {"fields": ("name", "description", "terms"), "description": TERMS_FIXED_NOTE}),
                expiration,
                state,
            )
        fieldsets: tuple[Any, ...] = (
            (None, {"fields": ("name", "code", "description")}),
            ("Value", {"fields": ("coupon_type", "amount", "currency", "percentage_rate")}),
            ("Frequency", {"fields": ("frequency", "frequency_duration", "reusable")}),
            expiration,
            ("Limitation", {"fields": ("plan_codes", "billable_metric_codes")}),
        )
        return fieldsets if obj is None else (*fieldsets, state)

    def get_readonly_fields(self, request: HttpRequest, obj: Coupon | None = None) -> tuple[str, ...]:
        if not self.has_change_permission(request, obj):
            return ()  # the view page shows every field as it is
        return self.readonly_fields

    # --- columns and fields ---

    @admin.display(description="value")
    def value(self, obj: Coupon) -> str:
        return value_display(obj.coupon_type, obj.amount, obj.currency, obj.percentage_rate)

    @admin.display(description="frequency", ordering="frequency")
    def frequency_column(self, obj: Coupon) -> str:
        return frequency_display(obj.frequency, obj.frequency_duration)

    @admin.display(description="expiration", ordering="expiration_at")
    def expiration_column(self, obj: Coupon) -> str:
        if obj.expiration != CouponExpiration.TIME_LIMIT or obj.expiration_at is None:
            return "none"
        when = obj.expiration_at.strftime("%Y-%m-%d %H:%M UTC")
        return f"expired {when}" if obj.expiration_at <= timezone.now() else f"until {when}"

    @admin.display(description="applied to")
    def applied_link(self, obj: Coupon) -> str:
        count = getattr(obj, "applied_count", None)
        count = obj.applied.count() if count is None else count
        url = admin_url("billing_appliedcoupon_changelist")
        if not count or url is None:
            return str(count)
        customers = ngettext("%(count)d customer", "%(count)d customers", count) % {"count": count}
        return format_html('<a href="{}?coupon__id__exact={}">{}</a>', url, obj.pk, customers)

    @admin.display(description="terms")
    def terms(self, obj: Coupon) -> str:
        limited = (
            f"; plans {', '.join(obj.plan_codes)}"
            if obj.plan_codes
            else f"; metrics {', '.join(obj.billable_metric_codes)}"
            if obj.billable_metric_codes
            else ""
        )
        reusable = "reusable" if obj.reusable else "once per customer"
        return (
            f"{obj.code}: {self.value(obj)}, {frequency_display(obj.frequency, obj.frequency_duration)}, "
            f"{reusable}{limited}"
        )

    # --- writes, through the services ---

    def save_model(self, request: HttpRequest, obj: Coupon, form: Any, change: bool) -> None:
        """Nothing left to write: the form's validation saved it (coupon_create / coupon_update)."""

    def delete_model(self, request: HttpRequest, obj: Coupon) -> None:
        coupon_destroy(coupon=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Coupon]) -> None:
        for coupon in queryset.order_by("id"):
            coupon_destroy(coupon=coupon)

    @admin.action(description="Terminate selected coupons (no new application)", permissions=["change"])
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[Coupon]) -> None:
        terminate_each(
            self, request, queryset, lambda coupon, now: coupon_terminate(coupon=coupon, now=now), COUPONS_TERMINATED
        )


# --- applied coupons -------------------------------------------------------------------------------


class AppliedCouponAddForm(forms.ModelForm[AppliedCoupon]):
    """Apply a coupon to a customer; every override optional (empty: the coupon's)."""

    amount = forms.DecimalField(required=False, help_text="Fixed amount coupons: instead of the coupon's amount.")
    currency = forms.CharField(required=False, max_length=3, help_text="Fixed amount coupons: the customer's.")
    percentage_rate = forms.DecimalField(required=False, help_text="Percentage coupons: instead of the coupon's rate.")
    frequency = forms.ChoiceField(
        required=False, choices=[("", "The coupon's"), *CouponFrequency.choices], help_text="Instead of the coupon's."
    )
    frequency_duration = forms.IntegerField(
        required=False, min_value=1, help_text="Recurring: the number of invoices it reduces."
    )

    class Meta:
        model = AppliedCoupon
        fields = ("customer", "coupon")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        coupon = cast("forms.ModelChoiceField[Coupon]", self.fields["coupon"])
        coupon.queryset = Coupon.objects.filter(status=CouponStatus.ACTIVE).order_by("code")
        customer = cast("forms.ModelChoiceField[Customer]", self.fields["customer"])
        customer.queryset = Customer.objects.order_by("external_id")

    def _post_clean(self) -> None:
        if self.errors:
            return
        data = self.cleaned_data
        customer: Customer = data["customer"]
        coupon: Coupon = data["coupon"]
        currency = data.get("currency") or coupon.currency or None
        read, cents = _cents(self, data.get("amount"), currency)
        if not read:
            return
        overrides = CouponOverrides(
            amount_cents=cents,
            amount_currency=data.get("currency") or None,
            percentage_rate=data.get("percentage_rate"),
            frequency=data.get("frequency") or None,
            frequency_duration=data.get("frequency_duration"),
        )
        try:
            self.instance = applied_coupon_create(
                external_customer_id=customer.external_id, coupon_code=coupon.code, overrides=overrides
            )
        except CouponError as exc:
            add_service_errors(self, exc.errors, _form_field(APPLIED_FORM_FIELDS))


@admin.register(AppliedCoupon)
class AppliedCouponAdmin(admin.ModelAdmin[AppliedCoupon]):
    list_display = (
        "coupon_link",
        "customer_link",
        "value",
        "frequency_column",
        "remaining",
        "status_column",
        "created_at",
    )
    list_filter = ("status", CustomerFilter, "coupon_type", "frequency")
    search_fields = ("coupon__code", "coupon__name", "customer__external_id", "customer__name")
    search_help_text = "Coupon code or name, customer id or name."
    list_select_related = ("coupon", "customer")
    ordering = ("-created_at", "-id")
    actions = ("terminate_selected",)
    change_fields = (
        "coupon_link",
        "customer_link",
        "value",
        "frequency_column",
        "remaining",
        "status_column",
        "terminated_at",
        "applications",
        "created_at",
        "updated_at",
    )

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # A coupon's "applied to" count and a customer's page link here.
        return lookup in ("coupon__id__exact", "customer__id__exact") or super().lookup_allowed(lookup, value, request)

    def get_form(
        self, request: HttpRequest, obj: AppliedCoupon | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = AppliedCouponAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: AppliedCoupon | None = None) -> Any:
        if obj is None:
            return (
                (None, {"fields": ("customer", "coupon")}),
                (
                    "Overrides (empty: the coupon's)",
                    {"fields": ("amount", "currency", "percentage_rate", "frequency", "frequency_duration")},
                ),
            )
        return ((None, {"fields": self.change_fields}),)

    def get_readonly_fields(self, request: HttpRequest, obj: AppliedCoupon | None = None) -> tuple[str, ...]:
        return () if obj is None else self.change_fields

    def has_delete_permission(self, request: HttpRequest, obj: AppliedCoupon | None = None) -> bool:
        return False  # terminated, never deleted: invoices' applications name it

    # --- columns and fields ---

    @admin.display(description="coupon", ordering="coupon__code")
    def coupon_link(self, obj: AppliedCoupon) -> str:
        return admin_link("billing_coupon_change", obj.coupon_id, obj.coupon.code)

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_link(self, obj: AppliedCoupon) -> str:
        return admin_link("customers_customer_change", obj.customer_id, obj.customer.external_id)

    @admin.display(description="value")
    def value(self, obj: AppliedCoupon) -> str:
        return value_display(obj.coupon_type, obj.amount, obj.currency, obj.percentage_rate)

    @admin.display(description="frequency", ordering="frequency")
    def frequency_column(self, obj: AppliedCoupon) -> str:
        return frequency_display(obj.frequency, obj.frequency_duration)

    @admin.display(description="left")
    def remaining(self, obj: AppliedCoupon) -> str:
        if obj.frequency == CouponFrequency.ONCE and obj.coupon_type == CouponType.FIXED_AMOUNT:
            return format_money(obj.amount_remaining or Decimal(0), obj.currency)
        if obj.frequency == CouponFrequency.RECURRING:
            left = obj.frequency_duration_remaining or 0
            return ngettext("%(n)d invoice", "%(n)d invoices", left) % {"n": left}
        return "—"

    @admin.display(description="status", ordering="status")
    def status_column(self, obj: AppliedCoupon) -> str:
        if obj.used_up:
            return "Used up"
        return obj.get_status_display()

    @admin.display(description="taken by invoices")
    def applications(self, obj: AppliedCoupon) -> str:
        rows = list(obj.applications.select_related("invoice").order_by("created_at", "id"))
        if not rows:
            return "None yet."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{}: {}{}</li>",
                (
                    (
                        admin_link(
                            "billing_invoice_change", row.invoice_id, row.invoice.number or f"#{row.invoice_id}"
                        ),
                        format_money(row.amount, row.invoice.currency),
                        " (given back: invoice voided)" if row.reversed_at else "",
                    )
                    for row in rows
                ),
            ),
        )

    # --- writes, through the services ---

    def save_model(self, request: HttpRequest, obj: AppliedCoupon, form: Any, change: bool) -> None:
        """Nothing left to write: the add form's validation applied it (applied_coupon_create)."""

    @admin.action(description="Terminate selected applied coupons", permissions=["change"])
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[AppliedCoupon]) -> None:
        terminate_each(
            self,
            request,
            queryset,
            lambda applied, now: applied_coupon_terminate(applied_coupon=applied, now=now),
            APPLIED_TERMINATED,
        )
