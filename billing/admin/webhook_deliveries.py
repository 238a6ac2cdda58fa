"""Admin for the webhook deliveries log (DESIGN §6 "Webhooks"): read-only, with "Resend".

- Deliveries are written by billing.services.webhooks.announce in the transaction of the change
  they announce, and sent by its workers (django-q2, `manage.py deliver_webhooks`): there is no
  add, change or delete page, and nothing here sends anything itself.
- The list: when it was written; the event type with the object it announces (type and id,
  linked to its admin page when there is one); the endpoint's URL as it was when the delivery
  was written; the status with the attempts made out of those allowed and, while pending, when
  the next one is due; the last response (status code or error, and the start of its body).
  Five columns, so that the list fits beside the admin's sidebars at 1280 px. Filters by status,
  type and endpoint (deleted endpoints too); search by unique key (X-Lago-Unique-Key) or object
  id. A fixed number of queries whatever the page holds.
- A delivery's page: its body as sent (pretty-printed JSON), the headers it is sent with (the
  signature algorithm, the unique key; the signature itself is computed when sending, with the
  signing key shown to finance on the endpoint list) and its attempts (number, start, duration,
  status code, error, response excerpt).
- "Resend" (delivery_resend) sends a failed or succeeded delivery again: one more attempt, the
  same body and unique key, queued at once. A pending delivery is refused (it is sent when due).
  The action is on the list, and on a delivery's page as a button for those who may run it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import ngettext

from billing.admin.shared import admin_link, admin_url, report_refusals
from billing.engine.vocabulary import DeliveryStatus
from billing.models import WebhookDelivery
from billing.services.webhooks import USER_AGENT, DeliveryPending, delivery_resend

# Messages are constants so tests can match them.
RESENT = (
    "%(count)d delivery was queued to be sent again (one more attempt, the same body and unique key).",
    "%(count)d deliveries were queued to be sent again (one more attempt each, the same body and unique key).",
)
NOTHING_RESENT = "No delivery was resent."
STILL_PENDING = (
    "{webhook_type} of {object}: still pending ({attempts} of {max_attempts} attempts made), it is sent when due."
)
READ_ONLY_NOTE = (
    "A delivery is written when the change it announces is made, and sent by the webhook workers: it never "
    "changes here. “Resend” sends a failed or succeeded delivery once more."
)
SIGNATURE_NOTE = "base64 HMAC-SHA256 of the body, with the signing key (computed at each attempt)"
DELETED_ENDPOINT = "(deleted)"

# Where the announced objects are in the admin (admin_url gives None when one is not registered).
OBJECT_PAGES = {
    "invoice": "billing_invoice_change",
    "credit_note": "billing_creditnote_change",
    "subscription": "billing_subscription_change",
    "triggered_alert": "billing_triggeredalert_change",
}
KEY_PREFIX_DIGITS = 8  # a search of this many digits or more is also a unique key's start
LIST_EXCERPT = 60  # characters of the last response on the list
PAGE_EXCERPT = 300  # characters of each attempt's response on a delivery's page
FROM_PAGE = "_from_delivery_page"  # posted by the button on a delivery's page: come back to it


def when(moment: datetime | None, fmt: str = "j M Y, H:i:s") -> str:
    return date_format(timezone.localtime(moment), fmt) if moment else "—"


def breakable(code: str) -> str:
    """A dotted, underscored code ("invoice.payment_status_updated") that may wrap after . and _."""
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in re.split(r"(?<=[._])", code)))


def object_label(delivery: WebhookDelivery) -> str:
    return f"{delivery.object_type.replace('_', ' ')} #{delivery.object_id}"


def response_summary(status_code: int | None, error: str, body: str, length: int) -> str:
    """The last answer, as "200 · {"ok": true}" or "ConnectError: …"; "—" before the first one."""
    if status_code is None:
        return Truncator(error).chars(length) if error else "—"
    excerpt = " ".join(body.split())
    return f"{status_code} · {Truncator(excerpt).chars(length)}" if excerpt else str(status_code)


class EndpointFilter(admin.RelatedFieldListFilter):
    """By endpoint, with the deliveries of deleted endpoints as a choice of their own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.empty_value_display = conditional_escape(DELETED_ENDPOINT)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = ("created_display", "event_display", "url_display", "status_summary", "last_response_display")
    list_display_links = ("created_display",)
    list_filter = ("status", "webhook_type", ("endpoint", EndpointFilter))
    list_select_related = ("endpoint",)
    search_fields = ("unique_key", "=object_id")
    search_help_text = "The unique key (X-Lago-Unique-Key) or its start, or the announced object's id (digits)."
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    actions = ("resend_selected",)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery], search_term: str
    ) -> tuple[QuerySet[WebhookDelivery], bool]:
        """Digits are an object's id, exactly; anything else the unique key or its start. (Searching
        both, "12" matched every key containing those digits: most of them.) Digits as long as
        KEY_PREFIX_DIGITS are also a key's start: one key in forty begins with eight digits."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            if len(term) >= KEY_PREFIX_DIGITS:
                return queryset.filter(Q(object_id=term) | Q(unique_key__istartswith=term)), False
            return queryset.filter(object_id=term), False
        return queryset.filter(unique_key__istartswith=term), False

    fieldsets = (
        (
            None,
            {
                "fields": (
                    "type_display",
                    "object_display",
                    "endpoint_display",
                    "url_display",
                    "status_display",
                    "attempts_display",
                    "next_attempt_at",
                    "delivered_at",
                    "created_at",
                ),
                "description": READ_ONLY_NOTE,
            },
        ),
        ("Request", {"fields": ("headers_display", "body_display")}),
        ("Attempts", {"fields": ("attempts_table", "last_error")}),
    )
    readonly_fields = (
        "type_display",
        "object_display",
        "endpoint_display",
        "url_display",
        "status_display",
        "attempts_display",
        "next_attempt_at",
        "delivered_at",
        "created_at",
        "headers_display",
        "body_display",
        "attempts_table",
        "last_error",
    )

    # --- columns and fields ---

    @admin.display(description="created", ordering="created_at")
    def created_display(self, obj: WebhookDelivery) -> str:
        return format_html("{}<br>{}", when(obj.created_at, "j M Y"), when(obj.created_at, "H:i:s"))

    @admin.display(description="event and object", ordering="webhook_type")
    def event_display(self, obj: WebhookDelivery) -> str:
        return format_html("<code>{}</code><br>{}", breakable(obj.webhook_type), self.object_display(obj))

    @admin.display(description="event type", ordering="webhook_type")
    def type_display(self, obj: WebhookDelivery) -> str:
        return format_html("<code>{}</code> ({})", obj.webhook_type, obj.get_webhook_type_display())

    @admin.display(description="status", ordering="status")
    def status_summary(self, obj: WebhookDelivery) -> str:
        lines = [
            self.status_display(obj),
            format_html('<span class="quiet nowrap">{} attempts</span>', self.attempts_display(obj)),
        ]
        if obj.next_attempt_at is not None:
            when_next = when(obj.next_attempt_at, "j M H:i")
            lines.append(format_html('<span class="quiet">next <span class="nowrap">{}</span></span>', when_next))
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.display(description="object", ordering="object_id")
    def object_display(self, obj: WebhookDelivery) -> str:
        name = OBJECT_PAGES.get(obj.object_type)
        url = admin_url(name, obj.object_id) if name else None
        label = object_label(obj)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.display(description="endpoint URL", ordering="webhook_url")
    def url_display(self, obj: WebhookDelivery) -> str:
        if obj.endpoint_id is None:
            return format_html('{} <span class="quiet">{}</span>', obj.webhook_url, DELETED_ENDPOINT)
        return obj.webhook_url

    @admin.display(description="endpoint")
    def endpoint_display(self, obj: WebhookDelivery) -> str:
        if obj.endpoint is None:
            return f"{DELETED_ENDPOINT} its deliveries stay in this log; pending ones are not sent"
        return admin_link("billing_webhookendpoint_change", obj.endpoint.pk, str(obj.endpoint))

    @admin.display(description="status", ordering="status")
    def status_display(self, obj: WebhookDelivery) -> str:
        return format_html('<span class="delivery-status delivery-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="attempts")
    def attempts_display(self, obj: WebhookDelivery) -> str:
        return f"{obj.attempts} / {obj.max_attempts}"

    @admin.display(description="last response")
    def last_response_display(self, obj: WebhookDelivery) -> str:
        return response_summary(obj.last_status_code, obj.last_error, obj.last_response, LIST_EXCERPT)

    @admin.display(description="headers sent")
    def headers_display(self, obj: WebhookDelivery) -> str:
        headers = (
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
            ("X-Lago-Signature-Algorithm", "hmac"),
            ("X-Lago-Signature", SIGNATURE_NOTE),
            ("X-Lago-Unique-Key", str(obj.unique_key)),
        )
        rows = format_html_join("", "<tr><th>{}</th><td><code>{}</code></td></tr>", headers)
        return format_html('<table class="webhook-headers"><tbody>{}</tbody></table>', rows)

    @admin.display(description="body")
    def body_display(self, obj: WebhookDelivery) -> str:
        try:
            pretty = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except ValueError:  # not JSON (never written so, but show what is there)
            pretty = obj.body
        return format_html('<pre class="webhook-body">{}</pre>', pretty)

    @admin.display(description="each attempt")
    def attempts_table(self, obj: WebhookDelivery) -> str:
        attempts = list(obj.attempt_log.order_by("number"))
        if not attempts:
            return "No attempt yet."
        rows = format_html_join(
            "",
            '<tr><td class="number">{}</td><td>{}</td><td class="number">{}</td><td class="number">{}</td>'
            "<td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    attempt.number,
                    when(attempt.started_at),
                    f"{attempt.duration_ms} ms" if attempt.duration_ms is not None else "—",
                    attempt.status_code if attempt.status_code is not None else "—",
                    attempt.error or "—",
                    Truncator(attempt.response_excerpt).chars(PAGE_EXCERPT),
                )
                for attempt in attempts
            ),
        )
        return format_html(
            '<table class="webhook-attempts"><thead><tr><th class="number">#</th><th>Started</th>'
            '<th class="number">Duration</th><th class="number">Status</th><th>Error</th><th>Response</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    # --- permissions: read-only; the model's change permission is the resend action's ---

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # written by announce()

    def has_change_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        if obj is not None:
            return False  # no delivery is edited on its page
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: WebhookDelivery | None = None) -> bool:
        return False  # the log keeps every delivery

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: WebhookDelivery | None = None,
    ) -> HttpResponse:
        if obj is not None and "resend_selected" in self.get_actions(request):
            context["resend"] = {
                "url": admin_url("billing_webhookdelivery_changelist"),
                "action": "resend_selected",
                "checkbox": helpers.ACTION_CHECKBOX_NAME,
                "from_page": FROM_PAGE,
                "pending": obj.status == DeliveryStatus.PENDING,
            }
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- actions ---

    @admin.action(description="Resend", permissions=["change"])
    def resend_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> HttpResponse | None:
        """Failed or succeeded deliveries: one more attempt now (delivery_resend); pending ones are refused."""
        frozen_now = timezone.now()
        deliveries = list(queryset.order_by("created_at", "id"))
        resent, refusals = 0, []
        for delivery in deliveries:
            try:
                delivery_resend(delivery=delivery, now=frozen_now)
            except DeliveryPending:
                refusals.append(
                    STILL_PENDING.format(
                        webhook_type=delivery.webhook_type,
                        object=object_label(delivery),
                        attempts=delivery.attempts,
                        max_attempts=delivery.max_attempts,
                    )
                )
            else:
                resent += 1
        if resent:
            self.message_user(request, ngettext(*RESENT, resent) % {"count": resent}, messages.SUCCESS)
        else:
            self.message_user(request, NOTHING_RESENT, messages.WARNING)
        report_refusals(self, request, refusals)
        if FROM_PAGE in request.POST and len(deliveries) == 1:
            url = admin_url("billing_webhookdelivery_change", deliveries[0].pk)
            return HttpResponseRedirect(url) if url else None
        return None
