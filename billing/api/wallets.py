"""The wallets API (DESIGN §6 "Wallets"; lago-python-client 1.55's WalletClient,
WalletTransactionClient, CustomerWalletsClient and CustomerWalletClient):

- `POST /wallets`, `GET /wallets[?external_customer_id=&currency=]` (paginated; an unknown
  customer is 404 customer_not_found, as Lago), `GET`/`PUT /wallets/<lago_id>`,
  `DELETE /wallets/<lago_id>` (terminate: the balance is voided), and the metadata routes
  `POST`/`PATCH`/`DELETE /wallets/<lago_id>/metadata`, `DELETE …/metadata/<key>`;
- `POST /wallet_transactions` ({"wallet_transaction": {"wallet_id", "paid_credits",
  "granted_credits", "voided_credits", …}}) answers the transactions it made (Lago's list), and
  `GET /wallets/<lago_id>/wallet_transactions[?status=&transaction_type=&transaction_status=]`;
- the customer-scoped routes, a wallet named by its code: `GET`/`POST /customers/<external_id>/
  wallets`, `GET`/`PUT`/`DELETE …/wallets/<code>` and their metadata routes.
Inputs are billing.api.wallet_inputs, answers billing.api.wallet_json, rules
billing.services.wallets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.response import Response

from billing.api.list_params import NO_BILLING_ENTITIES, list_params_errors, metadata_pairs, values_of, with_metadata
from billing.api.metadata import (
    MetadataEnvelope,
    MetadataOutputEnvelope,
    change_metadata,
    clear,
    delete_metadata_key,
    merge,
    replace,
)
from billing.api.wallet_inputs import (
    CREATE_ONLY,
    WalletEnvelope,
    WalletTransactionEnvelope,
    WalletUpdateEnvelope,
)
from billing.api.wallet_json import (
    WalletListEnvelope,
    WalletOutputEnvelope,
    WalletTransactionListEnvelope,
    WalletTransactionListOutput,
    transactions_for_json,
    wallet_json,
    wallet_transaction_json,
    wallets_for_json,
)
from billing.engine.money import ZERO
from billing.engine.vocabulary import WalletTransactionKind, WalletTransactionStatus, WalletTransactionType
from billing.models import Wallet, WalletTransaction
from billing.services.wallets import (
    WalletError,
    wallet_create,
    wallet_terminate,
    wallet_transaction_create,
    wallet_update,
)
from config.api import (
    ApiView,
    envelope_errors,
    not_found,
    object_id,
    page_numbers,
    paginated,
    unknown_filters,
    validation_error,
)
from customers.models import Customer

UNKNOWN_CUSTOMER = "unknown customer {ref!r}"
UNKNOWN_WALLET = "unknown wallet {ref!r}"
CUSTOMER_REQUIRED = "is required"
BAD_CHOICE = "must be one of: {choices}"

PAGES = [OpenApiParameter("page", int), OpenApiParameter("per_page", int)]
LIST_PARAMETERS = [
    OpenApiParameter("external_customer_id", str, description="Only this customer's wallets (404 if unknown)."),
    OpenApiParameter("currency", str, description="Only wallets in this currency."),
    *PAGES,
]
TRANSACTION_FILTERS = {
    "status": WalletTransactionStatus.values,
    "transaction_type": WalletTransactionType.values,
    "transaction_status": WalletTransactionKind.values,
}
# Lago's filters (WalletsController#index, WalletTransactionsQuery); `metadata[key]=value` keeps
# the transactions with that pair (Lago skips a key given without a value).
WALLET_FILTERS = ("external_customer_id", "currency", "billing_entity_codes")
TRANSACTION_LIST_FILTERS = (*TRANSACTION_FILTERS, "metadata[key]")
TRANSACTION_PARAMETERS = [OpenApiParameter(name, str, enum=values) for name, values in TRANSACTION_FILTERS.items()]
TRANSACTION_PARAMETERS += PAGES

WalletFinder = Callable[[], Wallet | None]


def _by_id(lago_id: str) -> Wallet | None:
    pk = object_id(lago_id)
    return Wallet.objects.filter(pk=pk).first() if pk is not None else None


def _by_code(external_id: str, code: str) -> Wallet | None:
    """The customer's wallet with that code: the active one, else the latest terminated one."""
    return (
        Wallet.objects.filter(customer__external_id=external_id, customer__deleted_at__isnull=True, code=code)
        .order_by("status", "-created_at", "-id")  # "active" sorts before "terminated"
        .first()
    )


def _answer(wallet: Wallet) -> Response:
    return Response({"wallet": wallet_json(wallets_for_json().get(pk=wallet.pk))})


def _transactions_answer(made: list[Any]) -> Response:
    rows = {row.pk: row for row in transactions_for_json().filter(pk__in=[m.pk for m in made])}
    return Response({"wallet_transactions": [wallet_transaction_json(rows[m.pk]) for m in made]})


