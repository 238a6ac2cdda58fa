"""Usage alerts on subscriptions: create, change, delete, and check them (DESIGN §6 "Usage alerts").

Writing (`alert_create`, `alerts_create`, `alert_update`, `alert_delete`, `alerts_delete_all`)
refuses an alert with an AlertError naming each field, as the API returns it ("code",
"thresholds.1.value"; in a batch "alerts.0.code"):
- `alert_type` is one of AlertType; `billable_metric_code` is required for, and only for,
  `billable_metric_current_usage_units`, and names a metric the subscription's plan charges;
- `code` is required and unique per subscription (a database constraint too);
- 1 to 20 thresholds (Lago's limit); values are decimal numbers > 0 with at most 6 decimals;
  at most one is recurring; one-time values are distinct.

Checking (`check_alerts`), as Lago's UsageMonitoring::ProcessAlertService, for each alert of an
active subscription:
1. The value now: the open period's usage amount in cents (usage charges before tax, the
   `amount_cents` of GET /customers/<id>/current_usage) or the units of the alert's metric
   (the largest, if several charges measure it, as Lago). Current usage is computed once per
   subscription, whatever its number of alerts. A metric the plan no longer charges gives no
   value: the alert is skipped and left as it was (as Lago).
2. The previous value is the one stored by the last check, or 0 when that check measured
   another period: usage restarts each period, so each threshold can fire again in the next.
3. Crossed, upward only: each one-time threshold in (previous, current], and after the highest
   one-time value H (0 without one), every H + k × the recurring value in (previous, current].
4. Under the alert's row lock, minus what already fired in this period (an AlertCrossing per
   alert, period and value, unique in the database: two checks at once cannot both record it),
   one TriggeredAlert lists every threshold crossed, and `alert.triggered` is announced in the
   same transaction (the webhook outbox). The alert keeps the value, its period and the time.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Literal

from django.db import IntegrityError, transaction
from django.db.models import Prefetch

from billing.engine.money import ZERO, to_cents
from billing.engine.vocabulary import AlertType, SubscriptionStatus, WebhookType
from billing.models import Alert, AlertCrossing, AlertThreshold, Subscription, TriggeredAlert
from billing.selectors.plans import plans_with_charges
from billing.selectors.usage import PeriodUsage, current_usage
from billing.services.errors import FieldErrors
from billing.services.webhooks import announce
from metering.models import BillableMetric

logger = logging.getLogger(__name__)

# Error messages are constants so tests can match them.
NO_ALERTS = "at least one alert is required"
BAD_ALERT_TYPE = "must be one of: {choices}"
REQUIRED = "is required"
TOO_LONG = "must be at most {n} characters"
CODE_SLASH = "must not contain '/' (the code is part of the alert's URL)"
CODE_TAKEN = "an alert with code {code!r} already exists on this subscription"
METRIC_REQUIRED = f"is required for {AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS} alerts"
METRIC_NOT_ALLOWED = f"is only for {AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS} alerts"
UNKNOWN_METRIC = "unknown billable metric {code!r}"
METRIC_NOT_CHARGED = "plan {plan!r} has no charge on metric {code!r}"
NO_THRESHOLDS = "at least one threshold is required"
TOO_MANY_THRESHOLDS = "at most {n} thresholds"
BAD_VALUE = 'must be a decimal number greater than 0, e.g. "1000" or "12.5"'
VALUE_TOO_PRECISE = "must have at most {n} decimal places"
VALUE_TOO_LARGE = "must be less than 10^{n}"
SECOND_RECURRING = "only one threshold may be recurring"
VALUE_TWICE = "value {value} appears twice among the one-time thresholds"
TYPE_FIXED = "cannot be changed: delete the alert and create another"

MAX_THRESHOLDS = 20  # Lago's AlertThreshold::SOFT_LIMIT
VALUE_DECIMALS = 6  # billing.models.alerts.value_field
VALUE_INTEGER_DIGITS = 15  # 10^15 cents is $10 trillion; and within what SQLite stores exactly enough
CODE_LENGTH = 255
# A recurring threshold with a tiny step and a big jump in usage could cross it millions of times
# in one check: the highest ones are recorded (the lower ones are below the value stored, so
# they never fire later either).
MAX_RECURRING_CROSSINGS = 100
SUBSCRIPTIONS_PER_BATCH = 200  # loaded (with their plans) at a time by check_alerts
_DECIMAL_TEXT = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?|\.[0-9]{1,30}")  # 12, 12.5, .5: no sign or exponent


class AlertError(FieldErrors):
    """The alert is refused; `errors` are messages by field, as the API returns them."""


@dataclass(frozen=True)
class ThresholdInput:
    """A threshold as asked for: `value` a decimal string (an int or Decimal is read too)."""

    value: object
    code: str | None = None
    recurring: bool | None = None


@dataclass(frozen=True)
class AlertInput:
    alert_type: str
    code: str
    thresholds: Sequence[ThresholdInput]
    name: str | None = None
    billable_metric_code: str | None = None


@dataclass(frozen=True)
class Level:
    """A threshold checked: a value > 0, one-time or recurring."""

    value: Decimal
    recurring: bool = False
    code: str = ""


# --- crossing thresholds (pure) -------------------------------------------------------------


def _floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def crossed_levels(*, previous: Decimal, current: Decimal, levels: Sequence[Level]) -> list[Level]:
    """The thresholds crossed upward from `previous` to `current`: each one-time value in
    (previous, current], then each H + k × the recurring value (k ≥ 1, H the highest one-time
    value, else 0) in (previous, current], at most MAX_RECURRING_CROSSINGS of those (the highest)."""
    if current <= previous:
        return []
    one_time = sorted((level for level in levels if not level.recurring), key=lambda level: level.value)
    crossed = [level for level in one_time if previous < level.value <= current]
    recurring = next((level for level in levels if level.recurring), None)
    if recurring is not None:
        base = one_time[-1].value if one_time else ZERO
        step = recurring.value
        first = max(1, _floor((previous - base) / step) + 1)  # the first multiple above previous
        last = _floor((current - base) / step)  # the last one at or below current
        first = max(first, last - MAX_RECURRING_CROSSINGS + 1)
        crossed += [Level(base + k * step, recurring=True, code=recurring.code) for k in range(first, last + 1)]
    return crossed


# --- checking an alert's fields ----------------------------------------------------------------


def parse_value(raw: object) -> Decimal | str:
    """A threshold value as a Decimal, or the message refusing it."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        return BAD_VALUE
    if isinstance(raw, str):
        text = raw.strip()
        if not _DECIMAL_TEXT.fullmatch(text):
            return BAD_VALUE
        value = Decimal(text)
    else:
        value = Decimal(raw)
    if not value.is_finite() or value <= 0:
        return BAD_VALUE
    if value >= Decimal(10) ** VALUE_INTEGER_DIGITS:
        return VALUE_TOO_LARGE.format(n=VALUE_INTEGER_DIGITS)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > VALUE_DECIMALS:
        return VALUE_TOO_PRECISE.format(n=VALUE_DECIMALS)
    return value


def threshold_errors(thresholds: Sequence[ThresholdInput]) -> tuple[dict[str, list[str]], list[Level]]:
    """Check the thresholds (errors keyed "thresholds" or "thresholds.<i>.<field>")."""
    errors: dict[str, list[str]] = {}
    if not thresholds:
        return {"thresholds": [NO_THRESHOLDS]}, []
    if len(thresholds) > MAX_THRESHOLDS:
        return {"thresholds": [TOO_MANY_THRESHOLDS.format(n=MAX_THRESHOLDS)]}, []
    levels: list[Level] = []
    seen: set[Decimal] = set()
    has_recurring = False
    for i, threshold in enumerate(thresholds):
        code = threshold.code or ""
        if len(code) > CODE_LENGTH:
            errors[f"thresholds.{i}.code"] = [TOO_LONG.format(n=CODE_LENGTH)]
        recurring = bool(threshold.recurring)
        if recurring:
            if has_recurring:
                errors[f"thresholds.{i}.recurring"] = [SECOND_RECURRING]
            has_recurring = True
        value = parse_value(threshold.value)
        if isinstance(value, str):
            errors[f"thresholds.{i}.value"] = [value]
            continue
        if not recurring:
            if value in seen:
                errors[f"thresholds.{i}.value"] = [VALUE_TWICE.format(value=threshold.value)]
            seen.add(value)
        levels.append(Level(value, recurring=recurring, code=code))
    return errors, levels


def _check_code(code: str, taken: set[str]) -> list[str]:
    if not code:
        return [REQUIRED]
    if len(code) > CODE_LENGTH:
        return [TOO_LONG.format(n=CODE_LENGTH)]
    if "/" in code:
        return [CODE_SLASH]
    if code in taken:
        return [CODE_TAKEN.format(code=code)]
    return []


def charged_metrics(subscription: Subscription) -> dict[str, BillableMetric]:
    """The metrics the subscription's plan charges, by code."""
    return {charge.metric.code: charge.metric for charge in subscription.plan.charges.select_related("metric")}


def metric_errors(
    *, alert_type: str, metric_code: str | None, subscription: Subscription, charged: dict[str, BillableMetric]
) -> tuple[list[str], BillableMetric | None]:
    """Check `billable_metric_code` for an alert of this type on this subscription."""
    if alert_type != AlertType.BILLABLE_METRIC_CURRENT_USAGE_UNITS:
        return ([METRIC_NOT_ALLOWED] if metric_code else []), None
    if not metric_code:
        return [METRIC_REQUIRED], None
    metric = charged.get(metric_code)
    if metric is not None:
        return [], metric
    if BillableMetric.objects.filter(code=metric_code).exists():
        return [METRIC_NOT_CHARGED.format(plan=subscription.plan.code, code=metric_code)], None
    return [UNKNOWN_METRIC.format(code=metric_code)], None


def alert_field_errors(
    *,
    subscription: Subscription,
    alert_type: str,
    code: str,
    name: str | None,
    metric_code: str | None,
    taken: set[str],
    charged: dict[str, BillableMetric] | None = None,
) -> tuple[dict[str, list[str]], BillableMetric | None]:
    """Check an alert's own fields (not its thresholds); `taken`: the codes already in use."""
    errors: dict[str, list[str]] = {}
    if alert_type not in AlertType.values:
        errors["alert_type"] = [BAD_ALERT_TYPE.format(choices=", ".join(AlertType.values))]
    code_errors = _check_code(code, taken)
    if code_errors:
        errors["code"] = code_errors
    if name and len(name) > CODE_LENGTH:
        errors["name"] = [TOO_LONG.format(n=CODE_LENGTH)]
    metric = None
    if alert_type in AlertType.values:
        found, metric = metric_errors(
            alert_type=alert_type,
            metric_code=metric_code,
            subscription=subscription,
            charged=charged if charged is not None else charged_metrics(subscription),
        )
        if found:
            errors["billable_metric_code"] = found
    return errors, metric


# --- writing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Checked:
    data: AlertInput
    metric: BillableMetric | None
    levels: list[Level]


def _write(subscription: Subscription, checked: _Checked, field_prefix: str) -> Alert:
    data = checked.data
    try:
        with transaction.atomic():  # a savepoint: a code taken meanwhile is refused, not a 500
            alert = Alert.objects.create(
                subscription=subscription,
                alert_type=data.alert_type,
                code=data.code,
                name=data.name or "",
                metric=checked.metric,
            )
    except IntegrityError:
        raise AlertError({f"{field_prefix}code": [CODE_TAKEN.format(code=data.code)]}) from None
    _write_thresholds(alert, checked.levels)
    return alert


def _write_thresholds(alert: Alert, levels: list[Level]) -> None:
    AlertThreshold.objects.bulk_create(
        [AlertThreshold(alert=alert, code=level.code, value=level.value, recurring=level.recurring) for level in levels]
    )


@transaction.atomic
def alerts_create(*, subscription: Subscription, alerts: Sequence[AlertInput]) -> list[Alert]:
    """Create several alerts on the subscription (Lago's POST {"alerts": [...]}), all or none;
    errors are keyed "alerts.<i>.<field>"."""
    return _create(subscription, alerts, batch=True)


@transaction.atomic
def alert_create(*, subscription: Subscription, alert: AlertInput) -> Alert:
    """Create one alert on the subscription; errors are keyed by field."""
    return _create(subscription, [alert], batch=False)[0]


def _create(subscription: Subscription, alerts: Sequence[AlertInput], *, batch: bool) -> list[Alert]:
    if not alerts:
        raise AlertError({"alerts": [NO_ALERTS]})
    subscription = Subscription.objects.select_related("plan").get(pk=subscription.pk)
    charged = charged_metrics(subscription)
    taken = set(Alert.objects.filter(subscription=subscription).values_list("code", flat=True))
    errors: dict[str, list[str]] = {}
    checked: list[_Checked] = []
    for i, data in enumerate(alerts):
        prefix = f"alerts.{i}." if batch else ""
        found, metric = alert_field_errors(
            subscription=subscription,
            alert_type=data.alert_type,
            code=data.code,
            name=data.name,
            metric_code=data.billable_metric_code,
            taken=taken,
            charged=charged,
        )
        more, levels = threshold_errors(data.thresholds)
        errors.update({prefix + name: messages for name, messages in {**found, **more}.items()})
        taken.add(data.code)  # the same code twice in one batch: the second is refused
        checked.append(_Checked(data, metric, levels))
    if errors:
        raise AlertError(errors)
    return [_write(subscription, c, f"alerts.{i}." if batch else "") for i, c in enumerate(checked)]


@transaction.atomic
def alert_update(
    *,
    alert: Alert,
    code: str | None = None,
    name: str | None = None,
    billable_metric_code: str | None = None,
    thresholds: Sequence[ThresholdInput] | None = None,
) -> Alert:
    """Change what is given (None: unchanged; `name` "" clears it). Thresholds given replace
    them all (as Lago). The type of an alert never changes."""
    locked = Alert.objects.select_for_update(of=("self",)).select_related("subscription__plan").get(pk=alert.pk)
    subscription = locked.subscription
    errors: dict[str, list[str]] = {}
    if code is not None and code != locked.code:
        taken = set(
            Alert.objects.filter(subscription=subscription).exclude(pk=locked.pk).values_list("code", flat=True)
        )
        code_errors = _check_code(code, taken)
        if code_errors:
            errors["code"] = code_errors
    if name and len(name) > CODE_LENGTH:
        errors["name"] = [TOO_LONG.format(n=CODE_LENGTH)]
    metric = None
    if billable_metric_code is not None:
        found, metric = metric_errors(
            alert_type=locked.alert_type,
            metric_code=billable_metric_code,
            subscription=subscription,
            charged=charged_metrics(subscription),
        )
        if found:
            errors["billable_metric_code"] = found
    levels: list[Level] = []
    if thresholds is not None:
        found_thresholds, levels = threshold_errors(thresholds)
        errors.update(found_thresholds)
    if errors:
        raise AlertError(errors)
    if code is not None:
        locked.code = code
    if name is not None:
        locked.name = name
    if metric is not None:
        locked.metric = metric
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise AlertError({"code": [CODE_TAKEN.format(code=code)]}) from None
    if thresholds is not None:
        locked.thresholds.all().delete()
        _write_thresholds(locked, levels)
    return locked


@transaction.atomic
def alert_delete(*, alert: Alert) -> None:
    """Delete the alert and its thresholds; what it triggered stays (its alert becomes empty)."""
    locked = Alert.objects.select_for_update().filter(pk=alert.pk).first()
    if locked is not None:
        locked.delete()


@transaction.atomic
def alerts_delete_all(*, subscription: Subscription) -> int:
    """Delete every alert of the subscription (Lago's DELETE …/alerts); returns how many."""
    ids = list(Alert.objects.select_for_update().filter(subscription=subscription).values_list("pk", flat=True))
    Alert.objects.filter(pk__in=ids).delete()
    return len(ids)


# --- checking ----------------------------------------------------------------------------------------


@dataclass
class AlertCheckReport:
    """What a check did: ids of the triggered alerts written, counts of the rest."""

    subscriptions: int = 0
    checked: int = 0
    triggered: list[int] = field(default_factory=list)
    skipped: int = 0  # alerts on a metric the plan does not charge
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.subscriptions} subscriptions, {self.checked} alerts checked, {len(self.triggered)} triggered, "
            f"{self.skipped} skipped, {len(self.errors)} errors"
        )


def alert_value(alert: Alert, usage: PeriodUsage) -> Decimal | None:
    """The alert's value in this usage: cents, or its metric's units (None: not charged)."""
    if alert.alert_type == AlertType.CURRENT_USAGE_AMOUNT:
        return Decimal(to_cents(usage.usage_amount, usage.currency))
    metric_of = {charge.pk: charge.metric_id for charge in usage.subscription.plan.charges.all()}
    units = [c.measured.quantity for c in usage.charges if metric_of.get(c.charge_id) == alert.metric_id]
    if not units:
        return None
    # Stored with VALUE_DECIMALS: compare what will be stored, or a rounded-up previous value
    # could hide a threshold reached next time.
    return max(units).quantize(Decimal(1).scaleb(-VALUE_DECIMALS), rounding=ROUND_DOWN)


Outcome = Literal["gone", "skipped", "checked"]


