"""django-q2's admin, guarded: its actions declare permissions, and schedules can't run arbitrary code.

django-q2's own "Resubmit selected tasks" action declares no permission, so anyone who may view
task results could re-run them. And a schedule's function path and arguments decide what the
workers execute: only superusers may change those; finance staff may pause or retime a
schedule.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django_q import admin as q_admin
from django_q.models import Failure, Schedule, Success

CODE_FIELDS = ("func", "hook", "args", "kwargs", "cluster")


@admin.action(description="Resubmit selected tasks to queue", permissions=["change"])
def resubmit_task(modeladmin: admin.ModelAdmin[Any], request: HttpRequest, queryset: QuerySet[Any]) -> None:
    q_admin.resubmit_task(modeladmin, request, queryset)


class GuardedTaskAdmin(q_admin.TaskAdmin):
    actions = [resubmit_task]


class GuardedFailAdmin(q_admin.FailAdmin):
    actions = [resubmit_task]


class GuardedScheduleAdmin(q_admin.ScheduleAdmin):
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            names = {f.name for f in Schedule._meta.get_fields()}
            fields += [name for name in CODE_FIELDS if name in names and name not in fields]
        return fields


for model, model_admin in ((Success, GuardedTaskAdmin), (Failure, GuardedFailAdmin), (Schedule, GuardedScheduleAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