# --- the shared steps -------------------------------------------------------------------------


def _create(request: Request, external_id: str | None) -> Response:
    """Create a wallet for the customer in the body (or the path's, `external_id`)."""
    envelope = WalletEnvelope(data=request.data)
    if not envelope.is_valid():
        return validation_error(envelope_errors(envelope.errors, "wallet"))
    data = envelope.validated_data["wallet"]
    ref = external_id or data.get("external_customer_id")
    if not ref:
        return validation_error({"external_customer_id": [CUSTOMER_REQUIRED]})
    customer = Customer.objects.filter(external_id=ref).first()
    if customer is None:
        return validation_error({"external_customer_id": [UNKNOWN_CUSTOMER.format(ref=ref)]})
    try:
        wallet = wallet_create(
            customer=customer,
            rate_amount=data["rate_amount"],
            name=data.get("name") or "",
            code=data.get("code") or "",
            currency=data.get("currency"),
            expiration_at=data.get("expiration_at"),
            paid_credits=data.get("paid_credits") or ZERO,
            granted_credits=data.get("granted_credits") or ZERO,
            metadata=data.get("metadata"),
            transaction_name=data.get("transaction_name") or "",
            transaction_metadata=data.get("transaction_metadata"),
            now=timezone.now(),
        )
    except WalletError as exc:
        return validation_error(exc.errors)
    return _answer(wallet)


def _update(request: Request, find: WalletFinder) -> Response:
    wallet = find()
    if wallet is None:
        return not_found("wallet")
    envelope = WalletUpdateEnvelope(data=request.data)
    if not envelope.is_valid():
        return validation_error(envelope_errors(envelope.errors, "wallet"))
    data = envelope.validated_data["wallet"]
    repeated = {
        "external_customer_id": wallet.customer.external_id,
        "currency": wallet.currency,
        "rate_amount": wallet.rate_amount,
    }
    changed = [name for name, current in repeated.items() if data.get(name) is not None and data[name] != current]
    if changed:
        return validation_error({name: [CREATE_ONLY] for name in changed})
    # As Lago: what is sent changes (a null name or metadata empties it), a blank code does not.
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = data["name"] or ""
    if data.get("code"):
        changes["code"] = data["code"]
    if "metadata" in data:
        changes["metadata"] = data["metadata"] or {}
    if "expiration_at" in data:
        changes["expiration_at"] = data["expiration_at"]
    try:
        wallet = wallet_update(wallet=wallet, now=timezone.now(), **changes)
    except WalletError as exc:
        return validation_error(exc.errors)
    return _answer(wallet)


def _terminate(find: WalletFinder) -> Response:
    wallet = find()
    if wallet is None:
        return not_found("wallet")
    return _answer(wallet_terminate(wallet=wallet, now=timezone.now()))


def _show(find: WalletFinder) -> Response:
    wallet = find()
    if wallet is None:
        return not_found("wallet")
    return _answer(wallet)


def wallet_list(params: QueryDict, rows: QuerySet[Wallet] | None = None) -> Response:
    paging = page_numbers(params)
    errors = (paging if isinstance(paging, dict) else {}) | unknown_filters(params, WALLET_FILTERS)
    if values_of(params, "billing_entity_codes"):
        errors["billing_entity_codes"] = [NO_BILLING_ENTITIES]
    if errors or isinstance(paging, dict):
        return validation_error(errors)
    rows = rows if rows is not None else wallets_for_json()
    ref = params.get("external_customer_id")
    if ref is not None:
        customer = Customer.objects.filter(external_id=ref).first()
        if customer is None:
            return not_found("customer")
        rows = rows.filter(customer=customer)
    if params.get("currency"):
        rows = rows.filter(currency=params["currency"])
    page, per_page = paging
    now = timezone.now()
    return Response(
        paginated("wallets", rows.order_by("-created_at", "-id"), page, per_page, lambda w: wallet_json(w, now))
    )


# --- /wallets ---------------------------------------------------------------------------------


class WalletsView(ApiView):
    @extend_schema(
        operation_id="create_wallet",
        summary="Create a customer's wallet (one active per currency), with paid and granted credits",
        request=WalletEnvelope,
        responses={200: WalletOutputEnvelope},
    )
    def post(self, request: Request) -> Response:
        return _create(request, None)

    @extend_schema(
        operation_id="list_wallets",
        summary="List wallets, newest first, paginated",
        parameters=LIST_PARAMETERS,
        responses={200: WalletListEnvelope},
    )
    def get(self, request: Request) -> Response:
        return wallet_list(request.query_params)


