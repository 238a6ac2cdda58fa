"""What the billing admin screens share: links between screens, reporting an action's refusals,
permission checks for custom pages, and streamed CSV downloads."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

# Refusals listed one by one before they are summed up in a count.
REFUSALS_LISTED = 10
MORE_REFUSED = "… and %(count)d more were refused."


def admin_url(name: str, *args: Any) -> str | None:
    """The URL of an admin page ("billing_invoice_change", pk), or None if not in this admin site."""
    try:
        return reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return None


def admin_link(name: str, pk: int, label: str) -> str:
    """An HTML link to an admin page, or the label alone where the page is not in this site."""
    url = admin_url(name, pk)
    return format_html('<a href="{}">{}</a>', url, label) if url else label


def report_refusals(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, refusals: list[str], template: str = "%(error)s"
) -> None:
    """What an action refused, one warning each up to REFUSALS_LISTED, then a count of the rest."""
    for refusal in refusals[:REFUSALS_LISTED]:
        model_admin.message_user(request, template % {"error": refusal}, messages.WARNING)
    if len(refusals) > REFUSALS_LISTED:
        model_admin.message_user(request, MORE_REFUSED % {"count": len(refusals) - REFUSALS_LISTED}, messages.WARNING)


def may_view(request: HttpRequest, model_admin: admin.ModelAdmin[Any], model: type[Any]) -> bool:
    """Whether the user may view `model` (for pages that live under another model's admin)."""
    site = model_admin.admin_site
    if site.is_registered(model):
        return site.get_model_admin(model).has_view_permission(request)
    opts = model._meta
    return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or request.user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}"
    )


class _Echo:
    """A file-like object whose write returns the line: csv.writer then yields rows as strings."""

    def write(self, value: str) -> str:
        return value


def safe_filename(name: str) -> str:
    """A file name for Content-Disposition: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "export"


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    """A CSV download streamed row by row (Django's csv pattern): memory stays flat for any size."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(filename)}"'
    return response
