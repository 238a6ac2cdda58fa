"""Soft-deleted customers (Lago's DELETE /customers/<external_id>): `deleted_at`, and the
external_id unique among the customers not deleted only, so a deleted customer's id can be
used again while its invoices and events keep pointing at the old row."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_lago_fields"),
    ]

    operations = [
        migrations.AddField(
            model_name="customer",
            name="deleted_at",
            field=models.DateTimeField(blank=True, editable=False, help_text="When it was deleted.", null=True),
        ),
        # The partial constraint first, so external_id is never without one.
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(
                condition=models.Q(("deleted_at__isnull", True)),
                fields=("external_id",),
                name="customer_external_id_live_unique",
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="external_id",
            field=models.CharField(db_index=True, help_text="The operator's own id.", max_length=255),
        ),
    ]