class WalletDetailView(ApiView):
    @extend_schema(operation_id="find_wallet", summary="Fetch one wallet", responses={200: WalletOutputEnvelope})
    def get(self, request: Request, lago_id: str) -> Response:
        return _show(lambda: _by_id(lago_id))

    @extend_schema(
        operation_id="update_wallet",
        summary="Change an active wallet's name, code, expiry or metadata",
        request=WalletUpdateEnvelope,
        responses={200: WalletOutputEnvelope},
    )
    def put(self, request: Request, lago_id: str) -> Response:
        return _update(request, lambda: _by_id(lago_id))

    @extend_schema(
        operation_id="terminate_wallet",
        summary="Terminate a wallet: its balance is voided",
        responses={200: WalletOutputEnvelope},
    )
    def delete(self, request: Request, lago_id: str) -> Response:
        return _terminate(lambda: _by_id(lago_id))


class WalletMetadataView(ApiView):
    """POST replaces (no metadata sent: empties it), PATCH merges, DELETE removes all of it."""

    @extend_schema(
        operation_id="replace_wallet_metadata",
        request=MetadataEnvelope,
        responses={200: MetadataOutputEnvelope},
    )
    def post(self, request: Request, lago_id: str) -> Response:
        return change_metadata(request, _by_id(lago_id), "wallet", replace)

    @extend_schema(
        operation_id="merge_wallet_metadata",
        request=MetadataEnvelope,
        responses={200: MetadataOutputEnvelope},
    )
    def patch(self, request: Request, lago_id: str) -> Response:
        return change_metadata(request, _by_id(lago_id), "wallet", merge)

    @extend_schema(operation_id="delete_wallet_metadata", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, lago_id: str) -> Response:
        return change_metadata(request, _by_id(lago_id), "wallet", clear)


class WalletMetadataKeyView(ApiView):
    @extend_schema(operation_id="delete_wallet_metadata_key", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, lago_id: str, key: str) -> Response:
        return delete_metadata_key(_by_id(lago_id), "wallet", key)


# --- /wallet_transactions ---------------------------------------------------------------------


class WalletTransactionsView(ApiView):
    @extend_schema(
        operation_id="create_wallet_transactions",
        summary="Buy (a credit invoice), grant and void credits; answers the transactions made",
        request=WalletTransactionEnvelope,
        responses={200: WalletTransactionListOutput},
    )
    def post(self, request: Request) -> Response:
        envelope = WalletTransactionEnvelope(data=request.data)
        if not envelope.is_valid():
            return validation_error(envelope_errors(envelope.errors, "wallet_transaction"))
        data = envelope.validated_data["wallet_transaction"]
        wallet = _by_id(data["wallet_id"])
        if wallet is None:
            return validation_error({"wallet_id": [UNKNOWN_WALLET.format(ref=data["wallet_id"])]})
        try:
            made = wallet_transaction_create(
                wallet=wallet,
                paid_credits=data.get("paid_credits") or ZERO,
                granted_credits=data.get("granted_credits") or ZERO,
                voided_credits=data.get("voided_credits") or ZERO,
                name=data.get("name") or "",
                metadata=data.get("metadata"),
                now=timezone.now(),
            )
        except WalletError as exc:
            return validation_error(exc.errors)
        return _transactions_answer(made)


class WalletTransactionListView(ApiView):
    @extend_schema(
        operation_id="list_wallet_transactions",
        summary="A wallet's transactions, newest first, paginated",
        parameters=TRANSACTION_PARAMETERS,
        responses={200: WalletTransactionListEnvelope},
    )
    def get(self, request: Request, lago_id: str) -> Response:
        wallet = _by_id(lago_id)
        if wallet is None:
            return not_found("wallet")
        params = request.query_params
        paging = page_numbers(params)
        errors = (dict(paging) if isinstance(paging, dict) else {}) | list_params_errors(
            params, TRANSACTION_LIST_FILTERS
        )
        rows = transactions_for_json().filter(wallet=wallet)
        for name, values in TRANSACTION_FILTERS.items():
            value = params.get(name)
            if not value:
                continue
            if value not in values:
                errors[name] = [BAD_CHOICE.format(choices=", ".join(values))]
            else:
                rows = rows.filter(**{name: value})
        if errors or isinstance(paging, dict):
            return validation_error(errors)
        rows = with_metadata(rows, {key: value for key, value in metadata_pairs(params).items() if value})
        page, per_page = paging
        return Response(
            paginated(
                "wallet_transactions", rows.order_by("-created_at", "-id"), page, per_page, wallet_transaction_json
            )
        )


# --- /customers/<external_id>/wallets ---------------------------------------------------------


def _customer_exists(external_id: str) -> bool:
    return Customer.objects.filter(external_id=external_id).exists()


