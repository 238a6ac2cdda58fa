"""Lago's charge `properties` and the catalog's charge fields, both ways (pure).

Lago prices a charge by `properties`, shaped by its model:
- standard: {"amount": "0.01"} (price per unit);
- graduated: {"graduated_ranges": [{"from_value", "to_value", "per_unit_amount", "flat_amount"}]};
- volume: {"volume_ranges": [...the same ranges...]};
- package: {"amount", "package_size", "free_units"}.

The catalog (and the engine) reads tiers by their inclusive upper bound `up_to`: a range's
`to_value` is that bound (null on the last range), and its `from_value` only says where the range
starts. Lago accepts both of its ways to write it: the previous range's `to_value` (adjacent
ranges) or the unit after it (to_value + 1); the first range starts at 0 (or 1). Both price the
same units, as they do in Lago.

`catalog_fields` turns properties into the catalog's charge fields, so that
billing.engine.catalog.parse_catalog checks them by the same rules as a catalog file (one rule,
one place), and says where each catalog field came from, so that an error names the field the
client sent (`graduated_ranges.1.to_value`, not `tiers[1].up_to`). Only what Lago's shape alone
has is checked here: the keys, the ranges being a list of objects, and `from_value`.
`lago_properties` is the reverse, for the API's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.engine.catalog import ChargeDef
from billing.engine.money import format_decimal
from billing.engine.vocabulary import ChargeModel

NOT_SUPPORTED = "is not supported"
GROUPING_NOT_SUPPORTED = "is not supported: charges are not grouped by event properties"
MUST_BE_OBJECT = "must be an object"
MUST_BE_LIST = "must be a list of ranges"
FROM_VALUE_REQUIRED = "is required"
FROM_VALUE_NOT_NUMBER = "must be a number"
FROM_VALUE_GAP = "must be {expected}: where the previous range ends (its to_value) or the unit after"
FIRST_FROM_VALUE = "must be 0 (or 1): the first range starts at the first unit"

RANGES_KEY: dict[str, str] = {ChargeModel.GRADUATED: "graduated_ranges", ChargeModel.VOLUME: "volume_ranges"}
RANGE_KEYS = {"from_value": None, "to_value": "up_to", "per_unit_amount": "unit_amount", "flat_amount": "flat_amount"}
# Plain keys: Lago's → the catalog's, per model.
PLAIN_KEYS: dict[str, dict[str, str]] = {
    ChargeModel.STANDARD: {"amount": "unit_amount"},
    ChargeModel.PACKAGE: {"amount": "package_amount", "package_size": "package_size", "free_units": "free_units"},
    ChargeModel.GRADUATED: {},
    ChargeModel.VOLUME: {},
}
# Lago's grouping keys: accepted when they ask for no grouping (empty), refused otherwise.
GROUPING_KEYS = ("grouped_by", "pricing_group_keys")
# The catalog fields that come from properties (the rest of a charge, its metric, model and usage
# limit, is the plan's and stays).
PRICING_FIELDS = ("tiers", "unit_amount", "package_size", "package_amount", "free_units")


@dataclass
class CatalogFields:
    """A charge's pricing in the catalog's shape, read from Lago's properties.

    `fields`: catalog charge keys (those of PRICING_FIELDS the model uses); `sources`: for each
    catalog path inside the charge ("tiers[1].up_to", "tiers"), the Lago path it came from
    ("graduated_ranges.1.to_value"); `errors`: (Lago path, message) found by this module.
    """

    fields: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def lago_path(self, catalog_path: str) -> str | None:
        """The Lago path of a catalog path inside the charge: the source of the path itself or
        of its nearest enclosing path ("tiers[1].up_to" → "graduated_ranges.1.to_value")."""
        path = catalog_path
        while path:
            if path in self.sources:
                return self.sources[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return None
            path = path[:cut]
        return None


def _number(value: Any) -> Decimal | None:
    """A JSON number or a decimal string as a Decimal (never a float's approximation); None else."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def catalog_fields(model: str, properties: Any) -> CatalogFields:
    """Lago's `properties` of a `model` charge in the catalog's charge fields (see the module)."""
    out = CatalogFields()
    if not isinstance(properties, Mapping):
        out.errors.append(("", MUST_BE_OBJECT))
        return out
    plain = PLAIN_KEYS.get(model, {})
    ranges_key = RANGES_KEY.get(model)
    for key, value in properties.items():
        if key in GROUPING_KEYS:
            if value not in (None, [], ""):
                out.errors.append((key, GROUPING_NOT_SUPPORTED))
        elif key in plain:
            out.fields[plain[key]] = value
            out.sources[plain[key]] = key
        elif key != ranges_key:
            out.errors.append((key, NOT_SUPPORTED))
    for lago_key, catalog_key in plain.items():
        out.sources.setdefault(catalog_key, lago_key)  # "is required" names the Lago field
    if ranges_key is not None:
        out.sources["tiers"] = ranges_key
        out.fields["tiers"] = _tiers(out, ranges_key, properties.get(ranges_key))
    return out


def _tiers(out: CatalogFields, key: str, ranges: Any) -> list[Any]:
    if not isinstance(ranges, list):
        # Missing: the catalog says a tier is required, under this key.
        if ranges is not None:
            out.errors.append((key, MUST_BE_LIST))
        return []
    tiers: list[Any] = []
    previous_to: Decimal | None = None
    for k, item in enumerate(ranges):
        path = f"{key}.{k}"
        out.sources[f"tiers[{k}]"] = path
        if not isinstance(item, Mapping):
            out.errors.append((path, MUST_BE_OBJECT))
            tiers.append(item)  # the catalog reports it too; its error is dropped as a repeat
            previous_to = None
            continue
        # A missing to_value is null, as in Lago: the range is unbounded (only the last may be).
        tier: dict[str, Any] = {"up_to": None}
        for lago_key, value in item.items():
            if lago_key not in RANGE_KEYS:
                out.errors.append((f"{path}.{lago_key}", NOT_SUPPORTED))
            elif (catalog_key := RANGE_KEYS[lago_key]) is not None:
                tier[catalog_key] = value
        for lago_key, catalog_key in RANGE_KEYS.items():
            if catalog_key is not None:
                out.sources[f"tiers[{k}].{catalog_key}"] = f"{path}.{lago_key}"
        _check_from_value(out, path, item, k, previous_to)
        tiers.append(tier)
        previous_to = _number(item.get("to_value"))
    return tiers


def _check_from_value(
    out: CatalogFields, path: str, item: Mapping[str, Any], k: int, previous_to: Decimal | None
) -> None:
    raw = item.get("from_value")
    if raw is None:
        out.errors.append((f"{path}.from_value", FROM_VALUE_REQUIRED))
        return
    from_value = _number(raw)
    if from_value is None:
        out.errors.append((f"{path}.from_value", FROM_VALUE_NOT_NUMBER))
        return
    if k == 0:
        if from_value not in (0, 1):
            out.errors.append((f"{path}.from_value", FIRST_FROM_VALUE))
        return
    if previous_to is None:
        return  # the previous range has no usable bound: the catalog reports that one
    if from_value not in (previous_to, previous_to + 1):
        expected = f"{format_decimal(previous_to)} or {format_decimal(previous_to + 1)}"
        out.errors.append((f"{path}.from_value", FROM_VALUE_GAP.format(expected=expected)))


def _quantity(value: Decimal) -> int | str:
    """Bounds and unit counts as JSON integers when whole (as Lago writes them), else strings."""
    return int(value) if value == value.to_integral_value() else format_decimal(value)


def lago_properties(charge: ChargeDef) -> dict[str, Any]:
    """A charge's pricing as Lago's `properties` (amounts as decimal strings, as Lago writes them)."""
    if charge.model == ChargeModel.STANDARD:
        return {"amount": format_decimal(charge.unit_amount)}
    if charge.model == ChargeModel.PACKAGE:
        return {
            "amount": format_decimal(charge.package_amount or Decimal(0)),
            "package_size": charge.package_size,
            "free_units": _quantity(charge.free_units),
        }
    ranges = []
    previous: Decimal | None = None
    for tier in charge.tiers:
        ranges.append(
            {
                "from_value": 0 if previous is None else _quantity(previous + 1),
                "to_value": None if tier.up_to is None else _quantity(tier.up_to),
                "per_unit_amount": format_decimal(tier.unit_amount),
                "flat_amount": format_decimal(tier.flat_amount),
            }
        )
        previous = tier.up_to
    return {RANGES_KEY.get(charge.model, "ranges"): ranges}
