"""The catalog: promotions, and versioned plans with their charges and tiers."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from billing.engine.money import format_decimal, price_field_kwargs
from billing.engine.pricing import TierSpec
from billing.engine.vocabulary import AppliesTo, ChargeModel, CommitmentCovers, Interval
from billing.models.history import history_user
from config.db import FieldCheckConstraint
from customers.validators import validate_currency
from metering.models import BillableMetric

NOT_NEGATIVE = "must not be negative"


class Promotion(models.Model):
    """A percentage off for a number of days from the start of a subscription (e.g. a trial)."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    percent_off = models.DecimalField(max_digits=5, decimal_places=2)
    duration_days = models.PositiveIntegerField()
    applies_to = models.CharField(max_length=16, choices=AppliesTo.choices, default=AppliesTo.BASE_FEE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    class Meta:
        ordering = ["code"]
        constraints = [
            FieldCheckConstraint(
                condition=Q(percent_off__gte=0, percent_off__lte=100),
                name="promotion_percent_0_100",
                field="percent_off",
                violation_error_message="must be a percentage from 0 to 100",
            ),
            FieldCheckConstraint(
                condition=Q(duration_days__gt=0),
                name="promotion_duration_positive",
                field="duration_days",
                violation_error_message="must be at least 1 day",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class PlanQuerySet(models.QuerySet["Plan"]):
    def current(self) -> PlanQuerySet:
        return self.filter(is_current=True)

    def catalog(self) -> PlanQuerySet:
        """Catalog plan versions, without the subscriptions' own prices (override plans)."""
        return self.filter(parent__isnull=True)

    def overrides(self) -> PlanQuerySet:
        """Override plans: one subscription's own prices (Lago's plan_overrides)."""
        return self.filter(parent__isnull=False)


class Plan(models.Model):
    """A price plan. Plans are versioned: repricing a plan that has subscriptions adds a version.

    Subscriptions point at the exact version they were sold; `code` names the plan family and
    resolves to its current version.
    """

    code = models.SlugField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True, help_text="New subscriptions get this version.")
    name = models.CharField(max_length=255)
    invoice_display_name = models.CharField(
        max_length=255, blank=True, help_text="Shown on invoices instead of the name (Lago's invoice_display_name)."
    )
    description = models.TextField(blank=True)
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    base_fee = models.DecimalField(**price_field_kwargs(), default=0)
    pay_in_advance = models.BooleanField(
        default=False, help_text="Bill the base fee at the start of its period instead of the end."
    )
    promotion = models.ForeignKey(
        Promotion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="plans",
        help_text="Attached to every new subscription (e.g. the free trial).",
    )
    # Default commitment terms, copied onto each new subscription's commitment.
    commitment_amount = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    commitment_months = models.PositiveSmallIntegerField(null=True, blank=True)
    commitment_covers = models.CharField(
        max_length=16, choices=CommitmentCovers.choices, default=CommitmentCovers.BASE_FEE
    )
    commitment_auto_renew = models.BooleanField(default=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="overrides",
        help_text="A subscription's own prices (Lago's plan_overrides): the catalog plan it overrides.",
    )
    metadata = models.JSONField(
        default=dict,
        blank=True,
        help_text="Lago's plan metadata: string keys to string (or null) values. Not pricing: "
        "a change never makes a new version, and a new version keeps it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["code", "version"], condition=Q(parent__isnull=True), name="plan_code_version_unique"
            ),
            models.CheckConstraint(
                condition=Q(parent__isnull=True) | Q(is_current=False), name="plan_override_never_current"
            ),
            models.UniqueConstraint(fields=["code"], condition=Q(is_current=True), name="plan_one_current_version"),
            FieldCheckConstraint(
                condition=Q(base_fee__gte=0),
                name="plan_base_fee_not_negative",
                field="base_fee",
                violation_error_message=NOT_NEGATIVE,
            ),
            models.CheckConstraint(
                condition=Q(commitment_amount__isnull=True, commitment_months__isnull=True)
                | Q(commitment_amount__gt=0, commitment_months__gt=0),
                name="plan_commitment_complete",
            ),
        ]

    def __str__(self) -> str:
        suffix = "" if self.version == 1 else f" v{self.version}"
        if self.parent_id is not None:
            suffix += f", own prices #{self.pk}"
        return f"{self.name} ({self.code}{suffix})"

    @property
    def is_override(self) -> bool:
        """One subscription's own prices (a copy of the catalog plan `parent`), not a catalog plan."""
        return self.parent_id is not None

    @property
    def has_commitment(self) -> bool:
        return self.commitment_amount is not None

    def clean(self) -> None:
        if (self.commitment_amount is None) != (self.commitment_months is None):
            raise ValidationError("A commitment needs both an amount and a number of months.")


class Charge(models.Model):
    """The price of one billable metric within a plan."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="charges")
    metric = models.ForeignKey(BillableMetric, on_delete=models.PROTECT, related_name="charges")
    position = models.PositiveSmallIntegerField(default=0)
    model = models.CharField(max_length=16, choices=ChargeModel.choices, default=ChargeModel.STANDARD)
    invoice_display_name = models.CharField(
        max_length=255, blank=True, help_text="Shown on invoices instead of the metric's name (Lago's)."
    )
    unit_amount = models.DecimalField(**price_field_kwargs(), default=0, help_text="Standard model: price per unit.")
    package_size = models.PositiveIntegerField(null=True, blank=True)
    package_amount = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    free_units = models.DecimalField(**price_field_kwargs(), default=0)
    usage_limit = models.DecimalField(
        **price_field_kwargs(),
        null=True,
        blank=True,
        help_text="Usage above this is not billed but flagged (plan limit).",
    )
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    class Meta:
        ordering = ["plan", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "metric"], name="charge_one_per_metric"),
            FieldCheckConstraint(
                condition=Q(unit_amount__gte=0),
                name="charge_unit_amount_not_negative",
                field="unit_amount",
                violation_error_message=NOT_NEGATIVE,
            ),
            FieldCheckConstraint(
                condition=Q(free_units__gte=0),
                name="charge_free_units_not_negative",
                field="free_units",
                violation_error_message=NOT_NEGATIVE,
            ),
            FieldCheckConstraint(
                condition=Q(usage_limit__isnull=True) | Q(usage_limit__gte=0),
                name="charge_usage_limit_not_negative",
                field="usage_limit",
                violation_error_message=NOT_NEGATIVE,
            ),
            models.CheckConstraint(
                condition=~Q(model="package") | Q(package_size__gt=0, package_amount__gte=0),
                name="charge_package_size_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric.code} ({self.get_model_display()})"

    def clean(self) -> None:
        if self.model == ChargeModel.PACKAGE and (not self.package_size or self.package_amount is None):
            raise ValidationError("A package charge needs a package size above 0 and a package amount.")


class Tier(models.Model):
    """One tier of a graduated or volume charge; `up_to` is inclusive, empty on the last tier."""

    charge = models.ForeignKey(Charge, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField(default=0)
    up_to = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    unit_amount = models.DecimalField(**price_field_kwargs(), default=0)
    flat_amount = models.DecimalField(**price_field_kwargs(), default=0)
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    class Meta:
        ordering = ["charge", "position", "id"]
        constraints = [
            FieldCheckConstraint(
                condition=Q(up_to__isnull=True) | Q(up_to__gt=0),
                name="tier_up_to_positive",
                field="up_to",
                violation_error_message="must be above 0 (empty on the last tier)",
            ),
            FieldCheckConstraint(
                condition=Q(unit_amount__gte=0),
                name="tier_unit_amount_not_negative",
                field="unit_amount",
                violation_error_message=NOT_NEGATIVE,
            ),
            FieldCheckConstraint(
                condition=Q(flat_amount__gte=0),
                name="tier_flat_amount_not_negative",
                field="flat_amount",
                violation_error_message=NOT_NEGATIVE,
            ),
        ]

    def __str__(self) -> str:
        return f"up to {format_decimal(self.up_to)}" if self.up_to is not None else "and above"

    def spec(self) -> TierSpec:
        return TierSpec(up_to=self.up_to, unit_amount=self.unit_amount, flat_amount=self.flat_amount)
