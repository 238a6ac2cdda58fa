"""What the admin's money forms share: an amount typed in a currency, and a service's refusal
shown next to the input it is about.

- `MoneyField` takes a decimal in the currency's major unit ("120.50" dollars, "1235" yen),
  with a dot for decimals and no thousands separator (is "1,250" one thousand two hundred and
  fifty, or one and a quarter? it is refused rather than guessed), and no more decimals than the
  currency's minor unit has. It gives an exact Decimal at that precision; the services decide
  everything else about the amount (positive, not more than is due, …).
- `add_service_errors` puts a service's errors (a dict by API field, e.g. "amount_cents",
  "items.0.amount_cents", as PaymentError and CreditNoteError carry them) on the form's inputs,
  worded for the form: "Refund is more than was paid and not refunded yet (50.00)".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from billing.engine.money import amount_field_kwargs, currency_minor_digits, quantize_money

# Messages are constants so tests can match them.
SEPARATOR_REFUSED = "Use a dot for decimals and no thousands separator, e.g. 1250.50."
TOO_MANY_DECIMALS = "{currency} amounts have at most {digits} decimal places."
NO_DECIMALS = "{currency} amounts have no decimal places."
NOT_A_NUMBER = "Enter an amount, e.g. 120.50."

# A service's message that reads as the end of a sentence about its field ("must be greater than 0").
_PREDICATE = re.compile(r"^(is|are|must|has|have) ")


class MoneyField(forms.DecimalField):
    """An amount in `currency`, at most its minor unit's decimals (see the module docstring)."""

    widget = forms.TextInput

    def __init__(self, *, currency: str, **kwargs: Any) -> None:
        self.currency = currency
        self.digits = currency_minor_digits(currency)
        kwargs.setdefault("error_messages", {}).setdefault("invalid", NOT_A_NUMBER)
        super().__init__(max_digits=amount_field_kwargs()["max_digits"], decimal_places=None, **kwargs)
        self.widget.attrs.update({"inputmode": "decimal", "autocomplete": "off", "class": "money-input"})

    def to_python(self, value: Any) -> Any:  # django-stubs types DecimalField as an IntegerField
        if isinstance(value, str):
            value = value.strip()
            if "," in value or " " in value or "_" in value:
                raise ValidationError(SEPARATOR_REFUSED, code="separator")
        return super().to_python(value)

    def clean(self, value: Any) -> Decimal | None:
        amount = super().clean(value)
        if amount is None:
            return None
        # The validators have passed (at most max_digits), so quantizing cannot overflow.
        rounded = quantize_money(amount, self.currency)
        if amount != rounded:  # "10.50" is fine for USD, "10.505" is not
            template = TOO_MANY_DECIMALS if self.digits else NO_DECIMALS
            raise ValidationError(template.format(currency=self.currency, digits=self.digits), code="decimals")
        return rounded  # "10.5" → 10.50


def service_message(label: str, message: str) -> str:
    """A service's message for its field, as a sentence on the form: "Amount must be greater than 0"."""
    if _PREDICATE.match(message):
        return f"{label} {message}"
    return message[:1].upper() + message[1:]


def add_service_errors(
    form: forms.BaseForm, errors: Mapping[str, list[str]], field_for: Callable[[str], str | None]
) -> None:
    """Show a service's errors on the form: each on the input `field_for(api_field)` names, or
    above the form when it names none (e.g. the invoice itself)."""
    for api_field, messages in errors.items():
        name = field_for(api_field)
        target = name if name is not None and name in form.fields else None
        # Above the form, a message about a field names it ("Payment status must be one of: …").
        # "Amount (USD)" reads "Amount" in a sentence.
        label = (
            str(form.fields[target].label).split(" (")[0]
            if target is not None
            else api_field.replace("_", " ").capitalize()
        )
        for message in messages:
            form.add_error(target, service_message(label, message))
