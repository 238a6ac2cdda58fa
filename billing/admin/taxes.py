"""Admin for taxes (DESIGN §6 "Taxes"): the list, the add and change forms, delete.

- Every change goes through billing.services.taxes: the form's model validation step is the
  service itself (tax_create / tax_update), which decides under its lock and either writes or
  refuses with errors by field (TaxError, shown on the input it is about; nothing is stored).
- Deleting (the page and the bulk action, both behind Django's confirmation) calls tax_destroy,
  as Lago's destroy does: the customers that had the tax lose it (the confirmation lists them),
  and invoices keep the taxes they were issued with.
- The list counts the customers whose tax codes name each tax (one query with the page). An
  organization-wide tax applies besides to every customer without tax codes of its own.
- A customer's tax codes are set on the customer's page (billing.admin.customers).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from billing.admin.money_input import add_service_errors
from billing.models import CustomerTax, Tax
from billing.services.taxes import TaxError, tax_create, tax_destroy, tax_update

# Texts are constants so tests can match them.
RATE_HELP = "Percent, from 0 to 100, at most 4 decimal places: 20 is 20 %."
ORGANIZATION_HELP = (
    "Applies to every customer that has no tax codes of its own (a customer's tax codes replace the "
    "organization's taxes for that customer)."
)
LOSES_TAX = "Customer {customer} loses its tax code {code}"

FORM_FIELDS = {name: name for name in ("code", "name", "rate", "description", "applied_to_organization")}


class TaxForm(forms.ModelForm[Tax]):
    """Saved by the service: its validation (and write) replaces the model's."""

    class Meta:
        model = Tax
        fields = ("code", "name", "rate", "description", "applied_to_organization")
        help_texts = {"rate": RATE_HELP, "applied_to_organization": ORGANIZATION_HELP}

    def _post_clean(self) -> None:
        # ModelForm validates against the model here (and would save it later); a tax is
        # validated and written by its service instead, inside the admin's transaction.
        if self.errors:
            return
        data = self.cleaned_data
        try:
            if self.instance._state.adding:
                self.instance = tax_create(
                    code=data["code"],
                    name=data["name"],
                    rate=data["rate"],
                    description=data.get("description") or "",
                    applied_to_organization=data["applied_to_organization"],
                )
            else:
                self.instance = tax_update(
                    tax=self.instance,
                    code=data["code"],
                    name=data["name"],
                    rate=data["rate"],
                    description=data.get("description") or "",
                    applied_to_organization=data["applied_to_organization"],
                )
        except TaxError as exc:
            add_service_errors(self, exc.errors, FORM_FIELDS.get)


@admin.register(Tax)
class TaxAdmin(admin.ModelAdmin[Tax]):
    form = TaxForm
    list_display = ("code", "name", "rate_display", "organization_display", "customers_display")
    list_filter = ("applied_to_organization",)
    search_fields = ("code", "name")
    search_help_text = "Code or name."
    ordering = ("name", "code")
    readonly_fields = ("created_at", "updated_at")

    def get_fieldsets(self, request: HttpRequest, obj: Tax | None = None) -> Any:
        fieldsets: list[Any] = [(None, {"fields": ("code", "name", "rate", "applied_to_organization", "description")})]
        if obj is not None:
            fieldsets.append(("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}))
        return fieldsets

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tax]:
        return super().get_queryset(request).annotate(customer_count=Count("customer_taxes"))

    @admin.display(description="rate", ordering="rate")
    def rate_display(self, obj: Tax) -> str:
        return f"{obj.rate.normalize():f} %"

    @admin.display(description="organization-wide", boolean=True, ordering="applied_to_organization")
    def organization_display(self, obj: Tax) -> bool:
        return obj.applied_to_organization

    @admin.display(description="customers with this code", ordering="customer_count")
    def customers_display(self, obj: Tax) -> int:
        return int(obj.customer_count)  # type: ignore[attr-defined]

    # --- writes, through the service ---

    def save_model(self, request: HttpRequest, obj: Tax, form: Any, change: bool) -> None:
        """Nothing left to write: the form's validation saved it (tax_create / tax_update)."""

    def delete_model(self, request: HttpRequest, obj: Tax) -> None:
        tax_destroy(tax=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tax]) -> None:
        for tax in queryset.order_by("id"):
            tax_destroy(tax=tax)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """The confirmation: the customers' tax codes that go with the tax are not "protected"
        (tax_destroy removes them first, as Lago's destroy does): they are listed as removed."""
        deleted, counts, perms_needed, _protected = super().get_deleted_objects(objs, request)
        links = CustomerTax.objects.filter(tax__in=list(objs)).select_related("customer", "tax").order_by("id")
        deleted = [*deleted, *(LOSES_TAX.format(customer=link.customer, code=link.tax.code) for link in links)]
        return deleted, counts, perms_needed, []
