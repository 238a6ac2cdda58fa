"""What the lists of /api/v1 share when reading their query parameters: array parameters in
Lago's `name[]` form, Lago's `metadata[key]=value` filter, amount ranges in cents, booleans,
the customer part of Lago's `search_term`, and the 422 for a parameter a list does not have
(config.api.unknown_filters)."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from billing.engine.money import from_cents
from config.api import ascii_int, page_numbers, unknown_filters

BAD_CHOICE = "must be one of: {choices}"
RANGE_REVERSED = "must not be before {other}"
BAD_AMOUNT = "must be a whole number of cents from 0 to {maximum}"
NO_BILLING_ENTITIES = "is not supported: billing entities are not part of this app (one organization, one issuer)"
MAX_AMOUNT_CENTS = 10**15
BOOLEANS = {"true": True, "false": False}
METADATA_PARAM = re.compile(r"metadata\[(.+)\]")


def pages_only(params: Any) -> tuple[int, int] | dict[str, list[str]]:
    """`page` and `per_page` of a list that has no filter (Lago's), or the errors: theirs, and one
    for every other parameter sent."""
    paging = page_numbers(params)
    errors = (paging if isinstance(paging, dict) else {}) | unknown_filters(params, ())
    return errors if errors else paging


def values_of(params: Any, *names: str) -> list[str]:
    """Every value of a parameter that may be a list, under any of its names: `name`, `name[]`,
    repeated or not (Lago's clients send `name[]=a&name[]=b`)."""
    getlist = getattr(params, "getlist", None)
    found: list[str] = []
    for name in names:
        for key in (name, f"{name}[]"):
            if getlist is not None:
                found += [value for value in getlist(key) if value]
            elif params.get(key):
                found.append(params[key])
    return found


def metadata_pairs(params: Any) -> dict[str, str]:
    """Lago's `metadata[key]=value` query parameters as {key: value}."""
    pairs = {}
    for name in params:
        match = METADATA_PARAM.fullmatch(name)
        if match:
            pairs[match.group(1)] = params.get(name) or ""
    return pairs


def list_params_errors(params: Any, filters: Any) -> dict[str, list[str]]:
    """unknown_filters, with Lago's `metadata[<key>]` accepted when `metadata[key]` is a filter."""
    names = {name: "" for name in params if not ("metadata[key]" in filters and METADATA_PARAM.fullmatch(name))}
    return unknown_filters(names, filters)


def _metadata_matches(items: Any, pairs: dict[str, str]) -> bool:
    """Lago's metadata filter on [{key, value}] items: every pair with a value is there; every key
    given without one is absent."""
    have = {str(item.get("key")): item.get("value") for item in items or [] if isinstance(item, dict)}
    for key, value in pairs.items():
        if value and (key not in have or str(have[key]) != value):
            return False
        if not value and key in have:
            return False
    return True


def with_metadata(qs: QuerySet[Any], pairs: dict[str, str]) -> QuerySet[Any]:
    """Rows whose `metadata` ([{key, value}] items) matches every pair (see _metadata_matches).

    JSON containment where the database has it (PostgreSQL: jsonb @>, an object inside the array
    matches on the fields given); elsewhere (SQLite, tests and local runs) in Python over the
    rows the other filters left."""
    if not pairs:
        return qs
    if connection.features.supports_json_field_contains:
        for key, value in pairs.items():
            if value:
                qs = qs.filter(metadata__contains=[{"key": key, "value": value}])
            else:
                qs = qs.exclude(metadata__contains=[{"key": key}])
        return qs
    ids = [pk for pk, items in qs.values_list("pk", "metadata") if _metadata_matches(items, pairs)]
    return qs.filter(pk__in=ids)


def amount_between(qs: QuerySet[Any], field: str, low: int | None, high: int | None) -> Q:
    """Rows whose `field` (money) is within [low, high] cents, per currency (cents differ by
    currency: a yen has none)."""
    condition = Q(pk__in=[])
    for currency in qs.order_by().values_list("currency", flat=True).distinct():
        per_currency = Q(currency=currency)
        if low is not None:
            per_currency &= Q(**{f"{field}__gte": from_cents(low, currency)})
        if high is not None:
            per_currency &= Q(**{f"{field}__lte": from_cents(high, currency)})
        condition |= per_currency
    return condition


def parse_amounts(params: Any, errors: dict[str, list[str]]) -> dict[str, int]:
    """`amount_from` / `amount_to` in cents (errors by name into `errors`)."""
    amounts = {}
    for name in ("amount_from", "amount_to"):
        if params.get(name):
            cents = ascii_int(params[name], minimum=0, maximum=MAX_AMOUNT_CENTS)
            if cents is None:
                errors[name] = [BAD_AMOUNT.format(maximum=MAX_AMOUNT_CENTS)]
            else:
                amounts[name] = cents
    if len(amounts) == 2 and amounts["amount_to"] < amounts["amount_from"]:
        errors["amount_to"] = [RANGE_REVERSED.format(other="amount_from")]
    return amounts


def parse_booleans(params: Any, names: tuple[str, ...], errors: dict[str, list[str]]) -> dict[str, bool]:
    found = {}
    for name in names:
        value = params.get(name)
        if not value:
            continue
        if value not in BOOLEANS:
            errors[name] = [BAD_CHOICE.format(choices="true, false")]
        else:
            found[name] = BOOLEANS[value]
    return found


def customer_search(term: str) -> Q:
    """Lago's search_term over a row's customer: name, first or last name, external id or email."""
    condition = Q(pk__in=[])
    for field in ("name", "firstname", "lastname", "external_id", "email"):
        condition |= Q(**{f"customer__{field}__icontains": term})
    return condition
