"""django-q2's admins as finance reads them (billing.admin.tasks): schedules in words, tasks by
what they were for, the invoice-number counters read-only for everyone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test import Client
from django_q.models import Schedule
from sequences import get_next_value

from billing.admin.tasks import schedule_in_words

NEXT = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"schedule_type": Schedule.MINUTES, "minutes": 1}, "every minute"),
        ({"schedule_type": Schedule.MINUTES, "minutes": 15}, "every 15 minutes"),
        ({"schedule_type": Schedule.MINUTES, "minutes": 60}, "every hour"),
        ({"schedule_type": Schedule.MINUTES, "minutes": 1440}, "daily at 02:00 UTC"),
        ({"schedule_type": Schedule.HOURLY}, "every hour"),
        ({"schedule_type": Schedule.DAILY}, "daily at 02:00 UTC"),
        ({"schedule_type": Schedule.CRON, "cron": "0 2 * * *"}, "cron 0 2 * * *"),
        ({"schedule_type": Schedule.ONCE, "repeats": 1}, "once at 02:00 UTC"),
        ({"schedule_type": Schedule.DAILY, "repeats": 3}, "daily at 02:00 UTC, 3 more times"),
    ],
)
def test_a_schedule_reads_in_words(fields: dict[str, object], words: str) -> None:
    schedule = Schedule(func="billing.tasks.close_periods", next_run=NEXT, **{"repeats": -1, **fields})
    assert schedule_in_words(schedule) == words


@pytest.mark.django_db
def test_the_schedule_list_says_when_each_runs(admin_client: Client) -> None:
    Schedule.objects.create(
        name="Deliver webhooks", func="billing.tasks.deliver_webhooks", schedule_type=Schedule.MINUTES, minutes=1
    )
    content = admin_client.get("/admin/django_q/schedule/").content.decode()
    assert '<td class="field-runs">every minute</td>' in content


@pytest.mark.django_db
def test_not_even_a_superuser_may_change_the_invoice_number_counter(admin_client: Client) -> None:
    get_next_value("invoice-2026")
    listing = admin_client.get("/admin/sequences/sequence/")
    assert listing.status_code == 200 and "invoice-2026" in listing.content.decode()
    assert admin_client.get("/admin/sequences/sequence/add/").status_code == 403
    page = admin_client.get("/admin/sequences/sequence/invoice-2026/change/")
    assert page.status_code == 200 and 'name="last"' not in page.content.decode()
    assert admin_client.post("/admin/sequences/sequence/invoice-2026/delete/").status_code == 403
