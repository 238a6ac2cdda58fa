"""Validators for customer fields, shared with the API and the catalog."""

from __future__ import annotations

import zoneinfo
from functools import cache

from babel import Locale
from babel.numbers import get_territory_currencies
from django.core.exceptions import ValidationError

INVALID_CURRENCY = "'{value}' is not an ISO 4217 code of a currency in use (e.g. USD, EUR)."
INVALID_TIMEZONE = "'{value}' is not an IANA time zone (e.g. Europe/Paris)."


@cache
def _currencies() -> frozenset[str]:
    """ISO 4217 codes of the currencies legal tender somewhere today (CLDR, through Babel): not
    the codes for no currency (XXX), testing (XTS), metals (XAU) or withdrawn money (DEM)."""
    territories = [code for code in Locale.parse("en").territories if isinstance(code, str) and len(code) == 2]
    return frozenset(
        currency for territory in territories for currency in get_territory_currencies(territory, tender=True)
    )


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_currency(value: str) -> None:
    if value not in _currencies():
        raise ValidationError(INVALID_CURRENCY.format(value=value), code="invalid_currency")


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(INVALID_TIMEZONE.format(value=value), code="invalid_timezone")
