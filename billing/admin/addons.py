"""Admin for add-ons (DESIGN §6 "Add-ons and one-off invoices"): the list, the add and change
forms, delete, and the "New one-off invoice" button (billing.admin.one_off_invoices).

- Every change goes through billing.services.addons: the form's model validation step is the
  service itself (add_on_create / add_on_update), which either writes or refuses with errors by
  field (AddOnError, shown on the input it is about; nothing is stored). The price is typed in
  the currency's major unit ("125.00" dollars), at most its minor unit's decimals.
- Deleting (the page and the bulk action) calls add_on_destroy: invoices keep what they billed.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from billing.admin.money_input import add_service_errors
from billing.admin.one_off_invoices import may_bill_one_off, one_off_invoice_urls
from billing.admin.shared import admin_url
from billing.documents.formats import format_money
from billing.engine.money import quantize_money
from billing.models import AddOn
from billing.services.addons import AddOnError, add_on_create, add_on_destroy, add_on_update

# Texts are constants so tests can match them.
AMOUNT_HELP = (
    "The default price of one unit, in the currency (e.g. 125.00); a one-off invoice may set its own. "
    "At most the currency's minor unit."
)

FORM_FIELDS = {name: name for name in ("code", "name", "invoice_display_name", "description", "amount", "currency")}


class AddOnForm(forms.ModelForm[AddOn]):
    """Saved by the service: its validation (and write) replaces the model's."""

    amount = forms.DecimalField(min_value=0, max_digits=30, decimal_places=10, help_text=AMOUNT_HELP)
    currency = forms.CharField(max_length=3, help_text="ISO 4217, e.g. USD.")

    class Meta:
        model = AddOn
        fields = ("code", "name", "invoice_display_name", "description", "amount", "currency")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:  # "125.00", not the column's "125.0000000000"
            self.initial["amount"] = quantize_money(self.instance.amount, self.instance.currency)

    def clean_currency(self) -> str:
        return str(self.cleaned_data["currency"]).strip().upper()

    def _post_clean(self) -> None:
        if self.errors:
            return
        data = self.cleaned_data
        fields = {
            "code": data["code"],
            "name": data["name"],
            "invoice_display_name": data.get("invoice_display_name") or "",
            "description": data.get("description") or "",
            "amount": data["amount"],
            "currency": data["currency"],
        }
        try:
            if self.instance._state.adding:
                self.instance = add_on_create(**fields)
            else:
                self.instance = add_on_update(add_on=self.instance, **fields)
        except AddOnError as exc:
            add_service_errors(self, exc.errors, FORM_FIELDS.get)


@admin.register(AddOn)
class AddOnAdmin(admin.ModelAdmin[AddOn]):
    form = AddOnForm
    list_display = ("code", "name", "price_display", "invoice_display_name")
    list_filter = ("currency",)
    search_fields = ("code", "name")
    search_help_text = "Code or name."
    ordering = ("code",)
    readonly_fields = ("created_at", "updated_at")
    change_list_template = "admin/billing/addon/change_list.html"

    def get_fieldsets(self, request: HttpRequest, obj: AddOn | None = None) -> Any:
        fieldsets: list[Any] = [
            (None, {"fields": ("code", "name", "invoice_display_name", "description")}),
            ("Price", {"fields": ("amount", "currency")}),
        ]
        if obj is not None:
            fieldsets.append(("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}))
        return fieldsets

    @admin.display(description="price", ordering="amount")
    def price_display(self, obj: AddOn) -> str:
        return format_money(obj.amount, obj.currency)

    def get_urls(self) -> list[URLPattern]:
        return [*one_off_invoice_urls(self), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = dict(extra_context or {})
        if may_bill_one_off(request):  # only offered to those it would not refuse
            context["one_off_invoice_url"] = admin_url("billing_addon_one_off_invoice")
        return super().changelist_view(request, extra_context=context)

    # --- writes, through the service ---

    def save_model(self, request: HttpRequest, obj: AddOn, form: Any, change: bool) -> None:
        """Nothing left to write: the form's validation saved it (add_on_create / add_on_update)."""

    def delete_model(self, request: HttpRequest, obj: AddOn) -> None:
        add_on_destroy(add_on=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AddOn]) -> None:
        for add_on in queryset.order_by("id"):
            add_on_destroy(add_on=add_on)
