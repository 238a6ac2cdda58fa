"""A credit note as the API renders it: Lago's CreditNoteResponse (lago-python-client 1.55) with our
own `description` and `total` beside it; Lago's CreditNoteEstimatedResponse for an estimate; and the
output serializers that describe both in the OpenAPI schema
(the metadata routes' answer is billing.api.metadata).

Amounts are Lago's integers in the currency's minor unit; each item's `fee` is the fee credited,
as the invoice's `fees[]` shows it (billing.api.invoice_json.fee_json).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from rest_framework import serializers

from billing.api.customers import CustomerOutput, customer_json
from billing.api.invoice_json import FeeOutput, fee_json
from billing.api.invoices import PageMeta
from billing.documents.links import document_url
from billing.engine.money import money_str, to_cents
from billing.engine.vocabulary import CreditNoteReason, CreditStatus, RefundStatus
from billing.models import CreditNote, CreditNoteItem, Invoice
from billing.services.credit_notes import NoteAmounts
from config.api import iso_datetime


def credit_notes_for_json() -> QuerySet[CreditNote]:
    """Everything credit_note_json reads, in a fixed number of queries however many notes."""
    return CreditNote.objects.select_related(
        "customer", "invoice", "invoice__customer", "invoice__subscription", "invoice__subscription__plan"
    ).prefetch_related(Prefetch("items", queryset=CreditNoteItem.objects.select_related("fee__metric").order_by("id")))


def credit_note_json(note: CreditNote, request: Any = None) -> dict[str, Any]:
    cur = note.currency
    return {
        "lago_id": str(note.pk),
        "sequential_id": note.sequence,
        "billing_entity_code": None,
        "number": note.number,
        "lago_invoice_id": str(note.invoice_id),
        "invoice_number": note.invoice.number,
        "issuing_date": note.issued_on.isoformat(),
        "credit_status": note.credit_status,
        "refund_status": note.refund_status or None,
        "reason": note.reason,
        "description": note.description or None,
        "currency": cur,
        "total_amount_cents": to_cents(note.total_amount, cur),
        "credit_amount_cents": to_cents(note.credit_amount, cur),
        "balance_amount_cents": to_cents(note.balance_amount, cur),
        "refund_amount_cents": to_cents(note.refund_amount, cur),
        "offset_amount_cents": to_cents(note.offset_amount, cur),
        "taxes_amount_cents": to_cents(note.taxes_amount, cur),
        "taxes_rate": 0.0,
        "sub_total_excluding_taxes_amount_cents": to_cents(note.sub_total_excluding_taxes_amount, cur),
        "coupons_adjustment_amount_cents": to_cents(note.coupons_adjustment_amount, cur),
        "file_url": document_url(request, "credit_note", note.pk),
        "created_at": iso_datetime(note.created_at),
        "updated_at": iso_datetime(note.updated_at),
        "refunded_at": iso_datetime(note.refunded_at),
        "voided_at": iso_datetime(note.voided_at),
        "items": [
            {
                "lago_id": str(item.pk),
                "amount_cents": to_cents(item.amount, cur),
                "amount_currency": cur,
                "fee": fee_json(item.fee, note.invoice),
            }
            for item in note.items.all()
        ],
        "applied_taxes": [],
        "metadata": note.metadata,
        "customer": customer_json(note.customer),
        # our own fields
        "total": money_str(note.total_amount, cur),
    }


def estimate_json(invoice: Invoice, amounts: NoteAmounts) -> dict[str, Any]:
    cur = invoice.currency
    return {
        "lago_invoice_id": str(invoice.pk),
        "invoice_number": invoice.number,
        "currency": cur,
        "max_creditable_amount_cents": to_cents(amounts.total, cur),
        "max_refundable_amount_cents": to_cents(amounts.max_refund, cur),
        "max_offsettable_amount_cents": to_cents(amounts.max_offset, cur),
        "taxes_amount_cents": to_cents(amounts.taxes, cur),
        "taxes_rate": 0.0,
        "sub_total_excluding_taxes_amount_cents": to_cents(amounts.sub_total, cur),
        "coupons_adjustment_amount_cents": to_cents(amounts.coupons_adjustment, cur),
        "items": [{"amount_cents": to_cents(amount, cur), "lago_fee_id": str(fee.pk)} for fee, amount in amounts.items],
        "applied_taxes": [],
    }


# --- schema: what they answer ---------------------------------------------------------------


class CreditNoteItemOutput(serializers.Serializer[Any]):
    lago_id = serializers.CharField()
    amount_cents = serializers.IntegerField()
    amount_currency = serializers.CharField()
    fee = FeeOutput(help_text="The fee credited, as the invoice's `fees[]` shows it.")


def _metadata_output(**kwargs: Any) -> serializers.DictField:
    return serializers.DictField(child=serializers.CharField(allow_null=True), **kwargs)


class CreditNoteOutput(serializers.Serializer[Any]):
    """Lago's CreditNoteResponse, and our own `description` and `total`."""

    lago_id = serializers.CharField()
    sequential_id = serializers.IntegerField(help_text="n of its number, <invoice number>-CN<n>.")
    billing_entity_code = serializers.CharField(allow_null=True, help_text="Always null: one billing entity.")
    number = serializers.CharField()
    lago_invoice_id = serializers.CharField()
    invoice_number = serializers.CharField()
    issuing_date = serializers.DateField(help_text="The customer's day it was issued.")
    credit_status = serializers.ChoiceField(choices=CreditStatus.values)
    refund_status = serializers.ChoiceField(choices=RefundStatus.values, allow_null=True, help_text="null: no refund.")
    reason = serializers.ChoiceField(choices=CreditNoteReason.values)
    description = serializers.CharField(allow_null=True)
    currency = serializers.CharField()
    total_amount_cents = serializers.IntegerField()
    credit_amount_cents = serializers.IntegerField()
    balance_amount_cents = serializers.IntegerField(help_text="Credit not yet consumed.")
    refund_amount_cents = serializers.IntegerField()
    offset_amount_cents = serializers.IntegerField()
    taxes_amount_cents = serializers.IntegerField()
    taxes_rate = serializers.FloatField()
    sub_total_excluding_taxes_amount_cents = serializers.IntegerField()
    coupons_adjustment_amount_cents = serializers.IntegerField()
    file_url = serializers.URLField(help_text="A signed link to the PDF.")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    refunded_at = serializers.DateTimeField(allow_null=True)
    voided_at = serializers.DateTimeField(allow_null=True)
    items = CreditNoteItemOutput(many=True)
    applied_taxes = serializers.ListField(child=serializers.DictField(), help_text="Always empty: no taxes yet.")
    metadata = _metadata_output()
    customer = CustomerOutput()
    total = serializers.CharField(help_text='A decimal string: "50.00".')


