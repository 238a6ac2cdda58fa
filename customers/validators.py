"""Validators for customer fields, shared with the API and the catalog."""

from __future__ import annotations

import zoneinfo
from functools import cache

from babel.numbers import get_currency_precision, list_currencies
from django.core.exceptions import ValidationError

INVALID_CURRENCY = "'{value}' is not an ISO 4217 currency code."
INVALID_TIMEZONE = "'{value}' is not an IANA time zone (e.g. Europe/Paris)."


@cache
def _currencies() -> frozenset[str]:
    return frozenset(list_currencies())


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_currency(value: str) -> None:
    if value not in _currencies():
        raise ValidationError(INVALID_CURRENCY.format(value=value), code="invalid_currency")


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(INVALID_TIMEZONE.format(value=value), code="invalid_timezone")


def currency_minor_digits(currency: str) -> int:
    """Digits after the decimal point of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))
