"""Admin for webhook endpoints (DESIGN §6 "Webhooks"): the list, the add and change forms, delete,
and the signing key shown to finance.

- Every change goes through billing.services.webhooks: the form's model validation step is the
  service itself (webhook_endpoint_create / webhook_endpoint_update), which decides under its
  lock and either writes or refuses with errors by field (WebhookEndpointError); each error is
  shown on the input it is about and nothing is stored. Deleting (the page and the bulk action,
  both behind Django's confirmation) calls webhook_endpoint_delete: the endpoint's deliveries
  stay in the log, and pending ones are not sent.
- Event types are checkboxes of WebhookType; none checked means every type (Lago's default).
  The signature algorithm is HMAC-SHA256 (Lago's `hmac`), the only one supported: shown, not
  editable.
- The list counts each endpoint's pending and failed deliveries (one query with the page),
  linking to the deliveries log (billing.admin.webhook_deliveries) filtered on them.
- The signing key (Lago's organization `hmac_key`): a panel on the list, for users who may change
  endpoints (Finance) and no one else, with where it comes from: WEBHOOK_HMAC_KEY when set,
  otherwise the key generated on first use and stored in the database (signing_key(); showing it
  is its first use when no webhook was signed yet, so a receiver can be set up before the first
  webhook arrives).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from billing.admin.money_input import add_service_errors
from billing.admin.shared import admin_url
from billing.engine.vocabulary import DeliveryStatus, WebhookType
from billing.models import WebhookEndpoint
from billing.services.webhooks import (
    WebhookEndpointError,
    signing_key,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_update,
)

# Texts are constants so tests can match them.
ALL_TYPES = "all"
EVENT_TYPES_HELP = "The webhook types sent to this endpoint. None checked: every type, including types added later."
SIGNATURE_ALGORITHM = "HMAC-SHA256"
SIGNATURE_HELP = (
    "Header X-Lago-Signature-Algorithm: hmac. X-Lago-Signature is the base64 HMAC-SHA256 of the raw body, with the "
    "signing key shown on the endpoint list."
)
KEY_FROM_SETTING = "From the WEBHOOK_HMAC_KEY setting (environment): change it there."
KEY_GENERATED = (
    "Generated on first use and stored in the database, as WEBHOOK_HMAC_KEY is not set; set WEBHOOK_HMAC_KEY to use "
    "a key of your own."
)

# The service's API fields, as this form's inputs.
FORM_FIELDS = {"webhook_url": "webhook_url", "name": "name", "event_types": "event_types"}


def event_types_display(event_types: list[str] | None) -> str:
    return ", ".join(event_types) if event_types else ALL_TYPES


def deliveries_url(**filters: Any) -> str | None:
    url = admin_url("billing_webhookdelivery_changelist")
    if url is None:
        return None
    return url + "?" + "&".join(f"{name}={value}" for name, value in filters.items())


class WebhookEndpointForm(forms.ModelForm[WebhookEndpoint]):
    """Saved by the service: its validation (and write) replaces the model's."""

    webhook_url = forms.URLField(
        label="Webhook URL",
        max_length=1000,
        assume_scheme="https",
        help_text="Where the webhooks are POSTed.",
        widget=forms.URLInput(attrs={"class": "vLargeTextField"}),
    )
    event_types = forms.MultipleChoiceField(
        choices=[(value, f"{label} ({value})") for value, label in WebhookType.choices],
        required=False,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "radiolist webhook-types"}),
        help_text=EVENT_TYPES_HELP,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("name", "webhook_url", "event_types")

    def _post_clean(self) -> None:
        # ModelForm validates against the model here (and would save it later); an endpoint is
        # validated and written by its service instead, whose refusals land on the inputs. It
        # runs inside the admin's transaction: logging the change commits with it.
        if self.errors:
            return
        data = self.cleaned_data
        try:
            if self.instance._state.adding:
                self.instance = webhook_endpoint_create(
                    webhook_url=data["webhook_url"], name=data["name"], event_types=data["event_types"] or None
                )
            else:
                self.instance = webhook_endpoint_update(
                    endpoint=self.instance,
                    webhook_url=data["webhook_url"],
                    name=data["name"],
                    event_types=data["event_types"] or None,
                    event_types_sent=True,
                )
        except WebhookEndpointError as exc:
            add_service_errors(self, exc.errors, FORM_FIELDS.get)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin[WebhookEndpoint]):
    form = WebhookEndpointForm
    list_display = (
        "name_display",
        "webhook_url",
        "event_types_list",
        "created_at",
        "pending_display",
        "failed_display",
    )
    list_display_links = ("name_display", "webhook_url")
    search_fields = ("name", "webhook_url")
    search_help_text = "Name or URL."
    ordering = ("created_at", "id")
    fieldsets = (
        (None, {"fields": ("name", "webhook_url", "signature_algorithm")}),
        ("Event types", {"fields": ("event_types",)}),
    )
    readonly_fields = ("signature_algorithm", "created_at", "updated_at")

    def get_fieldsets(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> Any:
        if obj is None:
            return self.fieldsets
        return (*self.fieldsets, ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}))

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                pending_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.PENDING)),
                failed_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
            )
        )

    # --- columns and fields ---

    @admin.display(description="name", ordering="name")
    def name_display(self, obj: WebhookEndpoint) -> str:
        return obj.name or "—"

    @admin.display(description="event types")
    def event_types_list(self, obj: WebhookEndpoint) -> str:
        return event_types_display(obj.event_types)

    @admin.display(description="signature algorithm")
    def signature_algorithm(self, obj: WebhookEndpoint | None) -> str:
        return format_html('<strong>{}</strong><br><span class="quiet">{}</span>', SIGNATURE_ALGORITHM, SIGNATURE_HELP)

    def _count_link(self, obj: WebhookEndpoint, count: int, status: str) -> str:
        url = deliveries_url(endpoint__id__exact=obj.pk, status__exact=status)
        if not count or url is None:
            return str(count)
        return format_html('<a href="{}">{}</a>', url, count)

    @admin.display(description="pending", ordering="pending_count")
    def pending_display(self, obj: WebhookEndpoint) -> str:
        return self._count_link(obj, obj.pending_count, DeliveryStatus.PENDING)  # type: ignore[attr-defined]

    @admin.display(description="failed", ordering="failed_count")
    def failed_display(self, obj: WebhookEndpoint) -> str:
        return self._count_link(obj, obj.failed_count, DeliveryStatus.FAILED)  # type: ignore[attr-defined]

    # --- writes, through the service ---

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        """Nothing left to write: the form's validation saved it (webhook_endpoint_create/update)."""

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset.order_by("id"):
            webhook_endpoint_delete(endpoint=endpoint)

    # --- the signing key ---

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = dict(extra_context or {})
        if self.has_change_permission(request):  # Finance; read-only staff never see the key
            context["signing_key"] = signing_key()
            context["signing_key_source"] = KEY_FROM_SETTING if settings.WEBHOOK_HMAC_KEY else KEY_GENERATED
        return super().changelist_view(request, extra_context=context)