class CustomerWalletsView(ApiView):
    @extend_schema(
        operation_id="list_customer_wallets",
        summary="List a customer's wallets, as list_wallets with external_customer_id",
        parameters=[LIST_PARAMETERS[1], *PAGES],
        responses={200: WalletListEnvelope},
    )
    def get(self, request: Request, external_id: str) -> Response:
        if not _customer_exists(external_id):
            return not_found("customer")
        params = request.query_params.copy()
        params["external_customer_id"] = external_id  # the path's customer wins
        return wallet_list(params)

    @extend_schema(
        operation_id="create_customer_wallet",
        summary="Create a wallet for this customer, as create_wallet",
        request=WalletEnvelope,
        responses={200: WalletOutputEnvelope},
    )
    def post(self, request: Request, external_id: str) -> Response:
        if not _customer_exists(external_id):
            return not_found("customer")
        return _create(request, external_id)


class CustomerWalletView(ApiView):
    """One of the customer's wallets, by its code."""

    @extend_schema(
        operation_id="find_customer_wallet", summary="Fetch a customer's wallet", responses={200: WalletOutputEnvelope}
    )
    def get(self, request: Request, external_id: str, code: str) -> Response:
        if not _customer_exists(external_id):
            return not_found("customer")
        return _show(lambda: _by_code(external_id, code))

    @extend_schema(
        operation_id="update_customer_wallet",
        summary="Change a customer's wallet, as update_wallet",
        request=WalletUpdateEnvelope,
        responses={200: WalletOutputEnvelope},
    )
    def put(self, request: Request, external_id: str, code: str) -> Response:
        if not _customer_exists(external_id):
            return not_found("customer")
        return _update(request, lambda: _by_code(external_id, code))

    @extend_schema(
        operation_id="terminate_customer_wallet",
        summary="Terminate a customer's wallet: its balance is voided",
        responses={200: WalletOutputEnvelope},
    )
    def delete(self, request: Request, external_id: str, code: str) -> Response:
        if not _customer_exists(external_id):
            return not_found("customer")
        return _terminate(lambda: _by_code(external_id, code))


class CustomerWalletMetadataView(ApiView):
    @extend_schema(
        operation_id="replace_customer_wallet_metadata",
        request=MetadataEnvelope,
        responses={200: MetadataOutputEnvelope},
    )
    def post(self, request: Request, external_id: str, code: str) -> Response:
        return change_metadata(request, _by_code(external_id, code), "wallet", replace)

    @extend_schema(
        operation_id="merge_customer_wallet_metadata",
        request=MetadataEnvelope,
        responses={200: MetadataOutputEnvelope},
    )
    def patch(self, request: Request, external_id: str, code: str) -> Response:
        return change_metadata(request, _by_code(external_id, code), "wallet", merge)

    @extend_schema(operation_id="delete_customer_wallet_metadata", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, external_id: str, code: str) -> Response:
        return change_metadata(request, _by_code(external_id, code), "wallet", clear)


class CustomerWalletMetadataKeyView(ApiView):
    @extend_schema(operation_id="delete_customer_wallet_metadata_key", responses={200: MetadataOutputEnvelope})
    def delete(self, request: Request, external_id: str, code: str, key: str) -> Response:
        return delete_metadata_key(_by_code(external_id, code), "wallet", key)


# --- /wallet_transactions/<lago_id>/consumptions and /fundings --------------------------------

NOT_TRACEABLE = (
    "is not traceable: a wallet here has one balance, granted and paid credits alike, so no consumption "
    "is tied to the transaction that funded it (Lago's not_traceable)"
)


class WalletTransactionTraceView(ApiView):
    """Lago's consumptions (of an inbound transaction) and fundings (of an outbound one) list which
    inbound credits paid for which consumption, on wallets Lago calls traceable. Ours keep one
    balance (billing.models.wallets), so every wallet answers as Lago's non-traceable ones: 422 on
    `wallet`, after the 404 of an unknown transaction."""

    def untraceable(self, lago_id: str) -> Response:
        pk = object_id(lago_id)
        if pk is None or not WalletTransaction.objects.filter(pk=pk).exists():
            return not_found("wallet_transaction")
        return validation_error({"wallet": [ErrorDetail(NOT_TRACEABLE, code="not_traceable")]})


class WalletTransactionConsumptionsView(WalletTransactionTraceView):
    @extend_schema(
        operation_id="list_wallet_transaction_consumptions",
        summary="Consumptions of an inbound wallet transaction: 422, wallets here are not traceable",
        responses={200: None},
    )
    def get(self, request: Request, lago_id: str) -> Response:
        return self.untraceable(lago_id)


class WalletTransactionFundingsView(WalletTransactionTraceView):
    @extend_schema(
        operation_id="list_wallet_transaction_fundings",
        summary="Fundings of an outbound wallet transaction: 422, wallets here are not traceable",
        responses={200: None},
    )
    def get(self, request: Request, lago_id: str) -> Response:
        return self.untraceable(lago_id)
