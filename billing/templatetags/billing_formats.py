"""The one format for days and instants in templates (billing.documents.formats): `{{ day|day }}`
reads "November 1, 2026"; `{{ moment|moment:customer.timezone }}` reads "November 1, 2026, 00:30
(Europe/Paris)", in the customer's zone, never the server's."""

from __future__ import annotations

from datetime import date, datetime

from django import template

from billing.documents.formats import format_day, format_moment

register = template.Library()


@register.filter
def day(value: date | None) -> str:
    return format_day(value) if value else ""


@register.filter
def moment(value: datetime | None, tz: str) -> str:
    return format_moment(value, tz) if value else ""
