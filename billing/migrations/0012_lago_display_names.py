"""Lago's display names (issue 15, plan_overrides and PUT /subscriptions).

Why: Lago's subscription input has its own `name` (POST and PUT /api/v1/subscriptions), and its
plan_overrides carry `invoice_display_name` for the plan and for each charge: the names invoices
show instead of the plan's and the metric's. A request field we do not support is refused, not
dropped (DESIGN §6), so these are stored. Empty means "the plan's (metric's) name": existing rows
need no data migration.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0011_one_off_invoices_are_dated'),
    ]

    operations = [
        migrations.AddField(
            model_name='charge',
            name='invoice_display_name',
            field=models.CharField(blank=True, help_text="Shown on invoices instead of the metric's name (Lago's).", max_length=255),
        ),
        migrations.AddField(
            model_name='historicalcharge',
            name='invoice_display_name',
            field=models.CharField(blank=True, help_text="Shown on invoices instead of the metric's name (Lago's).", max_length=255),
        ),
        migrations.AddField(
            model_name='historicalplan',
            name='invoice_display_name',
            field=models.CharField(blank=True, help_text="Shown on invoices instead of the name (Lago's invoice_display_name).", max_length=255),
        ),
        migrations.AddField(
            model_name='plan',
            name='invoice_display_name',
            field=models.CharField(blank=True, help_text="Shown on invoices instead of the name (Lago's invoice_display_name).", max_length=255),
        ),
        migrations.AddField(
            model_name='subscription',
            name='name',
            field=models.CharField(blank=True, help_text="Its own name (Lago's); empty: the plan's.", max_length=255),
        ),
    ]
