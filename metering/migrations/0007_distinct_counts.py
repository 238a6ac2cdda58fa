"""The size of each month's unique_count set (DistinctCount), maintained at ingestion; the sets
that exist are counted here.

One INSERT … SELECT … GROUP BY, the same SQL on PostgreSQL and SQLite. Going back drops the
table, so the backfill has nothing to undo.
"""

import django.db.models.deletion
from django.db import migrations, models

BACKFILL = """
INSERT INTO metering_distinctcount (customer_id, metric_id, month, count)
SELECT customer_id, metric_id, month, COUNT(*) FROM metering_distinctvalue GROUP BY customer_id, metric_id, month
"""


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0003_customer_deleted_at'),
        ('metering', '0006_fewer_foreign_key_checks'),
    ]

    operations = [
        migrations.CreateModel(
            name='DistinctCount',
            fields=[
                ('pk', models.CompositePrimaryKey('customer_id', 'metric_id', 'month', blank=True, editable=False, primary_key=True, serialize=False)),
                ('month', models.PositiveIntegerField(help_text="yyyymm in the customer's time zone.")),
                ('count', models.BigIntegerField()),
                ('customer', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='customers.customer')),
                ('metric', models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='metering.billablemetric')),
            ],
            options={
                'verbose_name': 'distinct value count',
            },
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
