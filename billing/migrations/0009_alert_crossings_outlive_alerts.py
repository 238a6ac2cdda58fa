"""A triggered alert keeps its crossed thresholds when its alert is deleted.

0008 made TriggeredAlert.alert SET_NULL (the history stays) but AlertCrossing.alert CASCADE, so
deleting an alert (DELETE /api/v1/subscriptions/<id>/alerts/<code>) emptied the
`crossed_thresholds` of everything it had triggered. The crossing's alert becomes nullable and
SET_NULL like the triggered alert's; the unique (alert, period_start, value) constraint still
holds for every live alert (NULLs are distinct).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_webhooks_alerts_emails"),
    ]

    operations = [
        migrations.AlterField(
            model_name="alertcrossing",
            name="alert",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="crossings",
                to="billing.alert",
            ),
        ),
    ]
