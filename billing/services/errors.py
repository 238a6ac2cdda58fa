"""The one shape of a refused change: messages by field, as the API returns them (422) and the
admin shows them next to the field."""

from __future__ import annotations


class FieldErrors(Exception):
    """A change refused; `errors` maps each field at fault (e.g. "items.0.amount_cents") to its
    messages. Each service raises its own subclass (PaymentError, CreditNoteError, …)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {', '.join(messages)}" for name, messages in errors.items()))
