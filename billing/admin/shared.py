"""What the billing admin screens share: links between screens, reporting an action's refusals,
permission checks for custom pages, a filter by customer, and streamed CSV downloads."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from customers.models import Customer

M = TypeVar("M", bound=Model)

# Refusals listed one by one before they are summed up in a count.
REFUSALS_LISTED = 10
MORE_REFUSED = "… and %(count)d more were refused."
# Customers listed in a customer filter; with more, search by name or id.
CUSTOMERS_LISTED = 30


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


def changelist_url(model_admin: admin.ModelAdmin[Any]) -> str:
    opts = model_admin.opts
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


def admin_page(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, template: str, **context: Any
) -> TemplateResponse:
    """A page of our own inside the admin (a calculator, a confirmation, a report), with the admin's
    header, breadcrumbs and permissions context, for a user already checked to may view it."""
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(
        request,
        template,
        {
            **model_admin.admin_site.each_context(request),
            "opts": model_admin.opts,
            "has_view_permission": True,
            "changelist_url": changelist_url(model_admin),
            **context,
        },
    )


def action_page(
    model_admin: admin.ModelAdmin[Any],
    request: HttpRequest,
    template: str,
    *,
    action_name: str,
    selected_ids: list[int],
    **context: Any,
) -> TemplateResponse:
    """The intermediate page of an action that asks for something first (a reason, an amount): it
    posts back the action and the selection with the answer."""
    return admin_page(
        model_admin,
        request,
        template,
        action_name=action_name,
        selected_ids=selected_ids,
        action_checkbox_name=helpers.ACTION_CHECKBOX_NAME,
        **context,
    )


def viewable_object(model_admin: admin.ModelAdmin[M], request: HttpRequest, object_id: str) -> M | HttpResponse:
    """The object a custom page of one object is about (a document, a calculator), or the admin's
    own "not found" redirect; PermissionDenied if the user may not view it."""
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        # ModelAdmin's own message and redirect; django-stubs leaves this private method out.
        redirect: HttpResponse = model_admin._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
            request, model_admin.opts, object_id
        )
        return redirect
    if not model_admin.has_view_permission(request, obj):
        raise PermissionDenied
    return obj


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


class CustomerFilter(admin.SimpleListFilter):
    """By customer (external id), reached from the listed model through `path`. Lists the
    customers with rows in the list while they are few; past CUSTOMERS_LISTED only the chosen one
    is shown, and search finds the others by name or id."""

    title = "customer"
    parameter_name = "customer"
    path = "customer"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        rows = model_admin.model._default_manager.filter(**{self.path: OuterRef("pk")})
        listed = Customer.objects.filter(Exists(rows)).order_by("external_id").only("external_id", "name")
        customers = list(listed[: CUSTOMERS_LISTED + 1])
        if len(customers) > CUSTOMERS_LISTED:
            customers = list(listed.filter(external_id=self.value())) if self.value() else []
        return [(c.external_id, str(c)) for c in customers]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(**{f"{self.path}__external_id": self.value()})
        return queryset


class _Echo:
    """A file-like object whose write returns the line: csv.writer then yields rows as strings."""

    def write(self, value: str) -> str:
        return value


def safe_filename(name: str) -> str:
    """A file name for Content-Disposition: letters, digits, dot, dash and underscore only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "export"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting like a formula (=, +, -, @, tab, CR) gets a
    leading apostrophe, as OWASP advises; plain numbers (-12.50) stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    """A CSV download streamed row by row (Django's csv pattern): memory stays flat for any size.
    Every cell goes through csv_cell: values come from API clients (user ids, customer names)."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(filename)}"'
    return response
