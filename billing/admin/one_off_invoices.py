"""The "New one-off invoice" page (…/billing/addon/one-off-invoice/): add-ons billed to a customer
now, outside any subscription, for staff who may add invoices.

The form is the customer and up to FEE_ROWS lines, each an add-on with its units (default 1), its
unit price (empty: the add-on's price) and an optional description. It calls
billing.services.one_off_invoices.one_off_invoice_create, which decides everything under the
customer's lock (the customer's currency, the add-ons' prices, the customer's taxes) and either
makes the finalized, numbered invoice, announced and emailed like every other, or refuses with
errors by field, shown next to the input they are about; nothing is stored then. On success the
invoice's page opens. `?customer=<id>` chooses the customer.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path
from django.utils import timezone

from billing.admin.shared import admin_page, admin_url
from billing.documents.formats import format_money
from billing.models import AddOn
from billing.services.one_off_invoices import OneOffFee, OneOffInvoiceError, one_off_invoice_create
from customers.models import Customer

# Texts are constants so tests can match them.
TITLE = "New one-off invoice"
INVOICE_CREATED = "One-off invoice {number} was created for {customer}: {total}."
NO_LINE = "Choose at least one add-on."
FEE_ROWS = 5

# The permission that makes an invoice (the Finance role has it; read-only staff do not).
ADD_INVOICE = "billing.add_invoice"


def may_bill_one_off(request: HttpRequest) -> bool:
    return request.user.has_perm(ADD_INVOICE)


class OneOffCustomerForm(forms.Form):
    customer = forms.ModelChoiceField(
        queryset=Customer.objects.order_by("external_id"),
        help_text="Billed in its currency, with its taxes (its tax codes, else the organization's).",
    )


class OneOffFeeForm(forms.Form):
    add_on = forms.ModelChoiceField(queryset=AddOn.objects.order_by("code"), required=False)
    units = forms.DecimalField(initial=1, max_digits=30, decimal_places=10, required=False)
    unit_price = forms.DecimalField(
        max_digits=30, decimal_places=10, required=False, help_text="Empty: the add-on's price."
    )
    description = forms.CharField(max_length=2000, required=False)


OneOffFeeFormSet = forms.formset_factory(OneOffFeeForm, extra=FEE_ROWS, max_num=FEE_ROWS)

# The service's fields, as this page's inputs: (row or None, input name).
FEE_FIELDS = {"add_on_code": "add_on", "units": "units", "unit_amount_cents": "unit_price", "from_datetime": None}


def _show_errors(
    customer_form: OneOffCustomerForm, formset: Any, rows: list[int], errors: dict[str, list[str]]
) -> None:
    """Each of the service's errors on the input it is about (`fees.<i>.<field>`: the i-th line
    sent, which is row rows[i] of the page), else above the form."""
    for name, found in errors.items():
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "fees" and parts[1].isdigit() and int(parts[1]) < len(rows):
            field = FEE_FIELDS.get(parts[2])
            formset.forms[rows[int(parts[1])]].add_error(
                field, [f"{parts[2]}: {m}" if field is None else m for m in found]
            )
        elif name == "currency":
            customer_form.add_error("customer", [f"Currency {m}" for m in found])
        else:
            customer_form.add_error(None, [f"{name}: {m}" for m in found])


def one_off_invoice_view(request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> HttpResponse:
    """The form (GET), then one_off_invoice_create (POST)."""
    if not may_bill_one_off(request):
        raise PermissionDenied
    if request.method == "POST":
        customer_form = OneOffCustomerForm(request.POST)
        formset = OneOffFeeFormSet(request.POST, prefix="fees")
        if customer_form.is_valid() and formset.is_valid():
            rows = [i for i, form in enumerate(formset.forms) if form.cleaned_data.get("add_on") is not None]
            fees = [
                OneOffFee(
                    add_on_code=formset.forms[i].cleaned_data["add_on"].code,
                    units=formset.forms[i].cleaned_data.get("units"),
                    unit_amount=formset.forms[i].cleaned_data.get("unit_price"),
                    description=formset.forms[i].cleaned_data.get("description") or None,
                )
                for i in rows
            ]
            customer = customer_form.cleaned_data["customer"]
            if not fees:
                customer_form.add_error(None, NO_LINE)
            else:
                try:
                    invoice = one_off_invoice_create(customer=customer, fees=fees, now=timezone.now())
                except OneOffInvoiceError as exc:
                    _show_errors(customer_form, formset, rows, exc.errors)
                else:
                    model_admin.message_user(
                        request,
                        INVOICE_CREATED.format(
                            number=invoice.number,
                            customer=customer,
                            total=format_money(invoice.total, invoice.currency),
                        ),
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(admin_url("billing_invoice_change", invoice.pk) or ".")
    else:
        chosen = request.GET.get("customer", "")
        initial = {"customer": chosen} if chosen.isascii() and chosen.isdigit() else {}
        customer_form = OneOffCustomerForm(initial=initial)
        formset = OneOffFeeFormSet(prefix="fees")
    add_ons = [
        {"code": a.code, "name": a.name, "price": format_money(a.amount, a.currency)}
        for a in AddOn.objects.order_by("code")
    ]
    return admin_page(
        model_admin,
        request,
        "admin/billing/addon/one_off_invoice.html",
        title=TITLE,
        customer_form=customer_form,
        formset=formset,
        add_ons=add_ons,
        add_add_on_url=admin_url("billing_addon_add") if request.user.has_perm("billing.add_addon") else None,
    )


def one_off_invoice_urls(model_admin: admin.ModelAdmin[Any]) -> list[URLPattern]:
    """The "New one-off invoice" page, under the add-on admin."""
    return [
        path(
            "one-off-invoice/",
            model_admin.admin_site.admin_view(one_off_invoice_view),
            {"model_admin": model_admin},
            name="billing_addon_one_off_invoice",
        )
    ]
