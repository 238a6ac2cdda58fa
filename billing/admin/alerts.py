"""Admin for usage alerts (DESIGN §6 "Usage alerts"): alerts per subscription with their
thresholds inline, and the read-only list of what they triggered.

- An alert is created and changed through billing.services.alerts (alert_create, alert_update),
  which checks it as the API does: its refusals are shown next to the input they are about
  (the metric, the code, a threshold's value). Its subscription and type are fixed once it
  exists. Threshold values are cents for `current_usage_amount` alerts (12000 = $120.00) and
  units for metric alerts.
- Triggered alerts are written only by the check (`manage.py check_alerts`, every minute):
  viewed, never added, changed or deleted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.formsets import DELETION_FIELD_NAME
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from billing.admin.money_input import service_message
from billing.admin.plans import PlainDecimalsForm
from billing.admin.shared import admin_link, admin_url
from billing.documents.formats import format_price, format_quantity
from billing.engine.money import currency_minor_digits
from billing.models import Alert, AlertThreshold, AlertType, Subscription, SubscriptionStatus, TriggeredAlert
from billing.services.alerts import (
    AlertInput,
    ThresholdInput,
    alert_create,
    alert_delete,
    alert_field_errors,
    alert_update,
    parse_value,
    threshold_errors,
)

# Messages are constants so tests can match them.
THRESHOLDS_INVALID = "The thresholds are not valid:"
VALUE_HELP = "Cents for a current usage amount alert (12000 = $120.00); units for a metric alert."
FIXED_NOTE = "An alert's subscription and type are fixed once it exists: delete it and add another to change them."

# The service's field names → the form's.
FORM_FIELDS = {"billable_metric_code": "metric", "alert_type": "alert_type", "code": "code", "name": "name"}


def value_display(value: Decimal, alert_type: str, currency: str) -> str:
    """A threshold or usage value: money for an amount alert (its values are cents), else units."""
    if alert_type == AlertType.CURRENT_USAGE_AMOUNT:
        return format_price(value.scaleb(-currency_minor_digits(currency)), currency)
    return format_quantity(value)


def thresholds_display(alert: Alert) -> str:
    currency = alert.subscription.plan.currency
    parts = [
        ("every +" if t.recurring else "") + value_display(t.value, alert.alert_type, currency)
        for t in alert.thresholds.all()
    ]
    return ", ".join(parts) or "—"


def subscription_alerts_html(subscription: Subscription) -> str:
    """The subscription's alerts for its admin page: each linked, with its thresholds and the
    value at its last check; and a link to them in the alerts list."""
    alerts = list(subscription.alerts.select_related("subscription__plan").prefetch_related("thresholds"))
    listing = admin_url("billing_alert_changelist")
    more = (
        format_html(' <a href="{}?subscription__id__exact={}">In the alerts list</a>', listing, subscription.pk)
        if listing
        else ""
    )
    if not alerts:
        return format_html("None.{}", more)
    rows = format_html_join(
        "",
        "<li>{}: {} ({}) — last value {}</li>",
        (
            (
                admin_link("billing_alert_change", alert.pk, alert.code),
                alert.get_alert_type_display(),
                thresholds_display(alert),
                "not checked yet"
                if alert.last_processed_at is None
                else value_display(alert.previous_value, alert.alert_type, alert.subscription.plan.currency),
            )
            for alert in alerts
        ),
    )
    return format_html("<ul>{}</ul>{}", rows, more)


# --- Thresholds, inline --------------------------------------------------------------------------


class ThresholdForm(PlainDecimalsForm):
    class Meta:
        model = AlertThreshold
        fields = ("value", "recurring", "code")
        help_texts = {"value": VALUE_HELP, "recurring": "Fires again at the highest one-time value + k × this value."}

    def clean_value(self) -> Decimal | None:
        value = self.cleaned_data.get("value")
        if value is None:
            return None
        checked = parse_value(value)
        if isinstance(checked, str):
            raise ValidationError(f"The value {checked}.")
        return checked


class ThresholdFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]
    """Checks the thresholds as a whole (billing.services.alerts.threshold_errors): at least
    one, at most one recurring, one-time values distinct."""

    def kept_forms(self) -> list[forms.ModelForm[AlertThreshold]]:
        return [
            form
            for form in self.forms
            if form.is_valid()
            and not form.cleaned_data.get(DELETION_FIELD_NAME)
            and (form in self.initial_forms or form.has_changed())
            and form.cleaned_data.get("value") is not None
        ]

    def thresholds(self) -> list[ThresholdInput]:
        return [
            ThresholdInput(
                value=form.cleaned_data["value"],
                code=form.cleaned_data.get("code") or "",
                recurring=bool(form.cleaned_data.get("recurring")),
            )
            for form in self.kept_forms()
        ]

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return  # a row's own errors are shown; checking the table on half-read rows adds noise
        kept = self.kept_forms()
        errors, _levels = threshold_errors(self.thresholds())
        details: list[str] = []
        for name, messages in errors.items():
            parts = name.split(".")
            if len(parts) == 3:
                index, field = int(parts[1]), parts[2]
                kept[index].add_error(field, messages)
                details += [f"Threshold {index + 1}, {field}: {m}." for m in messages]
            else:
                details += [f"{m[:1].upper()}{m[1:]}." for m in messages]
        if details:
            raise ValidationError([THRESHOLDS_INVALID, *details], code="invalid_thresholds")


class ThresholdInline(admin.TabularInline[AlertThreshold, Alert]):
    model = AlertThreshold
    form = ThresholdForm
    formset = ThresholdFormSet
    extra = 1
    fields = ("value", "recurring", "code")


# --- Alerts ----------------------------------------------------------------------------------------


class AlertForm(forms.ModelForm[Alert]):
    """An alert's own fields, checked by the service (its thresholds by ThresholdFormSet)."""

    class Meta:
        model = Alert
        fields = ("subscription", "alert_type", "code", "name", "metric")
        help_texts = {"metric": "Required for a metric units alert, and only for it: a metric the plan charges."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "subscription" in self.fields:
            # A terminated subscription's usage is no longer checked: it is not offered.
            live = Subscription.objects.exclude(status=SubscriptionStatus.TERMINATED).select_related("customer")
            field = cast("forms.ModelChoiceField[Subscription]", self.fields["subscription"])
            field.queryset = live.order_by("external_id")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        adding = self.instance.pk is None
        subscription: Subscription | None = cleaned.get("subscription") if adding else self.instance.subscription
        alert_type = cleaned.get("alert_type") if adding else self.instance.alert_type
        if subscription is None or not alert_type or "code" not in cleaned:
            return cleaned  # the missing field's own error is shown
        taken = set(
            Alert.objects.filter(subscription=subscription).exclude(pk=self.instance.pk).values_list("code", flat=True)
        )
        metric = cleaned.get("metric")
        errors, _metric = alert_field_errors(
            subscription=subscription,
            alert_type=alert_type,
            code=cleaned["code"],
            name=cleaned.get("name"),
            metric_code=metric.code if metric is not None else None,
            taken=taken,
        )
        for name, messages in errors.items():
            target = FORM_FIELDS.get(name)
            if target not in self.fields:
                target = None  # above the form, naming the field
            label = str(self.fields[target].label) if target is not None else name.replace("_", " ").capitalize()
            for message in messages:
                self.add_error(target, service_message(label, message))
        return cleaned


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin[Alert]):
    form = AlertForm
    inlines = (ThresholdInline,)
    list_display = (
        "code",
        "name",
        "subscription_link",
        "alert_type",
        "metric",
        "thresholds_list",
        "previous_value_display",
    )
    list_filter = ("alert_type",)
    search_fields = ("code", "name", "subscription__external_id", "subscription__customer__external_id")
    list_select_related = ("subscription__customer", "subscription__plan", "metric")
    ordering = ("subscription__external_id", "code")
    readonly_fields = (
        "previous_value_display",
        "previous_period_start",
        "last_processed_at",
        "triggered_link",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return super().get_queryset(request).prefetch_related("thresholds")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The subscription page links here with ?subscription__id__exact=<id>.
        return lookup == "subscription__id__exact" or super().lookup_allowed(lookup, value, request)

    def get_fieldsets(self, request: HttpRequest, obj: Alert | None = None) -> Any:
        state = ("Last check", {"fields": ("previous_value_display", "previous_period_start", "last_processed_at")})
        history = ("History", {"fields": ("triggered_link", "created_at", "updated_at"), "classes": ("collapse",)})
        if obj is None:
            return ((None, {"fields": ("subscription", "alert_type", "code", "name", "metric")}),)
        return (
            (None, {"fields": ("subscription", "alert_type", "code", "name", "metric"), "description": FIXED_NOTE}),
            state,
            history,
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Alert | None = None) -> tuple[str, ...]:
        fixed = ("subscription", "alert_type") if obj is not None else ()
        return (*fixed, *self.readonly_fields)

    @admin.display(description="subscription", ordering="subscription__external_id")
    def subscription_link(self, obj: Alert) -> str:
        return admin_link("billing_subscription_change", obj.subscription_id, obj.subscription.external_id)

    @admin.display(description="customer", ordering="subscription__customer__external_id")
    def customer(self, obj: Alert) -> str:
        return obj.subscription.customer.external_id

    @admin.display(description="thresholds")
    def thresholds_list(self, obj: Alert) -> str:
        return thresholds_display(obj)

    @admin.display(description="previous value", ordering="previous_value")
    def previous_value_display(self, obj: Alert) -> str:
        if obj.last_processed_at is None:
            return "— (not checked yet)"
        return value_display(obj.previous_value, obj.alert_type, obj.subscription.plan.currency)

    @admin.display(description="triggered")
    def triggered_link(self, obj: Alert) -> str:
        url = admin_url("billing_triggeredalert_changelist")
        count = obj.triggered.count()
        if url is None or not count:
            return str(count)
        times = ngettext("%(count)d time", "%(count)d times", count) % {"count": count}
        return format_html('<a href="{}?alert__id__exact={}">{}</a>', url, obj.pk, times)

    def delete_model(self, request: HttpRequest, obj: Alert) -> None:
        alert_delete(alert=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        for alert in queryset:
            alert_delete(alert=alert)

    def save_model(self, request: HttpRequest, obj: Alert, form: Any, change: bool) -> None:
        """Nothing yet: the alert and its thresholds are written together by the service, in
        save_related, once the thresholds are read."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        thresholds_formset = next(f for f in formsets if isinstance(f, ThresholdFormSet))
        data = form.cleaned_data
        metric = data.get("metric")
        thresholds = thresholds_formset.thresholds()
        if change:
            alert = alert_update(
                alert=form.instance,
                code=data["code"],
                name=data.get("name") or "",
                billable_metric_code=metric.code if metric is not None else None,
                thresholds=thresholds,
            )
        else:
            alert = alert_create(
                subscription=data["subscription"],
                alert=AlertInput(
                    alert_type=data["alert_type"],
                    code=data["code"],
                    name=data.get("name") or "",
                    billable_metric_code=metric.code if metric is not None else None,
                    thresholds=thresholds,
                ),
            )
        # The admin goes on with form.instance (history entry, redirect): make it the row written.
        obj = form.instance
        for field in Alert._meta.concrete_fields:
            setattr(obj, field.attname, getattr(alert, field.attname))
        obj._state.adding = False
        obj._state.db = alert._state.db
        for formset in formsets:  # what construct_change_message reads after a formset's save()
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


# --- Triggered alerts ------------------------------------------------------------------------------


@admin.register(TriggeredAlert)
class TriggeredAlertAdmin(admin.ModelAdmin[TriggeredAlert]):
    """What the checks found: read-only (written by `check_alerts` only)."""

    list_display = (
        "triggered_at",
        "alert_link",
        "subscription_link",
        "alert_type",
        "metric_code",
        "previous_value_display",
        "current_value_display",
        "crossed",
    )
    list_filter = ("alert_type",)
    search_fields = ("alert_code", "subscription__external_id", "subscription__customer__external_id")
    list_select_related = ("subscription__customer", "subscription__plan", "alert")
    date_hierarchy = "triggered_at"
    fields = (
        "triggered_at",
        "alert_link",
        "alert_name",
        "subscription_link",
        "customer",
        "alert_type",
        "metric_code",
        "period_start",
        "previous_value_display",
        "current_value_display",
        "crossed",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[TriggeredAlert]:
        return super().get_queryset(request).prefetch_related("crossings")

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The alert page links here with ?alert__id__exact=<id>.
        return lookup == "alert__id__exact" or super().lookup_allowed(lookup, value, request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TriggeredAlert | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TriggeredAlert | None = None) -> bool:
        return False

    @admin.display(description="alert", ordering="alert_code")
    def alert_link(self, obj: TriggeredAlert) -> str:
        if obj.alert_id is None:
            return f"{obj.alert_code} (deleted)"
        return admin_link("billing_alert_change", obj.alert_id, obj.alert_code)

    @admin.display(description="subscription", ordering="subscription__external_id")
    def subscription_link(self, obj: TriggeredAlert) -> str:
        return admin_link("billing_subscription_change", obj.subscription_id, obj.subscription.external_id)

    @admin.display(description="customer", ordering="subscription__customer__external_id")
    def customer(self, obj: TriggeredAlert) -> str:
        return obj.subscription.customer.external_id

    def _value(self, obj: TriggeredAlert, value: Decimal) -> str:
        return value_display(value, obj.alert_type, obj.subscription.plan.currency)

    @admin.display(description="previous value")
    def previous_value_display(self, obj: TriggeredAlert) -> str:
        return self._value(obj, obj.previous_value)

    @admin.display(description="current value", ordering="current_value")
    def current_value_display(self, obj: TriggeredAlert) -> str:
        return self._value(obj, obj.current_value)

    @admin.display(description="thresholds crossed")
    def crossed(self, obj: TriggeredAlert) -> SafeString:
        return format_html_join(
            ", ",
            "{}{}{}",
            (
                (self._value(obj, c.value), " recurring" if c.recurring else "", f" ({c.code})" if c.code else "")
                for c in obj.crossings.all()
            ),
        )
