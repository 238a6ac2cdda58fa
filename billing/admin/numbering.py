"""The invoice-number counters (django-sequences' Sequence rows), read-only for everyone.

Gap-free numbering (billing.services.numbering) depends on each counter only ever moving forward
inside the transaction that finalizes an invoice: editing one by hand would skip or reuse numbers.
django-sequences' own admin lets a superuser change and delete them; this one replaces it and
only shows them (a superuser too).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from sequences.models import Sequence

if admin.site.is_registered(Sequence):
    admin.site.unregister(Sequence)


@admin.register(Sequence)
class SequenceAdmin(admin.ModelAdmin[Sequence]):
    list_display = ("name", "last")
    ordering = ("name",)
    search_fields = ("name",)
    readonly_fields = ("name", "last")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
