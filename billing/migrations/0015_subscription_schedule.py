import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Subscriptions complete (issue 16): what Lago schedules on a subscription (its end, a
    downgrade at the end of its period, what its termination bills), and the canceled status."""

    dependencies = [("billing", "0014_applied_coupon_once_unless_reusable")]

    operations = [
        migrations.RemoveConstraint(model_name="subscription", name="subscription_external_id_live_unique"),
        migrations.AddField(
            model_name="subscription",
            name="canceled_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When it was canceled: ended while pending, before it started (Lago's).",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="downgrade_at",
            field=models.DateTimeField(
                blank=True, help_text="When the staged downgrade applies: the end of the current period.", null=True
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="ending_at",
            field=models.DateTimeField(
                blank=True,
                help_text="Lago's ending_at: the clock terminates the subscription at this moment.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="historical_usage_amount_cents",
            field=models.BigIntegerField(
                default=0,
                help_text="Lago's external_historical_usage_amount_cents (lifetime usage), as set through the API.",
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="next_ending_at",
            field=models.DateTimeField(blank=True, help_text="The downgraded subscription's ending_at.", null=True),
        ),
        migrations.AddField(
            model_name="subscription",
            name="next_name",
            field=models.CharField(blank=True, help_text="The name the downgraded subscription takes.", max_length=255),
        ),
        migrations.AddField(
            model_name="subscription",
            name="next_plan",
            field=models.ForeignKey(
                blank=True,
                help_text="A downgrade staged to the end of the current period (Lago's next_plan_code).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="billing.plan",
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="on_termination_credit_note",
            field=models.CharField(
                blank=True,
                help_text="Lago's on_termination_credit_note as set (only `skip`: no credit note is issued on "
                "termination).",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="subscription",
            name="on_termination_invoice",
            field=models.CharField(
                choices=[("generate", "Generate the closing invoice"), ("skip", "Skip the closing invoice")],
                default="generate",
                help_text="skip: its termination bills no closing invoice for the final part of its period (Lago's).",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="subscription",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("active", "Active"),
                    ("terminated", "Terminated"),
                    ("canceled", "Canceled (ended before it started)"),
                ],
                default="active",
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status__in", ["terminated", "canceled"]), _negated=True),
                fields=("external_id",),
                name="subscription_external_id_live_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("ending_at__isnull", True), ("ending_at__gt", models.F("subscription_at")), _connector="OR"
                ),
                name="subscription_ends_after_start",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("downgrade_at__isnull", True), ("next_plan__isnull", True)),
                    models.Q(("downgrade_at__isnull", False), ("next_plan__isnull", False)),
                    _connector="OR",
                ),
                name="subscription_downgrade_plan_and_date",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.CheckConstraint(
                condition=models.Q(("canceled_at__isnull", True), ("status", "canceled"), _connector="OR"),
                name="subscription_canceled_at_if_canceled",
            ),
        ),
    ]
