"""One-off (and wallet credit) invoices are dated, not periods.

A one-off invoice bills add-ons at one moment: like Lago's one-off fees, its period starts and
ends when it is created. The period check allowed only start < end; it now also allows
start = end for an invoice that belongs to no subscription. A subscription's invoice still
covers a non-empty period.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0010_coupons_taxes_addons_wallets"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="invoice",
            name="invoice_period_ordered",
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=models.Q(("period_start__lt", models.F("period_end")))
                | models.Q(("period_start", models.F("period_end")), ("subscription__isnull", True)),
                name="invoice_period_ordered",
            ),
        ),
    ]
