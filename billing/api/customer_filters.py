"""The customer list's filters (query parameters, all optional, combined with AND): Lago's
(CustomersController#index, CustomersQuery). Any other parameter is 422 naming it.

- `search_term`: a part of the name, first or last name, legal name, external id or email
  (case-insensitive); `external_id`: that customer;
- `currencies[]`, `countries[]`, `states[]`, `zipcodes[]`: one of the values (the billing
  address's country, state and zipcode);
- `customer_type` (company, individual); `has_customer_type` and `has_tax_identification_number`
  (true or false: set or not);
- `account_type[]` (customer, partner): every customer here is a `customer` (no partners);
- `metadata[key]=value`: customers with that metadata pair (every pair given); an empty value:
  customers without that key;
- `billing_entity_codes[]`: billing entities are not part of this app: 422.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from billing.api.list_params import (
    BAD_CHOICE,
    NO_BILLING_ENTITIES,
    list_params_errors,
    metadata_pairs,
    parse_booleans,
    values_of,
    with_metadata,
)
from customers.models import Customer
from customers.validators import INVALID_CURRENCY, validate_currency

FILTERS = (
    "search_term",
    "external_id",
    "currencies",
    "countries",
    "states",
    "zipcodes",
    "customer_type",
    "has_customer_type",
    "has_tax_identification_number",
    "account_type",
    "billing_entity_codes",
    "metadata[key]",
)
CUSTOMER_TYPES = ("company", "individual")
ACCOUNT_TYPES = ("customer", "partner")
BAD_COUNTRY = "must be ISO 3166 alpha-2 country codes (e.g. FR, US); {value!r} is not"
TYPE_WITHOUT_TYPE = "must be absent when has_customer_type is false"
SEARCHED = ("name", "firstname", "lastname", "legal_name", "external_id", "email")


def customer_list_filter(qs: QuerySet[Customer], params: Any) -> QuerySet[Customer] | dict[str, list[str]]:
    """The customers the query parameters select, or the errors by parameter."""
    errors = list_params_errors(params, FILTERS)
    if values_of(params, "billing_entity_codes"):
        errors["billing_entity_codes"] = [NO_BILLING_ENTITIES]
    currencies = [value.upper() for value in values_of(params, "currencies")]
    for value in currencies:
        try:
            validate_currency(value)
        except Exception:
            errors.setdefault("currencies", []).append(INVALID_CURRENCY.format(value=value))
    countries = [value.upper() for value in values_of(params, "countries")]
    bad = [value for value in countries if len(value) != 2 or not value.isascii() or not value.isalpha()]
    if bad:
        errors["countries"] = [BAD_COUNTRY.format(value=value) for value in bad]
    customer_type = params.get("customer_type") or ""
    if customer_type and customer_type not in CUSTOMER_TYPES:
        errors["customer_type"] = [BAD_CHOICE.format(choices=", ".join(CUSTOMER_TYPES))]
    account_types = values_of(params, "account_type")
    if any(value not in ACCOUNT_TYPES for value in account_types):
        errors["account_type"] = [BAD_CHOICE.format(choices=", ".join(ACCOUNT_TYPES))]
    flags = parse_booleans(params, ("has_customer_type", "has_tax_identification_number"), errors)
    if flags.get("has_customer_type") is False and customer_type:
        errors["customer_type"] = [TYPE_WITHOUT_TYPE]
    if errors:
        return errors

    if params.get("external_id"):
        qs = qs.filter(external_id=params["external_id"])
    elif params.get("search_term"):  # as Lago's CustomersQuery: external_id wins over search_term
        term = params["search_term"]
        condition = Q(pk__in=[])
        for field in SEARCHED:
            condition |= Q(**{f"{field}__icontains": term})
        qs = qs.filter(condition)
    if currencies:
        qs = qs.filter(currency__in=currencies)
    if countries:
        qs = qs.filter(country__in=countries)
    if states := values_of(params, "states"):
        qs = qs.filter(state__in=states)
    if zipcodes := values_of(params, "zipcodes"):
        qs = qs.filter(zipcode__in=zipcodes)
    if customer_type:
        qs = qs.filter(customer_type=customer_type)
    elif "has_customer_type" in flags:
        qs = qs.exclude(customer_type="") if flags["has_customer_type"] else qs.filter(customer_type="")
    if "has_tax_identification_number" in flags:
        has = flags["has_tax_identification_number"]
        qs = qs.exclude(tax_identification_number="") if has else qs.filter(tax_identification_number="")
    if account_types and "customer" not in account_types:
        qs = qs.none()  # no partner accounts here
    return with_metadata(qs, metadata_pairs(params))
