"""Wallets (DESIGN §6 "Wallets"; Lago's wallets and wallet transactions): prepaid credits.

A customer has at most one active wallet per currency (a database constraint; Lago allows
several, by priority). A credit is worth `rate_amount`; the balance is kept in money and in
credits together, never below zero (constraints). Every movement is a WalletTransaction,
announced as `wallet_transaction.created` in its own database transaction:
- purchased (inbound, `paid_credits`): a `credit` invoice of credits × rate, finalized and
  numbered at once, not taxed (wallet credit is applied after tax); the transaction stays
  pending until that invoice is paid, then settles into the balance in the payment's own
  transaction (billing.services.payments.settle calls `wallet_purchase_settle`);
- granted (inbound, `granted_credits`): settled at once;
- voided (outbound, `voided_credits`, at most the balance; the whole balance when the wallet is
  terminated or expires);
- invoiced (outbound): what an invoice's prepaid_credits line took when it was finalized (once per
  wallet and invoice, a constraint), given back (inbound) if that invoice is voided (once per
  voided invoice).

Locks: every change here takes the customer's row lock, then the wallet's, as finalizing an
invoice does (customer, then the wallet it consumes), so two changes of one balance run one after
the other and neither can deadlock the other; a payment or a void holds the invoice's lock and
then takes the wallet's, after which nothing else is locked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from billing.engine.lines import Line
from billing.engine.money import ZERO, format_decimal, quantize_money
from billing.engine.vocabulary import (
    InvoiceKind,
    LineKind,
    WalletStatus,
    WalletTransactionKind,
    WalletTransactionStatus,
    WalletTransactionType,
    WebhookType,
)
from billing.models import Invoice, InvoiceLine, Wallet, WalletTransaction
from billing.selectors.wallets import CREDIT_PLACES, credits_of
from billing.services.errors import FieldErrors
from billing.services.invoice_events import invoice_finalized
from billing.services.numbering import assign_number
from billing.services.webhooks import announce
from customers.models import Customer
from metering.days import day_start, local_date

# Error messages are constants so tests can match them.
NOT_POSITIVE = "must be greater than 0"
NEGATIVE = "must not be negative"
TOO_PRECISE = "has at most 5 decimal places"
NOT_A_NUMBER = "must be a number"
RATE_TOO_LARGE = "must be less than {most}"
TOO_LARGE = "is too large: it would be more than {most} {currency}"
ROUNDS_TO_ZERO = "is worth less than the smallest {currency} amount at this rate ({rate} a credit)"
CURRENCY_NOT_CUSTOMERS = "must be the customer's currency ({currency}): a customer's wallets are in its currency"
ALREADY_ACTIVE = "customer {customer!r} already has an active {currency} wallet ({wallet}): terminate it first"
CODE_TAKEN = "is already used by another active wallet of customer {customer!r}"
NOT_IN_FUTURE = "must be in the future"
TERMINATED = "wallet {wallet} is terminated"
MORE_THAN_BALANCE = "is more than the wallet's balance ({credits} credits)"
BALANCE_TOO_LARGE = "would take the wallet's balance above {most} {currency}"
NAME_TOO_LONG = "must be at most 255 characters"

# Largest amount a wallet moves or holds: far below the columns' 16 integer digits, and small
# enough that credits × rate is computed exactly.
MOST = Decimal(10) ** 15
MOST_CREDITS = Decimal(10) ** 15
GIVEN_BACK = "Given back: invoice {number} was voided"
VOIDED_AT_TERMINATION = "Balance voided: the wallet was terminated"
VOIDED_AT_EXPIRY = "Balance voided: the wallet expired"
VOIDED_AFTER_TERMINATION = "Voided: paid after the wallet was terminated"


class WalletError(FieldErrors):
    """A wallet change refused; `errors` are messages by field, as the API returns them."""


# --- what moves a balance -------------------------------------------------------------------


def _move(wallet: Wallet, amount: Decimal) -> Decimal:
    """Add `amount` (negative: take) to the balance; returns the credits moved. The credits
    balance follows the money balance, so rounding never drifts between them."""
    wallet.balance += amount
    before = wallet.credits_balance
    wallet.credits_balance = credits_of(wallet, wallet.balance)
    return abs(wallet.credits_balance - before)


def _announce(movement: WalletTransaction) -> None:
    announce(
        webhook_type=WebhookType.WALLET_TRANSACTION_CREATED,
        object_type="wallet_transaction",
        obj=movement,
        object_id=movement.pk,
    )


def _settled(
    wallet: Wallet,
    *,
    inbound: bool,
    kind: str,
    amount: Decimal,
    now: datetime,
    name: str = "",
    metadata: list[dict[str, Any]] | None = None,
    invoice: Invoice | None = None,
    voided_invoice: Invoice | None = None,
) -> WalletTransaction:
    """Move `amount` into (inbound) or out of the locked wallet, record and announce it."""
    credits = _move(wallet, amount if inbound else -amount)
    wallet.save()
    movement = WalletTransaction.objects.create(
        wallet=wallet,
        transaction_type=WalletTransactionType.INBOUND if inbound else WalletTransactionType.OUTBOUND,
        status=WalletTransactionStatus.SETTLED,
        transaction_status=kind,
        amount=amount,
        credit_amount=credits,
        invoice=invoice,
        voided_invoice=voided_invoice,
        name=name,
        metadata=metadata or [],
        settled_at=now,
    )
    _announce(movement)
    return movement


def wallet_consumption_record(*, invoice: Invoice, lines: list[Line] | None = None) -> None:
    """At finalization: what the invoice's prepaid_credits line took of the wallet."""
    drawn = lines if lines is not None else list(invoice.lines.filter(kind=LineKind.PREPAID_CREDITS))
    now = timezone.now()
    for line in drawn:
        if line.kind != LineKind.PREPAID_CREDITS:
            continue
        wallet = Wallet.objects.select_for_update().get(pk=line.details["wallet"])
        take = -line.amount
        credits = _move(wallet, -take)
        wallet.consumed_amount += take
        wallet.consumed_credits += credits
        wallet.last_consumed_credit_at = now
        wallet.save()
        movement = WalletTransaction.objects.create(
            wallet=wallet,
            transaction_type=WalletTransactionType.OUTBOUND,
            status=WalletTransactionStatus.SETTLED,
            transaction_status=WalletTransactionKind.INVOICED,
            amount=take,
            credit_amount=credits,
            invoice=invoice,
            settled_at=now,
        )
        _announce(movement)


