"""PostgreSQL: partition the events table by month (declarative RANGE partitioning on "timestamp").

The primary key becomes (id, "timestamp"), as a partitioned table requires; the window index
(customer, metric, timestamp) is created on the parent and so on every partition. Idempotency
no longer needs a unique index here (EventKey, 0003). Rows are copied over; the reverse turns
the table back into a plain one. SQLite is left as it is.
"""

from django.db import migrations

FORWARD = """
ALTER TABLE metering_event RENAME TO metering_event_plain;
ALTER INDEX event_window RENAME TO event_window_plain;
CREATE TABLE metering_event (LIKE metering_event_plain INCLUDING DEFAULTS INCLUDING IDENTITY)
    PARTITION BY RANGE ("timestamp");
ALTER TABLE metering_event ADD PRIMARY KEY (id, "timestamp");
ALTER TABLE metering_event ADD CONSTRAINT metering_event_customer_fk
    FOREIGN KEY (customer_id) REFERENCES customers_customer (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE metering_event ADD CONSTRAINT metering_event_metric_fk
    FOREIGN KEY (metric_id) REFERENCES metering_billablemetric (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX event_window ON metering_event (customer_id, metric_id, "timestamp");
CREATE TABLE metering_event_default PARTITION OF metering_event DEFAULT;
INSERT INTO metering_event SELECT * FROM metering_event_plain;
SELECT setval(pg_get_serial_sequence('metering_event', 'id'), COALESCE((SELECT max(id) FROM metering_event), 0) + 1, false);
DROP TABLE metering_event_plain;
"""

BACKWARD = """
ALTER TABLE metering_event RENAME TO metering_event_partitioned;
ALTER INDEX event_window RENAME TO event_window_partitioned;
CREATE TABLE metering_event (LIKE metering_event_partitioned INCLUDING DEFAULTS INCLUDING IDENTITY);
ALTER TABLE metering_event ADD PRIMARY KEY (id);
ALTER TABLE metering_event ADD CONSTRAINT metering_event_customer_id_6954f977_fk_customers_customer_id
    FOREIGN KEY (customer_id) REFERENCES customers_customer (id) DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE metering_event ADD CONSTRAINT metering_event_metric_id_a3a28e85_fk_metering_billablemetric_id
    FOREIGN KEY (metric_id) REFERENCES metering_billablemetric (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX event_window ON metering_event (customer_id, metric_id, "timestamp");
INSERT INTO metering_event SELECT * FROM metering_event_partitioned;
SELECT setval(pg_get_serial_sequence('metering_event', 'id'), COALESCE((SELECT max(id) FROM metering_event), 0) + 1, false);
DROP TABLE metering_event_partitioned;
"""


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FORWARD)
    from django.utils import timezone

    from metering.partitions import ensure_event_partitions

    ensure_event_partitions(around=timezone.now().date())  # UTC months, as the partitions


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):

    dependencies = [
        ('metering', '0003_event_keys'),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
