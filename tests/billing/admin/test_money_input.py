"""Amounts typed in a currency (billing.admin.money_input.MoneyField) and a service's errors shown
on the form's inputs (add_service_errors)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django import forms

from billing.admin.money_input import (
    NO_DECIMALS,
    NOT_A_NUMBER,
    SEPARATOR_REFUSED,
    TOO_MANY_DECIMALS,
    MoneyField,
    add_service_errors,
    service_message,
)


def clean(currency: str, value: str) -> Decimal | None:
    return MoneyField(currency=currency, required=False).clean(value)


def refusal(currency: str, value: str) -> list[str]:
    with pytest.raises(forms.ValidationError) as raised:
        clean(currency, value)
    return list(raised.value.messages)


@pytest.mark.parametrize(
    ("currency", "value", "amount"),
    [
        ("USD", "120.5", "120.50"),
        ("USD", " 120.50 ", "120.50"),
        ("USD", "120.500", "120.50"),  # trailing zeros are not more precision
        ("USD", "-3", "-3.00"),  # the sign is the service's to judge
        ("JPY", "1235", "1235"),
        ("KWD", "1.235", "1.235"),
    ],
)
def test_amounts_are_exact_decimals_at_the_currencys_precision(currency: str, value: str, amount: str) -> None:
    cleaned = clean(currency, value)
    assert cleaned == Decimal(amount) and str(cleaned) == amount


def test_blank_is_none() -> None:
    assert clean("USD", "") is None


@pytest.mark.parametrize(
    ("currency", "value", "message"),
    [
        ("USD", "10.005", TOO_MANY_DECIMALS.format(currency="USD", digits=2)),
        ("KWD", "1.2345", TOO_MANY_DECIMALS.format(currency="KWD", digits=3)),
        ("JPY", "1235.5", NO_DECIMALS.format(currency="JPY")),
        ("USD", "1,250.50", SEPARATOR_REFUSED),
        ("EUR", "12,50", SEPARATOR_REFUSED),
        ("USD", "1 250", SEPARATOR_REFUSED),
        ("USD", "ten", NOT_A_NUMBER),
        ("USD", "NaN", NOT_A_NUMBER),
    ],
)
def test_what_is_refused(currency: str, value: str, message: str) -> None:
    assert refusal(currency, value) == [message]


def test_too_many_digits_are_refused_before_rounding() -> None:
    assert refusal("USD", "1" * 30)  # never an overflow while quantizing


def test_service_messages_read_as_sentences_on_their_inputs() -> None:
    assert service_message("Refund", "is more than was paid (5.00)") == "Refund is more than was paid (5.00)"
    assert service_message("Amount", "must be greater than 0") == "Amount must be greater than 0"
    assert service_message("Credit", "credit, refund and offset add up") == "Credit, refund and offset add up"

    class Form(forms.Form):
        amount = MoneyField(currency="USD", label="Amount (USD)")

    form = Form({"amount": "5"})
    assert form.is_valid()
    mapping = {"amount_cents": "amount"}
    add_service_errors(form, {"amount_cents": ["must be greater than 0"], "invoice_id": ["is voided"]}, mapping.get)
    assert form.errors == {"amount": ["Amount must be greater than 0"], "__all__": ["Invoice id is voided"]}