def wallet_consumption_reverse(*, invoice: Invoice, now: datetime) -> None:
    """A voided invoice gives its wallet credit back (to a wallet still active); a voided credit
    purchase's pending transaction fails (nothing will pay it)."""
    used = WalletTransaction.objects.filter(
        invoice=invoice, transaction_status=WalletTransactionKind.INVOICED, status=WalletTransactionStatus.SETTLED
    )
    for used_credit in used:
        wallet = Wallet.objects.select_for_update().get(pk=used_credit.wallet_id)
        if wallet.status != WalletStatus.ACTIVE:
            continue
        credits = _move(wallet, used_credit.amount)
        wallet.consumed_amount -= used_credit.amount
        wallet.consumed_credits = max(wallet.consumed_credits - credits, Decimal(0))
        wallet.save()
        movement = WalletTransaction.objects.create(
            wallet=wallet,
            transaction_type=WalletTransactionType.INBOUND,
            status=WalletTransactionStatus.SETTLED,
            transaction_status=WalletTransactionKind.GRANTED,
            amount=used_credit.amount,
            credit_amount=credits,
            voided_invoice=invoice,
            name=GIVEN_BACK.format(number=invoice.number),
            settled_at=now,
        )
        _announce(movement)
    if invoice.kind == InvoiceKind.CREDIT:
        WalletTransaction.objects.filter(
            invoice=invoice,
            transaction_status=WalletTransactionKind.PURCHASED,
            status=WalletTransactionStatus.PENDING,
        ).update(status=WalletTransactionStatus.FAILED, failed_at=now)


