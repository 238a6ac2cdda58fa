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


PERIODS = {
    Schedule.HOURLY: "every hour",
    Schedule.DAILY: "daily",
    Schedule.WEEKLY: "weekly",
    Schedule.MONTHLY: "monthly",
    Schedule.QUARTERLY: "quarterly",
    Schedule.YEARLY: "yearly",
}
DAY_MINUTES = 24 * 60


def schedule_in_words(schedule: Schedule) -> str:
    """ "every minute", "every hour", "daily at 02:00 UTC", "cron 0 2 * * *", …, and how many runs
    are left when they are counted (django-q2 stores "Minutes / Repeats -1")."""
    at = f" at {schedule.next_run:%H:%M} UTC" if schedule.next_run else ""
    kind = schedule.schedule_type
    if kind == Schedule.ONCE:
        return f"once{at}"
    if kind == Schedule.CRON:
        words = f"cron {schedule.cron}"
    elif kind == Schedule.MINUTES:
        minutes = schedule.minutes or 1
        if minutes == DAY_MINUTES:
            words = f"daily{at}"
        elif minutes % 60 == 0:
            hours = minutes // 60
            words = "every hour" if hours == 1 else f"every {hours} hours"
        else:
            words = "every minute" if minutes == 1 else f"every {minutes} minutes"
    else:
        words = PERIODS.get(kind, str(kind)) + (at if kind != Schedule.HOURLY else "")
    if schedule.repeats is not None and schedule.repeats >= 0:
        words += f", {schedule.repeats} more time{'s' if schedule.repeats != 1 else ''}"
    return words


@admin.display(description="task")
def task_display(task: Any) -> str:
    """A task by what it was for: its schedule's name (django-q2 groups a schedule's runs under
    it), else its function; django-q2's generated names ("hotel-bravo-…") say nothing."""
    return str(task.group or task.func)


class GuardedTaskAdmin(q_admin.TaskAdmin):
    actions = [resubmit_task]
    list_display = (task_display, "func", "started", "stopped", "time_taken")


class GuardedFailAdmin(q_admin.FailAdmin):
    actions = [resubmit_task]
    list_display = (task_display, "func", "started", "stopped", "short_result")


class GuardedScheduleAdmin(q_admin.ScheduleAdmin):
    list_display = ("name", "func", "runs", "next_run", "get_last_run", "get_success")
    list_display_links = ("name",)

    @admin.display(description="runs")
    def runs(self, obj: Schedule) -> str:
        return schedule_in_words(obj)

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