class CreditNoteOutputEnvelope(serializers.Serializer[Any]):
    credit_note = CreditNoteOutput()


class CreditNoteListEnvelope(serializers.Serializer[Any]):
    credit_notes = CreditNoteOutput(many=True)
    meta = PageMeta()


class EstimatedItemOutput(serializers.Serializer[Any]):
    amount_cents = serializers.IntegerField()
    lago_fee_id = serializers.CharField()


class EstimatedCreditNoteOutput(serializers.Serializer[Any]):
    """Lago's CreditNoteEstimatedResponse."""

    lago_invoice_id = serializers.CharField()
    invoice_number = serializers.CharField()
    currency = serializers.CharField()
    max_creditable_amount_cents = serializers.IntegerField(help_text="The note's total with these items.")
    max_refundable_amount_cents = serializers.IntegerField()
    max_offsettable_amount_cents = serializers.IntegerField()
    taxes_amount_cents = serializers.IntegerField()
    taxes_rate = serializers.FloatField()
    sub_total_excluding_taxes_amount_cents = serializers.IntegerField()
    coupons_adjustment_amount_cents = serializers.IntegerField()
    items = EstimatedItemOutput(many=True)
    applied_taxes = serializers.ListField(child=serializers.DictField(), help_text="Always empty: no taxes yet.")


class EstimateOutputEnvelope(serializers.Serializer[Any]):
    estimated_credit_note = EstimatedCreditNoteOutput()