def wallet_purchase_settle(*, invoice: Invoice, now: datetime) -> list[WalletTransaction]:
    """A `credit` invoice (locked by the caller) is paid: its pending purchase settles into the
    wallet's balance, in the payment's transaction. Credits paid for after the wallet was
    terminated settle and are voided at once: a terminated wallet's balance stays zero (finance
    refunds them with a credit note on the purchase invoice)."""
    settled = []
    pending = WalletTransaction.objects.filter(
        invoice=invoice, transaction_status=WalletTransactionKind.PURCHASED, status=WalletTransactionStatus.PENDING
    ).order_by("id")
    for purchase in pending:
        wallet = Wallet.objects.select_for_update().get(pk=purchase.wallet_id)
        purchase.credit_amount = _move(wallet, purchase.amount)
        wallet.save()
        purchase.status = WalletTransactionStatus.SETTLED
        purchase.settled_at = now
        purchase.save(update_fields=["status", "settled_at", "credit_amount"])
        _announce(purchase)  # Lago says wallet_transaction.updated; this app announces the change as created
        settled.append(purchase)
        if wallet.status != WalletStatus.ACTIVE:
            _settled(
                wallet,
                inbound=False,
                kind=WalletTransactionKind.VOIDED,
                amount=purchase.amount,
                now=now,
                name=VOIDED_AFTER_TERMINATION,
            )
    return settled


# --- checks ---------------------------------------------------------------------------------


def _check_rate(rate_amount: Decimal) -> list[str]:
    if not rate_amount.is_finite() or rate_amount <= 0:
        return [NOT_POSITIVE]
    if rate_amount >= MOST:
        return [RATE_TOO_LARGE.format(most=MOST)]
    if rate_amount != rate_amount.quantize(CREDIT_PLACES):
        return [TOO_PRECISE]
    return []


def worth(credits: Decimal, rate_amount: Decimal, currency: str) -> Decimal:
    """What `credits` are worth in money, rounded once to the currency's minor unit."""
    return quantize_money(credits * rate_amount, currency)


def _check_credits(credits: Decimal, rate_amount: Decimal, currency: str) -> list[str]:
    """A number of credits a top-up or void may move (0: nothing)."""
    if not credits.is_finite():
        return [NOT_A_NUMBER]
    if credits < 0:
        return [NEGATIVE]
    if credits > MOST_CREDITS or credits * rate_amount > MOST:
        return [TOO_LARGE.format(most=MOST, currency=currency)]
    if credits != credits.quantize(CREDIT_PLACES):
        return [TOO_PRECISE]
    if credits > 0 and worth(credits, rate_amount, currency) == 0:
        return [ROUNDS_TO_ZERO.format(currency=currency, rate=format_decimal(rate_amount))]
    return []


def _check_name(name: str, field_name: str, errors: dict[str, list[str]]) -> None:
    if len(name) > 255:
        errors[field_name] = [NAME_TOO_LONG]


def _lock(wallet: Wallet) -> Wallet:
    """The wallet under its row lock, its customer's row locked first (see the module docstring)."""
    Customer.all_objects.select_for_update().filter(pk=wallet.customer_id).first()
    return Wallet.objects.select_for_update(of=("self",)).select_related("customer").get(pk=wallet.pk)


# --- create, update, terminate ----------------------------------------------------------------


def _code_for(customer: Customer, name: str, code: str, now: datetime, exclude: int | None = None) -> str:
    """Lago's default code: the name as a slug ("default" without one), with the time appended
    when an active wallet of the customer has it already."""
    if code:
        return code
    made = slugify(name).replace("-", "_") or "default"
    taken = Wallet.objects.filter(customer=customer, status=WalletStatus.ACTIVE, code=made)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    return f"{made}_{int(now.timestamp())}" if taken.exists() else made


