from django.db import migrations, models

HELP = (
    "Lago's plan metadata: string keys to string (or null) values. Not pricing: "
    "a change never makes a new version, and a new version keeps it."
)


class Migration(migrations.Migration):
    """Plan metadata (Lago's plans metadata routes and the `metadata` of plans.create/update)."""

    dependencies = [("billing", "0015_subscription_schedule")]

    operations = [
        migrations.AddField(
            model_name="historicalplan",
            name="metadata",
            field=models.JSONField(blank=True, default=dict, help_text=HELP),
        ),
        migrations.AddField(
            model_name="plan",
            name="metadata",
            field=models.JSONField(blank=True, default=dict, help_text=HELP),
        ),
    ]
