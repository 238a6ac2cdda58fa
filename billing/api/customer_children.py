"""GET /api/v1/customers/<external_id>/invoices, /credit_notes and /payments: Lago's customer-scoped
lists (lago-python-client's CustomerInvoicesClient, CustomerCreditNotesClient and
CustomerPaymentsClient).

Each answers exactly what its top-level list answers with `external_customer_id=<external_id>`:
the same function builds both, so every other filter and the pagination apply as there. The
path's customer wins over an `external_customer_id` in the query string (as Lago's scoped
controllers do), so one customer's list never shows another's rows. An unknown customer is
Lago's 404 customer_not_found, before any query parameter is read.
"""

from __future__ import annotations

from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api import credit_notes, invoices, payments
from billing.api.credit_note_json import CreditNoteListEnvelope
from billing.api.invoices import InvoiceListEnvelope
from billing.api.payments import PaymentListEnvelope
from config.api import ApiView, not_found
from customers.models import Customer


def _scoped(params: QueryDict, external_id: str) -> QueryDict | None:
    """The query parameters with the path's customer as `external_customer_id`; None when there
    is no such customer."""
    if not Customer.objects.filter(external_id=external_id).exists():
        return None
    scoped = params.copy()  # a request's QueryDict is immutable
    scoped.pop("customer_external_id", None)  # Lago's alias of the invoice list: the path wins too
    scoped["external_customer_id"] = external_id
    return scoped


def _without_customer(parameters: list[OpenApiParameter]) -> list[OpenApiParameter]:
    """The top-level list's parameters but `external_customer_id`, which the path gives."""
    return [parameter for parameter in parameters if parameter.name != "external_customer_id"]


class CustomerInvoicesView(ApiView):
    @extend_schema(
        operation_id="list_customer_invoices",
        summary="List a customer's invoices, as list_invoices with external_customer_id",
        parameters=_without_customer(invoices.LIST_PARAMETERS),
        responses={200: InvoiceListEnvelope},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = _scoped(request.query_params, external_id)
        if params is None:
            return not_found("customer")
        return invoices.invoice_list(request, params)


class CustomerCreditNotesView(ApiView):
    @extend_schema(
        operation_id="list_customer_credit_notes",
        summary="List a customer's credit notes, as list_credit_notes with external_customer_id",
        parameters=_without_customer(credit_notes.LIST_PARAMETERS),
        responses={200: CreditNoteListEnvelope},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = _scoped(request.query_params, external_id)
        if params is None:
            return not_found("customer")
        return credit_notes.credit_note_list(request, params)


class CustomerPaymentsView(ApiView):
    @extend_schema(
        operation_id="list_customer_payments",
        summary="List a customer's payments, as list_payments with external_customer_id",
        parameters=_without_customer(payments.LIST_PARAMETERS),
        responses={200: PaymentListEnvelope},
    )
    def get(self, request: Request, external_id: str) -> Response:
        params = _scoped(request.query_params, external_id)
        if params is None:
            return not_found("customer")
        return payments.payment_list(request, params)
