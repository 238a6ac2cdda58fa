"""Idempotency keys move from a unique constraint on events to their own table (EventKey).

The events table can then be partitioned by month on PostgreSQL (0004), where a unique index
would have to include the timestamp. Existing events get their keys here (reversible: the
reverse drops the keys and restores the constraint).
"""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
INSERT INTO metering_eventkey (customer_id, transaction_id, payload_hash, metric_id, "timestamp")
SELECT customer_id, transaction_id, payload_hash, metric_id, "timestamp" FROM metering_event
"""


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0001_initial'),
        ('metering', '0002_events'),
    ]

    operations = [
        migrations.CreateModel(
            name='EventKey',
            fields=[
                ('pk', models.CompositePrimaryKey('customer_id', 'transaction_id', blank=True, editable=False, primary_key=True, serialize=False)),
                ('customer', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='customers.customer')),
                ('transaction_id', models.CharField(max_length=255)),
                ('payload_hash', models.CharField(max_length=64)),
                ('metric', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='metering.billablemetric')),
                ('timestamp', models.DateTimeField()),
            ],
            options={
                'verbose_name': 'event key',
                'indexes': [models.Index(fields=['transaction_id'], name='eventkey_transaction')],
            },
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
        migrations.RemoveConstraint(
            model_name='event',
            name='event_transaction_unique',
        ),
    ]
