"""Admin for promotions (trials and other percentages off): their terms turn read-only once a
subscription uses them, as load_catalog refuses to change them then."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from billing.models import Promotion

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

SOLD_PROMOTION_NOTE = (
    "Subscriptions use this promotion, so its terms are read-only: changing them would reprice "
    "those subscriptions. Create a new promotion and attach it to a new plan version instead."
)
PROMOTION_TERMS_FIELDS = ("percent_off", "duration_days", "applies_to")


class _PlanCount(TypedDict):
    plan_count: int  # PromotionAdmin.get_queryset


@admin.register(Promotion)
class PromotionAdmin(admin.ModelAdmin[Promotion]):
    list_display = ("code", "name", "percent_off", "duration_days", "applies_to", "plan_count")
    list_filter = ("applies_to",)
    search_fields = ("code", "name")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("code", "name")}),
        ("Terms", {"fields": PROMOTION_TERMS_FIELDS}),
        ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Promotion]:
        return super().get_queryset(request).annotate(plan_count=Count("plans"))

    @admin.display(description="plans", ordering="plan_count")
    def plan_count(self, obj: WithAnnotations[Promotion, _PlanCount]) -> int:
        return obj.plan_count

    def _is_used(self, obj: Promotion | None) -> bool:
        return obj is not None and obj.subscriptions.exists()

    def get_readonly_fields(self, request: HttpRequest, obj: Promotion | None = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields + PROMOTION_TERMS_FIELDS if self._is_used(obj) else fields

    def get_fieldsets(self, request: HttpRequest, obj: Promotion | None = None) -> Any:
        if not self._is_used(obj):
            return super().get_fieldsets(request, obj)
        return (
            (None, {"fields": ("code", "name")}),
            ("Terms", {"fields": PROMOTION_TERMS_FIELDS, "description": SOLD_PROMOTION_NOTE}),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )
