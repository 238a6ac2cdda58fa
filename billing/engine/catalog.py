"""The catalog file: parsing and validation (pure; no ORM).

A catalog is one JSON document with `billable_metrics`, `promotions` and `plans` (DESIGN §4),
and optionally `add_ons` (DESIGN §6: `code`, `name`, `amount` in the currency's major unit with
at most its minor unit's decimals, `currency`, and optionally `invoice_display_name` and
`description`); a file without `add_ons` loads as before. A plan may have `metadata` (Lago's:
an object of string keys to string or null values; not pricing, see PlanDef); a plan without it
keeps the metadata it has.
Parsing collects every problem, each named by its JSON path
(`plans[1].charges[0].tiers[2].up_to: must be greater than 25000`), so one run shows them all.
Amounts may be JSON strings or numbers; numbers are read as Decimal, never as float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.engine.money import currency_minor_digits, quantize_money
from billing.engine.pricing import TierSpec, tier_errors
from billing.engine.vocabulary import AppliesTo, ChargeModel, CommitmentCovers, Interval
from metering.vocabulary import Aggregation

_CODE = re.compile(r"^[-a-zA-Z0-9_]+$")


class CatalogError(Exception):
    """The catalog cannot be loaded; `errors` are "path: message" strings."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class MetricDef:
    code: str
    name: str
    aggregation: str
    field: str
    description: str = ""


@dataclass(frozen=True)
class PromotionDef:
    code: str
    name: str
    percent_off: Decimal
    duration_days: int
    applies_to: str


@dataclass(frozen=True)
class ChargeDef:
    metric: str
    model: str
    tiers: tuple[TierSpec, ...] = ()
    unit_amount: Decimal = Decimal(0)
    package_size: int | None = None
    package_amount: Decimal | None = None
    free_units: Decimal = Decimal(0)
    usage_limit: Decimal | None = None


@dataclass(frozen=True)
class CommitmentDef:
    amount: Decimal
    months: int
    covers: str = CommitmentCovers.BASE_FEE
    auto_renew: bool = True


@dataclass(frozen=True)
class PlanDef:
    code: str
    name: str
    interval: str
    currency: str
    base_fee: Decimal
    charges: tuple[ChargeDef, ...]
    description: str = ""
    pay_in_advance: bool = False
    promotion: str | None = None
    commitment: CommitmentDef | None = None
    # Lago's metadata: None when not stated (a load or an update keeps the stored metadata).
    metadata: Mapping[str, str | None] | None = field(default=None, hash=False)

    def pricing(self) -> tuple[Any, ...]:
        """Everything that changes what a subscriber pays (not the name or description)."""
        return (
            self.interval,
            self.currency,
            self.base_fee,
            self.pay_in_advance,
            self.promotion,
            self.commitment,
            self.charges,
        )


@dataclass(frozen=True)
class AddOnDef:
    code: str
    name: str
    amount: Decimal
    currency: str
    invoice_display_name: str = ""
    description: str = ""


@dataclass(frozen=True)
class Catalog:
    metrics: tuple[MetricDef, ...]
    promotions: tuple[PromotionDef, ...]
    plans: tuple[PlanDef, ...]
    add_ons: tuple[AddOnDef, ...] = ()


_MISSING = object()


class _Reader:
    """Reads typed values out of JSON objects, recording errors by path instead of raising."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def obj(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, "must be an object")
            return None
        for key in value:
            if key not in allowed:
                self.error(f"{path}.{key}", "unknown field")
        return value

    def items(self, data: dict[str, Any], key: str, path: str) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.error(f"{path}{key}", "must be a list")
            return []
        return value

    def text(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        max_length: int = 255,
        code: bool = False,
        default: str = "",
    ) -> str:
        value = data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(f"{path}.{key}", "is required")
            return default
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(f"{path}.{key}", "must be a non-empty string" if required else "must be a string")
            return default
        if len(value) > max_length:
            self.error(f"{path}.{key}", f"must be at most {max_length} characters")
        if code and not _CODE.match(value):
            self.error(f"{path}.{key}", "may contain only letters, digits, '-' and '_'")
        return value

    def choice(
        self, data: dict[str, Any], key: str, path: str, choices: Sequence[str], default: str | None = None
    ) -> str:
        value = data.get(key, _MISSING)
        if (value is _MISSING or value is None) and default is not None:
            return str(default)
        if value not in choices:
            shown = "missing" if value is _MISSING or value is None else repr(value)
            self.error(f"{path}.{key}", f"must be one of {', '.join(choices)} (got {shown})")
            return default or choices[0]
        return str(value)

    def decimal(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        nullable: bool = False,
        default: Decimal | None = None,
        positive: bool = False,
        maximum: Decimal | None = None,
    ) -> Decimal | None:
        value = data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if value is None and nullable:
                return None
            if required and not (value is None and nullable):
                self.error(f"{path}.{key}", "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            self.error(f"{path}.{key}", 'must be a decimal number (a JSON string such as "0.012" or a number)')
            return default
        if isinstance(value, float):  # pragma: no cover - json is parsed with parse_float=Decimal
            value = str(value)
        try:
            number = Decimal(value.strip() if isinstance(value, str) else value)
        except InvalidOperation:
            self.error(f"{path}.{key}", f"must be a decimal number, got {value!r}")
            return default
        if not number.is_finite():
            self.error(f"{path}.{key}", "must be a finite number")
            return default
        if number < 0:
            self.error(f"{path}.{key}", "must not be negative")
        elif positive and number == 0:
            self.error(f"{path}.{key}", "must be greater than 0")
        if maximum is not None and number > maximum:
            self.error(f"{path}.{key}", f"must be at most {maximum}")
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -10:
            self.error(f"{path}.{key}", "must have at most 10 decimal places")
        if number.adjusted() >= 20:
            self.error(f"{path}.{key}", "is too large")
        return number

    def integer(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = True,
        minimum: int = 1,
        maximum: int = 2_147_483_647,
    ) -> int | None:
        value = data.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(f"{path}.{key}", "is required")
            return None
        if isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path}.{key}", "must be a whole number")
            return None
        if value < minimum or value > maximum:
            self.error(f"{path}.{key}", f"must be between {minimum} and {maximum}")
        return value

    def boolean(self, data: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.error(f"{path}.{key}", "must be true or false")
            return default
        return value

    def unique(self, codes: list[tuple[str, str]], what: str) -> None:
        seen: set[str] = set()
        for path, code in codes:
            if code in seen:
                self.error(path, f"duplicate {what} code {code!r}")
            seen.add(code)


def loads(text: str) -> Any:
    """Parse JSON with every non-integer number as Decimal (never float)."""
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise CatalogError([f"$: not valid JSON ({exc})"]) from exc


def parse_catalog(
    data: Any,
    *,
    known_metrics: Callable[[str], bool] = lambda code: False,
    known_promotions: Callable[[str], bool] = lambda code: False,
    valid_currency: Callable[[str], bool] = lambda code: True,
) -> Catalog:
    """Validate a parsed catalog document. Raises CatalogError listing every problem.

    Metrics and promotions a plan names must be in the file or already stored
    (`known_metrics` / `known_promotions` answer for the stored ones).
    """
    r = _Reader()
    root = r.obj(data, "$", ("billable_metrics", "promotions", "plans", "add_ons"))
    if root is None:
        raise CatalogError(r.errors)

    metrics: list[MetricDef] = []
    for i, raw in enumerate(r.items(root, "billable_metrics", "")):
        path = f"billable_metrics[{i}]"
        m = r.obj(raw, path, ("code", "name", "aggregation", "field", "description"))
        if m is None:
            continue
        aggregation = r.choice(m, "aggregation", path, Aggregation.values)
        field = r.text(m, "field", path, required=False, max_length=128)
        if aggregation == Aggregation.COUNT and field:
            r.error(f"{path}.field", "a count aggregation does not read a property; leave it out")
        elif aggregation != Aggregation.COUNT and not field:
            r.error(f"{path}.field", f"is required for a {aggregation} aggregation")
        metrics.append(
            MetricDef(
                code=r.text(m, "code", path, max_length=64, code=True),
                name=r.text(m, "name", path),
                aggregation=aggregation,
                field=field,
                description=r.text(m, "description", path, required=False, max_length=10_000),
            )
        )
    r.unique([(f"billable_metrics[{i}].code", m.code) for i, m in enumerate(metrics)], "metric")

    promotions: list[PromotionDef] = []
    for i, raw in enumerate(r.items(root, "promotions", "")):
        path = f"promotions[{i}]"
        p = r.obj(raw, path, ("code", "name", "percent_off", "duration_days", "applies_to"))
        if p is None:
            continue
        promotions.append(
            PromotionDef(
                code=r.text(p, "code", path, max_length=64, code=True),
                name=r.text(p, "name", path),
                percent_off=r.decimal(p, "percent_off", path, maximum=Decimal(100)) or Decimal(0),
                duration_days=r.integer(p, "duration_days", path, minimum=1, maximum=3660) or 1,
                applies_to=r.choice(p, "applies_to", path, AppliesTo.values, default=AppliesTo.BASE_FEE),
            )
        )
    r.unique([(f"promotions[{i}].code", p.code) for i, p in enumerate(promotions)], "promotion")

    metric_codes = {m.code for m in metrics}
    promotion_codes = {p.code for p in promotions}
    plans: list[PlanDef] = []
    for i, raw in enumerate(r.items(root, "plans", "")):
        path = f"plans[{i}]"
        p = r.obj(
            raw,
            path,
            (
                "code",
                "name",
                "description",
                "interval",
                "currency",
                "base_fee",
                "pay_in_advance",
                "promotion",
                "commitment",
                "charges",
                "metadata",
            ),
        )
        if p is None:
            continue
        currency = r.text(p, "currency", path, max_length=3, default="USD")
        if currency and not valid_currency(currency):
            r.error(f"{path}.currency", f"{currency!r} is not an ISO 4217 currency code")
        promotion = r.text(p, "promotion", path, required=False, max_length=64) or None
        if promotion and promotion not in promotion_codes and not known_promotions(promotion):
            r.error(f"{path}.promotion", f"unknown promotion {promotion!r}")
        commitment = None
        if p.get("commitment") is not None:
            cpath = f"{path}.commitment"
            c = r.obj(p["commitment"], cpath, ("amount", "months", "covers", "auto_renew"))
            if c is not None:
                commitment = CommitmentDef(
                    amount=r.decimal(c, "amount", cpath, positive=True) or Decimal(0),
                    months=r.integer(c, "months", cpath, minimum=1, maximum=120) or 1,
                    covers=r.choice(c, "covers", cpath, CommitmentCovers.values, default=CommitmentCovers.BASE_FEE),
                    auto_renew=r.boolean(c, "auto_renew", cpath, True),
                )
        charges = [
            _charge(r, raw_charge, f"{path}.charges[{j}]", metric_codes, known_metrics)
            for j, raw_charge in enumerate(r.items(p, "charges", f"{path}."))
        ]
        r.unique(
            [(f"{path}.charges[{j}].metric", c.metric) for j, c in enumerate(charges) if c is not None],
            "metric in this plan's charges: metric",
        )
        plans.append(
            PlanDef(
                code=r.text(p, "code", path, max_length=64, code=True),
                name=r.text(p, "name", path),
                description=r.text(p, "description", path, required=False, max_length=10_000),
                interval=r.choice(p, "interval", path, Interval.values, default=Interval.MONTH),
                currency=currency,
                base_fee=r.decimal(p, "base_fee", path, default=Decimal(0)) or Decimal(0),
                pay_in_advance=r.boolean(p, "pay_in_advance", path, False),
                promotion=promotion,
                commitment=commitment,
                charges=tuple(c for c in charges if c is not None),
                metadata=_metadata(r, p.get("metadata"), f"{path}.metadata"),
            )
        )
    r.unique([(f"plans[{i}].code", p.code) for i, p in enumerate(plans)], "plan")

    add_ons = [
        add_on
        for i, raw in enumerate(r.items(root, "add_ons", ""))
        if (add_on := _add_on(r, raw, f"add_ons[{i}]", valid_currency)) is not None
    ]
    r.unique([(f"add_ons[{i}].code", a.code) for i, a in enumerate(add_ons)], "add-on")

    if r.errors:
        raise CatalogError(r.errors)
    return Catalog(metrics=tuple(metrics), promotions=tuple(promotions), plans=tuple(plans), add_ons=tuple(add_ons))


def _add_on(r: _Reader, raw: Any, path: str, valid_currency: Callable[[str], bool]) -> AddOnDef | None:
    a = r.obj(raw, path, ("code", "name", "invoice_display_name", "description", "amount", "currency"))
    if a is None:
        return None
    currency = r.text(a, "currency", path, max_length=3, default="USD")
    currency_ok = bool(currency) and valid_currency(currency)
    if currency and not currency_ok:
        r.error(f"{path}.currency", f"{currency!r} is not an ISO 4217 currency code")
    amount = r.decimal(a, "amount", path, default=Decimal(0)) or Decimal(0)
    if currency_ok and amount >= 0 and amount.adjusted() < 20 and amount != quantize_money(amount, currency):
        r.error(f"{path}.amount", f"{currency} amounts have at most {currency_minor_digits(currency)} decimal places")
    return AddOnDef(
        code=r.text(a, "code", path, code=True),
        name=r.text(a, "name", path),
        amount=amount,
        currency=currency,
        invoice_display_name=r.text(a, "invoice_display_name", path, required=False),
        description=r.text(a, "description", path, required=False, max_length=10_000),
    )


def _metadata(r: _Reader, value: Any, path: str) -> dict[str, str | None] | None:
    """A plan's metadata: string keys to string or null values (absent or null: not stated)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        r.error(path, "must be an object of string values")
        return None
    for key, item in value.items():
        if item is not None and not isinstance(item, str):
            r.error(f"{path}.{key}", "must be a string or null")
    return dict(value)


def _charge(
    r: _Reader, raw: Any, path: str, metric_codes: set[str], known_metrics: Callable[[str], bool]
) -> ChargeDef | None:
    c = r.obj(
        raw,
        path,
        ("metric", "model", "tiers", "unit_amount", "package_size", "package_amount", "free_units", "usage_limit"),
    )
    if c is None:
        return None
    metric = r.text(c, "metric", path, max_length=64)
    if metric and metric not in metric_codes and not known_metrics(metric):
        r.error(f"{path}.metric", f"unknown billable metric {metric!r}")
    model = r.choice(c, "model", path, ChargeModel.values)
    zero = Decimal(0)

    tiers: list[TierSpec] = []
    if model in (ChargeModel.GRADUATED, ChargeModel.VOLUME):
        raw_tiers = r.items(c, "tiers", f"{path}.")
        for k, raw_tier in enumerate(raw_tiers):
            tpath = f"{path}.tiers[{k}]"
            t = r.obj(raw_tier, tpath, ("up_to", "unit_amount", "flat_amount"))
            if t is None:
                continue
            if "up_to" not in t:
                r.error(f"{tpath}.up_to", "is required (null on the last tier)")
            tiers.append(
                TierSpec(
                    up_to=r.decimal(t, "up_to", tpath, nullable=True, positive=True),
                    unit_amount=r.decimal(t, "unit_amount", tpath, default=zero) or zero,
                    flat_amount=r.decimal(t, "flat_amount", tpath, required=False, default=zero) or zero,
                )
            )
        if len(tiers) == len(raw_tiers):
            for k, field, message in tier_errors(tiers):
                # Negative prices were reported while reading; here only the table's shape.
                if field == "up_to":
                    r.error(f"{path}.tiers[{k}].up_to", message)
                elif field == "tiers":
                    r.error(f"{path}.tiers", message)
    elif "tiers" in c:
        r.error(f"{path}.tiers", "only graduated and volume charges have tiers")

    unit_amount = zero
    if model == ChargeModel.STANDARD:
        unit_amount = r.decimal(c, "unit_amount", path) or zero
    elif "unit_amount" in c:
        priced_by = "package_amount" if model == ChargeModel.PACKAGE else "tiers"
        r.error(f"{path}.unit_amount", f"a {model} charge is priced by {priced_by}, not unit_amount")

    package_size = package_amount = None
    free_units = zero
    if model == ChargeModel.PACKAGE:
        package_size = r.integer(c, "package_size", path, minimum=1)
        package_amount = r.decimal(c, "package_amount", path)
        free_units = r.decimal(c, "free_units", path, required=False, default=zero) or zero
    else:
        for key in ("package_size", "package_amount", "free_units"):
            if key in c:
                r.error(f"{path}.{key}", "only package charges have this field")

    return ChargeDef(
        metric=metric,
        model=model,
        tiers=tuple(tiers),
        unit_amount=unit_amount,
        package_size=package_size,
        package_amount=package_amount,
        free_units=free_units,
        usage_limit=r.decimal(c, "usage_limit", path, required=False, nullable=True),
    )
