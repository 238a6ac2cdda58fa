"""Daily event counts (EventCount), maintained at ingestion; existing events are counted here.

PostgreSQL counts in one INSERT … SELECT … GROUP BY, with each customer's local day. SQLite
(small, embedded databases) counts in Python with the same zoneinfo rules ingestion uses.
"""

from collections import Counter
from zoneinfo import ZoneInfo

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
INSERT INTO metering_eventcount (customer_id, metric_id, day, count)
SELECT e.customer_id, e.metric_id, (e."timestamp" AT TIME ZONE c.timezone)::date, count(*)
FROM metering_event e JOIN customers_customer c ON c.id = e.customer_id
GROUP BY 1, 2, 3
"""


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(BACKFILL)
        return
    Event = apps.get_model("metering", "Event")
    EventCount = apps.get_model("metering", "EventCount")
    counts = Counter()
    rows = Event.objects.using(connection.alias).values_list("customer_id", "metric_id", "timestamp", "customer__timezone")
    for customer_id, metric_id, timestamp, tz in rows.iterator(chunk_size=10_000):
        counts[(customer_id, metric_id, timestamp.astimezone(ZoneInfo(tz)).date())] += 1
    EventCount.objects.using(connection.alias).bulk_create(
        [EventCount(customer_id=c, metric_id=m, day=d, count=n) for (c, m, d), n in counts.items()], batch_size=1000
    )


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0001_initial'),
        ('metering', '0004_partition_events'),
    ]

    operations = [
        migrations.CreateModel(
            name='EventCount',
            fields=[
                ('pk', models.CompositePrimaryKey('customer_id', 'metric_id', 'day', blank=True, editable=False, primary_key=True, serialize=False)),
                ('day', models.DateField(help_text="The day in the customer's time zone.")),
                ('count', models.BigIntegerField()),
                ('customer', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='customers.customer')),
                ('metric', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='metering.billablemetric')),
            ],
            options={
                'verbose_name': 'daily event count',
            },
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
