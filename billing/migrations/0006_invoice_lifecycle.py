"""Lago's invoice vocabulary (DESIGN §6): status draft/finalized/voided with payment tracked apart
in payment_status; our finer type renamed `kind`; payment terms; metadata; one *live* invoice per
subscription, kind and period (a voided period can be regenerated); each fee's discount share."""

from django.db import migrations, models
from django.db.models import Q


def forward(apps, schema_editor):
    Invoice = apps.get_model("billing", "Invoice")
    Invoice.objects.filter(status="paid").update(status="finalized", payment_status="succeeded")
    Invoice.objects.filter(status="void").update(status="voided")


def backward(apps, schema_editor):
    Invoice = apps.get_model("billing", "Invoice")
    Invoice.objects.filter(status="voided").update(status="void")
    Invoice.objects.filter(status="finalized", payment_status="succeeded").update(status="paid")


class Migration(migrations.Migration):
    dependencies = [("billing", "0005_history")]

    operations = [
        migrations.RemoveConstraint(model_name="invoice", name="invoice_one_per_subscription_period"),
        migrations.RenameField(model_name="invoice", old_name="invoice_type", new_name="kind"),
        migrations.AddField(
            model_name="invoice",
            name="payment_status",
            field=models.CharField(
                choices=[("pending", "Pending"), ("succeeded", "Succeeded"), ("failed", "Failed")],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.RunPython(forward, backward),
        migrations.AlterField(
            model_name="invoice",
            name="status",
            field=models.CharField(
                choices=[("draft", "Draft"), ("finalized", "Finalized"), ("voided", "Voided")],
                default="draft",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="invoice",
            name="kind",
            field=models.CharField(
                choices=[
                    ("period", "Period (usage and base fee in arrears)"),
                    ("advance", "Base fee in advance"),
                    ("commitment", "Commitment prepayment"),
                ],
                default="period",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="net_payment_term",
            field=models.PositiveIntegerField(default=0, help_text="Days to pay, as the customer's at finalization."),
        ),
        migrations.AddField(
            model_name="invoice",
            name="payment_due_date",
            field=models.DateField(blank=True, help_text="Issuing date + payment term.", null=True),
        ),
        migrations.AddField(
            model_name="invoice",
            name="metadata",
            field=models.JSONField(blank=True, default=list, help_text="Lago's key/value pairs."),
        ),
        migrations.AlterField(
            model_name="invoice",
            name="issued_on",
            field=models.DateField(blank=True, help_text="Finalization date (the customer's day).", null=True),
        ),
        migrations.AlterField(
            model_name="invoice",
            name="paid_at",
            field=models.DateTimeField(blank=True, help_text="When nothing was left due.", null=True),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.UniqueConstraint(
                condition=~Q(status="voided"),
                fields=("subscription", "kind", "period_start"),
                name="invoice_one_live_per_subscription_period",
            ),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=~Q(status="draft") | Q(payment_status="pending"), name="invoice_draft_payment_pending"
            ),
        ),
        migrations.AddField(
            model_name="invoiceline",
            name="discount_amount",
            field=models.DecimalField(
                decimal_places=4,
                default=0,
                help_text="A fee's share of the promotion, drawdown and coupon lines that reduce it (DESIGN §6).",
                max_digits=20,
            ),
        ),
    ]