@transaction.atomic
def wallet_create(
    *,
    customer: Customer,
    rate_amount: Decimal,
    now: datetime,
    name: str = "",
    code: str = "",
    currency: str | None = None,
    expiration_at: datetime | None = None,
    paid_credits: Decimal = ZERO,
    granted_credits: Decimal = ZERO,
    metadata: dict[str, str | None] | None = None,
    transaction_name: str = "",
    transaction_metadata: list[dict[str, Any]] | None = None,
) -> Wallet:
    """A new active wallet in the customer's currency, with its first top-up (paid credits
    invoiced, granted credits settled) if credits are given."""
    customer = Customer.all_objects.select_for_update().get(pk=customer.pk)
    wallet_currency = customer.currency
    errors: dict[str, list[str]] = {}
    if currency is not None and currency != wallet_currency:
        errors["currency"] = [CURRENCY_NOT_CUSTOMERS.format(currency=wallet_currency)]
    rate_errors = _check_rate(rate_amount)
    if rate_errors:
        errors["rate_amount"] = rate_errors
    else:
        for field_name, credits in (("paid_credits", paid_credits), ("granted_credits", granted_credits)):
            credit_errors = _check_credits(credits, rate_amount, wallet_currency)
            if credit_errors:
                errors[field_name] = credit_errors
    if expiration_at is not None and expiration_at <= now:
        errors["expiration_at"] = [NOT_IN_FUTURE]
    _check_name(name, "name", errors)
    _check_name(code, "code", errors)
    _check_name(transaction_name, "transaction_name", errors)
    active = Wallet.objects.filter(customer=customer, currency=wallet_currency, status=WalletStatus.ACTIVE).first()
    if active is not None:
        errors["currency"] = [
            ALREADY_ACTIVE.format(customer=customer.external_id, currency=wallet_currency, wallet=active.pk)
        ]
    if code and Wallet.objects.filter(customer=customer, status=WalletStatus.ACTIVE, code=code).exists():
        errors["code"] = [CODE_TAKEN.format(customer=customer.external_id)]
    if errors:
        raise WalletError(errors)
    try:
        with transaction.atomic():  # the database's rule, should a writer without the lock get there first
            wallet = Wallet.objects.create(
                customer=customer,
                currency=wallet_currency,
                name=name,
                code=_code_for(customer, name, code, now),
                rate_amount=rate_amount,
                expiration_at=expiration_at,
                metadata=metadata or {},
            )
    except IntegrityError:
        raise WalletError(
            {"currency": [ALREADY_ACTIVE.format(customer=customer.external_id, currency=wallet_currency, wallet="?")]}
        ) from None
    if paid_credits > 0 or granted_credits > 0:
        _top_up(
            wallet,
            paid_credits=paid_credits,
            granted_credits=granted_credits,
            voided_credits=ZERO,
            name=transaction_name,
            metadata=transaction_metadata,
            now=now,
        )
    return wallet


_UNSET: Any = object()


@transaction.atomic
def wallet_update(
    *,
    wallet: Wallet,
    now: datetime,
    name: str | None = None,
    code: str | None = None,
    expiration_at: datetime | None = _UNSET,
    metadata: dict[str, str | None] | None = None,
) -> Wallet:
    """Lago's update of an active wallet: its name, code, expiry (in the future, or None: no
    expiry) and metadata (replaced). Arguments left out do not change."""
    wallet = _lock(wallet)
    if wallet.status != WalletStatus.ACTIVE:
        raise WalletError({"wallet_id": [TERMINATED.format(wallet=wallet.pk)]})
    errors: dict[str, list[str]] = {}
    if name is not None:
        _check_name(name, "name", errors)
    if code is not None:
        _check_name(code, "code", errors)
        taken = Wallet.objects.filter(customer_id=wallet.customer_id, status=WalletStatus.ACTIVE, code=code)
        if code and taken.exclude(pk=wallet.pk).exists():
            errors["code"] = [CODE_TAKEN.format(customer=wallet.customer.external_id)]
    if expiration_at is not _UNSET and expiration_at is not None and expiration_at <= now:
        errors["expiration_at"] = [NOT_IN_FUTURE]
    if errors:
        raise WalletError(errors)
    if name is not None:
        wallet.name = name
    if code:  # Lago: a blank code leaves it as it is
        wallet.code = code
    if expiration_at is not _UNSET:
        wallet.expiration_at = expiration_at
    if metadata is not None:
        wallet.metadata = metadata
    wallet.save()
    return wallet