def _check_alert(*, alert_id: int, usage: PeriodUsage, now: datetime) -> Outcome | TriggeredAlert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None:  # deleted since the check listed it
            return "gone"
        value = alert_value(alert, usage)
        if value is None:
            return "skipped"
        period_start = usage.period.start
        previous = alert.previous_value if alert.previous_period_start == period_start else ZERO
        levels = [Level(t.value, recurring=t.recurring, code=t.code) for t in alert.thresholds.all()]
        crossed = crossed_levels(previous=previous, current=value, levels=levels)
        triggered = _trigger(alert, usage, crossed, previous=previous, value=value, now=now) if crossed else None
        Alert.objects.filter(pk=alert.pk).update(
            previous_value=value, previous_period_start=period_start, last_processed_at=now
        )
    return triggered or "checked"


def _trigger(
    alert: Alert, usage: PeriodUsage, crossed: list[Level], *, previous: Decimal, value: Decimal, now: datetime
) -> TriggeredAlert | None:
    """Record the crossings not yet recorded in this period, and announce them."""
    period_start = usage.period.start
    fired = set(
        AlertCrossing.objects.filter(
            alert=alert, period_start=period_start, value__in=[level.value for level in crossed]
        ).values_list("value", flat=True)
    )
    fresh = [level for level in crossed if level.value not in fired]
    if not fresh:
        return None
    metric_codes = {charge.metric_id: charge.metric.code for charge in usage.subscription.plan.charges.all()}
    try:
        with transaction.atomic():  # the constraint is the last word if a check raced this one
            triggered = TriggeredAlert.objects.create(
                alert=alert,
                subscription=usage.subscription,
                alert_code=alert.code,
                alert_name=alert.name,
                alert_type=alert.alert_type,
                metric_code=metric_codes.get(alert.metric_id, "") if alert.metric_id else "",
                period_start=period_start,
                current_value=value,
                previous_value=previous,
                triggered_at=now,
            )
            AlertCrossing.objects.bulk_create(
                [
                    AlertCrossing(
                        triggered=triggered,
                        alert=alert,
                        period_start=period_start,
                        code=level.code,
                        value=level.value,
                        recurring=level.recurring,
                    )
                    for level in fresh
                ]
            )
    except IntegrityError:
        logger.info("alert %s: thresholds already recorded in this period by another check", alert.pk)
        return None
    announce(
        webhook_type=WebhookType.ALERT_TRIGGERED, object_type="triggered_alert", obj=triggered, object_id=triggered.pk
    )
    return triggered


def check_alerts(*, now: datetime) -> AlertCheckReport:
    """Check every alert of the active subscriptions against their usage at `now` (see the
    module docstring). Safe beside other runs of itself: each alert is checked under its row
    lock and each crossing is recorded once per period."""
    report = AlertCheckReport()
    by_subscription: dict[int, list[int]] = {}
    listed = Alert.objects.filter(subscription__status=SubscriptionStatus.ACTIVE).order_by("subscription_id", "id")
    for subscription_id, alert_id in listed.values_list("subscription_id", "id"):
        by_subscription.setdefault(subscription_id, []).append(alert_id)
    ids = list(by_subscription)
    for first in range(0, len(ids), SUBSCRIPTIONS_PER_BATCH):
        subscriptions = (
            Subscription.objects.filter(pk__in=ids[first : first + SUBSCRIPTIONS_PER_BATCH])
            .filter(status=SubscriptionStatus.ACTIVE)
            .select_related("customer", "promotion")
            .prefetch_related(Prefetch("plan", queryset=plans_with_charges()))
            .order_by("pk")
        )
        for subscription in subscriptions:
            report.subscriptions += 1
            try:
                usage = current_usage(subscription=subscription, at=now, count_events=False, adjustments=False)
            except Exception as exc:  # report and continue: one bad subscription must not stop the run
                logger.exception("usage of subscription %s could not be measured", subscription.pk)
                report.errors.append(f"subscription {subscription.external_id}: {exc}")
                continue
            for alert_id in by_subscription[subscription.pk]:
                try:
                    outcome = _check_alert(alert_id=alert_id, usage=usage, now=now)
                except Exception as exc:
                    logger.exception("alert %s could not be checked", alert_id)
                    report.errors.append(f"alert {alert_id} of subscription {subscription.external_id}: {exc}")
                    continue
                if outcome == "skipped":
                    report.skipped += 1
                elif outcome != "gone":
                    report.checked += 1
                    if isinstance(outcome, TriggeredAlert):
                        report.triggered.append(outcome.pk)
    return report
