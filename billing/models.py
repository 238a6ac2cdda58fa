"""Billing models. The catalog (promotions, plans, charges, tiers) and subscriptions."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from billing.money import amount_field_kwargs, format_decimal, price_field_kwargs
from billing.pricing import TierSpec, tier_errors
from customers.models import Customer
from customers.validators import validate_currency
from metering.models import BillableMetric


def history_user(instance: object = None, request: object = None, **kwargs: object) -> object | None:
    """Who made a change, for django-simple-history: a staff user, never an API client."""
    from django.contrib.auth.models import AbstractBaseUser

    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) else None


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class AppliesTo(models.TextChoices):
    BASE_FEE = "base_fee", "Base fee only (usage billed during the promotion)"
    PLAN = "plan", "Whole plan (base fee and usage)"


class ChargeModel(models.TextChoices):
    STANDARD = "standard", "Standard (per unit)"
    GRADUATED = "graduated", "Graduated tiers"
    VOLUME = "volume", "Volume tiers"
    PACKAGE = "package", "Package"


class CommitmentCovers(models.TextChoices):
    BASE_FEE = "base_fee", "Base fee"
    ALL = "all", "Base fee and usage"


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
            models.CheckConstraint(
                condition=Q(percent_off__gte=0, percent_off__lte=100), name="promotion_percent_0_100"
            ),
            models.CheckConstraint(condition=Q(duration_days__gt=0), name="promotion_duration_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class PlanQuerySet(models.QuerySet["Plan"]):
    def current(self) -> PlanQuerySet:
        return self.filter(is_current=True)


class Plan(models.Model):
    """A price plan. Plans are versioned: repricing a plan that has subscriptions adds a version.

    Subscriptions point at the exact version they were sold; `code` names the plan family and
    resolves to its current version.
    """

    code = models.SlugField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True, help_text="New subscriptions get this version.")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    currency = models.CharField(max_length=3, default="USD", validators=[validate_currency])
    base_fee = models.DecimalField(**price_field_kwargs(), default=0)
    pay_in_advance = models.BooleanField(
        default=False, help_text="Bill the base fee at the start of its period instead of the end."
    )
    promotion = models.ForeignKey(
        Promotion, on_delete=models.PROTECT, null=True, blank=True, related_name="plans",
        help_text="Attached to every new subscription (e.g. the free trial).",
    )
    # Default commitment terms, copied onto each new subscription's commitment.
    commitment_amount = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    commitment_months = models.PositiveSmallIntegerField(null=True, blank=True)
    commitment_covers = models.CharField(
        max_length=16, choices=CommitmentCovers.choices, default=CommitmentCovers.BASE_FEE
    )
    commitment_auto_renew = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="plan_code_version_unique"),
            models.UniqueConstraint(
                fields=["code"], condition=Q(is_current=True), name="plan_one_current_version"
            ),
            models.CheckConstraint(condition=Q(base_fee__gte=0), name="plan_base_fee_not_negative"),
            models.CheckConstraint(
                condition=Q(commitment_amount__isnull=True, commitment_months__isnull=True)
                | Q(commitment_amount__gt=0, commitment_months__gt=0),
                name="plan_commitment_complete",
            ),
        ]

    def __str__(self) -> str:
        suffix = "" if self.version == 1 else f" v{self.version}"
        return f"{self.name} ({self.code}{suffix})"

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
    unit_amount = models.DecimalField(
        **price_field_kwargs(), default=0, help_text="Standard model: price per unit."
    )
    package_size = models.PositiveIntegerField(null=True, blank=True)
    package_amount = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    free_units = models.DecimalField(**price_field_kwargs(), default=0)
    usage_limit = models.DecimalField(
        **price_field_kwargs(), null=True, blank=True,
        help_text="Usage above this is not billed but flagged (plan limit).",
    )
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    class Meta:
        ordering = ["plan", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "metric"], name="charge_one_per_metric"),
            models.CheckConstraint(condition=Q(unit_amount__gte=0), name="charge_unit_amount_not_negative"),
            models.CheckConstraint(condition=Q(free_units__gte=0), name="charge_free_units_not_negative"),
            models.CheckConstraint(
                condition=Q(usage_limit__isnull=True) | Q(usage_limit__gte=0),
                name="charge_usage_limit_not_negative",
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
            models.CheckConstraint(
                condition=Q(up_to__isnull=True) | Q(up_to__gt=0), name="tier_up_to_positive"
            ),
            models.CheckConstraint(condition=Q(unit_amount__gte=0), name="tier_unit_amount_not_negative"),
            models.CheckConstraint(condition=Q(flat_amount__gte=0), name="tier_flat_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"up to {format_decimal(self.up_to)}" if self.up_to is not None else "and above"

    def spec(self) -> TierSpec:
        return TierSpec(up_to=self.up_to, unit_amount=self.unit_amount, flat_amount=self.flat_amount)


def validate_charge_tiers(model: str, tiers: list[TierSpec]) -> None:
    """Raise ValidationError unless the tiers fit the charge model (used by admin and API)."""
    if model in {ChargeModel.GRADUATED, ChargeModel.VOLUME}:
        errors = tier_errors(tiers)
        if errors:
            raise ValidationError([f"tier {i + 1}: {message}" for i, _field, message in errors])


class BillingTime(models.TextChoices):
    CALENDAR = "calendar", "Calendar (periods start on the 1st)"
    ANNIVERSARY = "anniversary", "Anniversary (periods start on the subscription's day)"


class SubscriptionStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACTIVE = "active", "Active"
    TERMINATED = "terminated", "Terminated"


class Subscription(models.Model):
    """A customer on a plan version from `subscription_at` until it is terminated."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    external_id = models.CharField(
        max_length=255, help_text="Unique among live subscriptions; a plan change keeps it (as in Lago)."
    )
    subscription_at = models.DateTimeField(help_text="Start of the subscription.")
    billing_time = models.CharField(
        max_length=16, choices=BillingTime.choices, default=BillingTime.CALENDAR
    )
    status = models.CharField(
        max_length=16, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    terminated_at = models.DateTimeField(null=True, blank=True)
    promotion = models.ForeignKey(
        Promotion, on_delete=models.PROTECT, null=True, blank=True, related_name="subscriptions",
        help_text="Copied from the plan at creation (or from the previous plan's subscription).",
    )
    promotion_start = models.DateTimeField(
        null=True, blank=True,
        help_text="Where the promotion window starts: subscription_at, or the first subscription's start "
        "after plan changes (a trial is given once).",
    )
    previous = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="next",
        help_text="The subscription this one replaced on a plan change.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-subscription_at", "id"]
        indexes = [
            models.Index(fields=["customer", "status"], name="subscription_customer_status"),
            models.Index(fields=["external_id"], name="subscription_external_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=~Q(status="terminated"), name="subscription_external_id_live_unique"
            ),
            models.CheckConstraint(
                condition=Q(terminated_at__isnull=True) | Q(terminated_at__gte=models.F("subscription_at")),
                name="subscription_terminates_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id


class InvoiceType(models.TextChoices):
    PERIOD = "period", "Period (usage and base fee in arrears)"
    ADVANCE = "advance", "Base fee in advance"
    COMMITMENT = "commitment", "Commitment prepayment"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


class Invoice(models.Model):
    """One invoice per subscription, type and period (database-unique).

    Built as a draft (recomputed while the grace period runs), finalized with a gap-free number
    and a snapshot of the customer's billing details, then paid or voided. A finalized invoice
    never changes (services refuse it; the admin shows it read-only).
    """

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="invoices")
    invoice_type = models.CharField(max_length=16, choices=InvoiceType.choices, default=InvoiceType.PERIOD)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    number = models.CharField(max_length=32, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(**amount_field_kwargs(), default=0)
    issued_on = models.DateField(null=True, blank=True, help_text="Finalization date.")
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    customer_snapshot = models.JSONField(default=dict, blank=True, help_text="Billing details at finalization.")
    seller_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "invoice_type", "period_start"], name="invoice_one_per_subscription_period"
            ),
            models.CheckConstraint(condition=Q(period_start__lt=models.F("period_end")), name="invoice_period_ordered"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False), name="invoice_numbered_once_finalized"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "period_start"], name="invoice_customer_period"),
            models.Index(fields=["status", "period_end"], name="invoice_status_period_end"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft {self.pk} ({self.period_start:%Y-%m-%d})"

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT


class LineKind(models.TextChoices):
    BASE_FEE = "base_fee", "Base fee"
    USAGE = "usage", "Usage"
    PROMOTION = "promotion", "Promotion"
    COMMITMENT = "commitment", "Commitment"
    COMMITMENT_DRAWDOWN = "commitment_drawdown", "Commitment drawdown"
    LATE_USAGE = "late_usage", "Late usage"


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField(default=0)
    kind = models.CharField(max_length=24, choices=LineKind.choices)
    description = models.CharField(max_length=255)
    metric = models.ForeignKey(BillableMetric, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    quantity = models.DecimalField(**price_field_kwargs(), default=0)
    unit_amount = models.DecimalField(**price_field_kwargs(), null=True, blank=True)
    amount = models.DecimalField(**amount_field_kwargs())
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField(help_text="What the line covers (a late_usage line: its old period).")
    period_end = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True, help_text="Tier breakdown and measured quantities.")

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.amount} {self.currency}"