def _void_balance(wallet: Wallet, now: datetime, name: str) -> None:
    if wallet.balance > 0:
        _settled(wallet, inbound=False, kind=WalletTransactionKind.VOIDED, amount=wallet.balance, now=now, name=name)


@transaction.atomic
def wallet_terminate(*, wallet: Wallet, now: datetime, expired: bool = False) -> Wallet:
    """Terminate the wallet: its balance is voided (an outbound `voided` transaction) and no
    invoice uses it again. Terminating a terminated wallet changes nothing (as Lago). A purchase
    still pending stays so: if its invoice is paid later, see `wallet_purchase_settle`."""
    wallet = _lock(wallet)
    if wallet.status != WalletStatus.ACTIVE:
        return wallet
    if expired and (wallet.expiration_at is None or wallet.expiration_at > now):
        return wallet  # its expiry was moved (or removed) since it was found due: not expired
    _void_balance(wallet, now, VOIDED_AT_EXPIRY if expired else VOIDED_AT_TERMINATION)
    wallet.status = WalletStatus.TERMINATED
    wallet.terminated_at = now
    wallet.save()
    return wallet


# --- top-ups and voids ----------------------------------------------------------------------


def _purchase(
    wallet: Wallet, credits: Decimal, name: str, metadata: list[dict[str, Any]] | None, now: datetime
) -> WalletTransaction:
    """Paid credits: a `credit` invoice of credits × rate, finalized at once (not taxed), and a
    pending inbound transaction that settles when the invoice is paid."""
    customer = wallet.customer
    amount = worth(credits, wallet.rate_amount, wallet.currency)
    day = local_date(now, customer.timezone)
    period_start = day_start(day, customer.timezone)
    period_end = day_start(day + timedelta(days=1), customer.timezone)
    invoice = Invoice(
        customer=customer,
        subscription=None,
        kind=InvoiceKind.CREDIT,
        period_start=period_start,
        period_end=period_end,
        currency=wallet.currency,
        total=amount,
    )
    # Numbered last thing before the INSERTs, as every finalization: the sequence's row stays
    # locked until commit.
    assign_number(invoice=invoice, now=now)
    purchase = WalletTransaction.objects.create(
        wallet=wallet,
        transaction_type=WalletTransactionType.INBOUND,
        status=WalletTransactionStatus.PENDING,
        transaction_status=WalletTransactionKind.PURCHASED,
        amount=amount,
        credit_amount=credits_of(wallet, amount),
        invoice=invoice,
        name=name,
        metadata=metadata or [],
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        position=0,
        kind=LineKind.CREDIT_PURCHASE,
        description=name or f"Prepaid credits: {format_decimal(credits)} at {format_decimal(wallet.rate_amount)}",
        quantity=credits,
        unit_amount=wallet.rate_amount,
        amount=amount,
        currency=wallet.currency,
        period_start=period_start,
        period_end=period_end,
        details={"wallet": wallet.pk, "wallet_transaction": purchase.pk},
    )
    invoice_finalized(invoice=invoice)
    _announce(purchase)
    return purchase


