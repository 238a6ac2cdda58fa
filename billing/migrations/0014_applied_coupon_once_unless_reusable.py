"""A coupon that is not reusable is applied to a customer once, ever: a database constraint.

Why: the rule was kept only by a check under the customer's lock; every "only once" has a
constraint. The applied coupon keeps the coupon's `reusable` as it was when applied (a partial
unique index on it); existing rows copy their coupon's, before the constraint is added.
"""

from django.db import migrations, models


def copy_reusable(apps, schema_editor):
    AppliedCoupon = apps.get_model("billing", "AppliedCoupon")
    AppliedCoupon.objects.filter(coupon__reusable=False).update(reusable=False)


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0013_catalog_constraints_name_their_field'),
        ('customers', '0002_lago_fields'),
    ]

    operations = [
        migrations.AddField(
            model_name='appliedcoupon',
            name='reusable',
            field=models.BooleanField(default=True, help_text="The coupon's, when applied: if not, a database constraint keeps it once per customer."),
        ),
        migrations.RunPython(copy_reusable, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='appliedcoupon',
            constraint=models.UniqueConstraint(condition=models.Q(('reusable', False)), fields=('customer', 'coupon'), name='applied_coupon_once_unless_reusable'),
        ),
    ]