class CommitmentStatus(models.TextChoices):
    PENDING = "pending", "Pending (term not started)"
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    CANCELED = "canceled", "Canceled"


class Commitment(models.Model):
    """A prepaid commitment of a subscription: invoiced in full at its start, drawn down by invoices.

    Its balance is the sum of its ledger entries; it is never stored apart from them.
    """

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="commitments")
    amount = models.DecimalField(**price_field_kwargs())
    currency = models.CharField(max_length=3)
    term_start = models.DateTimeField()
    term_end = models.DateTimeField()
    months = models.PositiveSmallIntegerField()
    covers = models.CharField(max_length=16, choices=CommitmentCovers.choices, default=CommitmentCovers.BASE_FEE)
    auto_renew = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=CommitmentStatus.choices, default=CommitmentStatus.PENDING)
    renewed_from = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="renewal"
    )
    invoice = models.OneToOneField(
        Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="commitment",
        help_text="The prepayment invoice.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)  # shown in the admin's History view

    class Meta:
        ordering = ["-term_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "term_start"], name="commitment_one_per_term"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="commitment_amount_positive"),
            models.CheckConstraint(condition=Q(months__gt=0), name="commitment_months_positive"),
            models.CheckConstraint(condition=Q(term_start__lt=models.F("term_end")), name="commitment_term_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} commitment {self.term_start:%Y-%m-%d} ({self.months} months)"


class LedgerKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    DRAWDOWN = "drawdown", "Drawdown"
    EXPIRY = "expiry", "Expiry"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """An append-only movement of a commitment's balance."""

    commitment = models.ForeignKey(Commitment, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    amount = models.DecimalField(**amount_field_kwargs(), help_text="Signed: + adds to the balance.")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries")
    reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(kind="drawdown"), name="ledger_one_drawdown_per_invoice"
            ),
            models.UniqueConstraint(
                fields=["commitment"], condition=Q(kind="purchase"), name="ledger_one_purchase_per_commitment"
            ),
            models.UniqueConstraint(
                fields=["commitment"], condition=Q(kind="expiry"), name="ledger_one_expiry_per_commitment"
            ),
            models.CheckConstraint(
                condition=~Q(kind="purchase") | Q(amount__gt=0), name="ledger_purchase_positive"
            ),
            models.CheckConstraint(
                condition=~Q(kind="drawdown") | (Q(amount__lt=0) & Q(invoice__isnull=False)),
                name="ledger_drawdown_negative_with_invoice",
            ),
            models.CheckConstraint(condition=~Q(kind="expiry") | Q(amount__lte=0), name="ledger_expiry_not_positive"),
            models.CheckConstraint(
                condition=~Q(kind="adjustment") | ~Q(reason=""), name="ledger_adjustment_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount}"