def _top_up(
    wallet: Wallet,
    *,
    paid_credits: Decimal,
    granted_credits: Decimal,
    voided_credits: Decimal,
    name: str,
    metadata: list[dict[str, Any]] | None,
    now: datetime,
) -> list[WalletTransaction]:
    """The movements of one request on the locked wallet, in Lago's order: paid, granted, voided."""
    made = []
    if paid_credits > 0:
        made.append(_purchase(wallet, paid_credits, name, metadata, now))
    if granted_credits > 0:
        amount = worth(granted_credits, wallet.rate_amount, wallet.currency)
        made.append(
            _settled(
                wallet,
                inbound=True,
                kind=WalletTransactionKind.GRANTED,
                amount=amount,
                now=now,
                name=name,
                metadata=metadata,
            )
        )
    if voided_credits > 0:
        whole = voided_credits == wallet.credits_balance
        amount = (
            wallet.balance if whole else min(worth(voided_credits, wallet.rate_amount, wallet.currency), wallet.balance)
        )
        made.append(
            _settled(
                wallet,
                inbound=False,
                kind=WalletTransactionKind.VOIDED,
                amount=amount,
                now=now,
                name=name,
                metadata=metadata,
            )
        )
    return made


@transaction.atomic
def wallet_transaction_create(
    *,
    wallet: Wallet,
    now: datetime,
    paid_credits: Decimal = ZERO,
    granted_credits: Decimal = ZERO,
    voided_credits: Decimal = ZERO,
    name: str = "",
    metadata: list[dict[str, Any]] | None = None,
) -> list[WalletTransaction]:
    """Lago's POST /wallet_transactions: buy, grant and void credits on an active wallet; returns
    the transactions made (paid, granted, voided: those greater than zero)."""
    wallet = _lock(wallet)
    if wallet.status != WalletStatus.ACTIVE:
        raise WalletError({"wallet_id": [TERMINATED.format(wallet=wallet.pk)]})
    errors: dict[str, list[str]] = {}
    given = (("paid_credits", paid_credits), ("granted_credits", granted_credits), ("voided_credits", voided_credits))
    for field_name, credits in given:
        credit_errors = _check_credits(credits, wallet.rate_amount, wallet.currency)
        if credit_errors:
            errors[field_name] = credit_errors
    _check_name(name, "name", errors)
    if "voided_credits" not in errors and voided_credits > wallet.credits_balance:
        errors["voided_credits"] = [MORE_THAN_BALANCE.format(credits=format_decimal(wallet.credits_balance))]
    if "granted_credits" not in errors and granted_credits > 0:
        after = wallet.balance + worth(granted_credits, wallet.rate_amount, wallet.currency)
        if after > MOST:
            errors["granted_credits"] = [BALANCE_TOO_LARGE.format(most=MOST, currency=wallet.currency)]
    if errors:
        raise WalletError(errors)
    return _top_up(
        wallet,
        paid_credits=paid_credits,
        granted_credits=granted_credits,
        voided_credits=voided_credits,
        name=name,
        metadata=metadata,
        now=now,
    )


# --- the clock ------------------------------------------------------------------------------


@dataclass
class ExpiryReport:
    expired: list[int] = field(default_factory=list)  # wallet ids
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.expired)} wallets expired, {len(self.errors)} errors"


def wallets_expire(*, now: datetime) -> ExpiryReport:
    """Terminate every active wallet whose expiration_at has come, voiding its balance (Lago's
    clock job); each in its own transaction, so one failure does not hold the others back."""
    report = ExpiryReport()
    due = Wallet.objects.filter(status=WalletStatus.ACTIVE, expiration_at__lte=now).order_by("expiration_at", "id")
    for wallet in due:
        try:
            done = wallet_terminate(wallet=wallet, now=now, expired=True)
        except Exception as exc:  # reported, and tried again on the next run
            report.errors.append(f"wallet {wallet.pk}: {exc}")
            continue
        if done.terminated_at == now:
            report.expired.append(wallet.pk)
    return report
