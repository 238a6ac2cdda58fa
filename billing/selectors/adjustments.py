"""What steps 4, 5 and 7 of an invoice read (DESIGN §6): the customer's applied coupons, the taxes
that apply to it, and its wallet; as the pure engine takes them (billing.engine.adjustments).

`lock`: the invoice is being finalized under the customer's lock; the applied coupons and the
wallet it may consume are locked too, as their balances move with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q
from django.db.models.query import RawQuerySet
from django.utils import timezone

from billing.engine.adjustments import CouponCredit, TaxRate, WalletCredit
from billing.engine.vocabulary import CouponFrequency, CouponStatus, CouponType, WalletStatus
from billing.models import AppliedCoupon, Coupon, CustomerTax, Tax, Wallet

# The customer's active applied coupons, oldest first: written out because current_usage reads
# them on every request (most customers have none, and then this is the only statement), and
# Django's compiling of the queryset cost more CPU than running it.
_APPLIED_COUPONS_SQL = (
    f"SELECT * FROM {AppliedCoupon._meta.db_table} WHERE customer_id = %s AND status = %s ORDER BY created_at, id"
)


def _applied_coupons(customer_id: int, *, lock: bool) -> RawQuerySet[AppliedCoupon]:
    """The rows with their coupons (one more query, only when there are rows); `lock` locks the
    applied coupons (not the coupons: their balances are the applied ones')."""
    sql = _APPLIED_COUPONS_SQL
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    return AppliedCoupon.objects.raw(sql, [customer_id, CouponStatus.ACTIVE.value]).prefetch_related("coupon")


def coupon_credits(customer_id: int, *, currency: str, lock: bool = False) -> tuple[CouponCredit, ...]:
    """The customer's active applied coupons usable on an invoice in `currency`, oldest first."""
    out = []
    for row in _applied_coupons(customer_id, lock=lock):
        if row.coupon_type == CouponType.FIXED_AMOUNT:
            if row.currency != currency:
                continue  # a fixed amount in another currency cannot reduce this invoice
            amount = row.amount_remaining if row.frequency == CouponFrequency.ONCE else row.amount
            if not amount or amount <= 0:
                continue
        else:
            amount = None
        if row.frequency == CouponFrequency.RECURRING and not row.frequency_duration_remaining:
            continue
        out.append(
            CouponCredit(
                applied_coupon_id=row.pk,
                code=row.coupon.code,
                name=row.coupon.name,
                coupon_type=row.coupon_type,
                amount=amount,
                percentage_rate=row.percentage_rate,
                plan_codes=tuple(row.coupon.plan_codes or ()),
                metric_codes=tuple(row.coupon.billable_metric_codes or ()),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class PreviewAdjustments:
    """A customer's coupons (in one currency) and taxes as a preview applies them: read once for
    all of a customer's subscriptions (preview_adjustments)."""

    coupons: tuple[CouponCredit, ...]
    taxes: tuple[TaxRate, ...]


def preview_adjustments(customer_id: int, *, currency: str) -> PreviewAdjustments:
    return PreviewAdjustments(coupon_credits(customer_id, currency=currency), tax_rates(customer_id))


def coupon_credit(coupon: Coupon) -> CouponCredit:
    """A coupon as it would reduce one invoice if applied now, unchanged (the price calculator)."""
    return CouponCredit(
        applied_coupon_id=0,
        code=coupon.code,
        name=coupon.name,
        coupon_type=coupon.coupon_type,
        amount=coupon.amount,
        percentage_rate=coupon.percentage_rate,
        plan_codes=tuple(coupon.plan_codes or ()),
        metric_codes=tuple(coupon.billable_metric_codes or ()),
    )


# The customer's own taxes, or the organization's when it has none: one statement, written out
# because current_usage reads it on every request and Django's compiling of the equivalent
# queryset (an Exists, a negated Exists) cost more CPU than the rest of the preview's reads.
_TAX, _OWN = Tax._meta.db_table, CustomerTax._meta.db_table
_TAX_RATES_SQL = (
    f"SELECT t.id, t.code, t.name, t.rate FROM {_TAX} t "
    f"WHERE EXISTS (SELECT 1 FROM {_OWN} o WHERE o.customer_id = %s AND o.tax_id = t.id) "
    f"OR (t.applied_to_organization AND NOT EXISTS (SELECT 1 FROM {_OWN} o WHERE o.customer_id = %s)) "
    "ORDER BY t.code"
)


def tax_rates(customer_id: int | None) -> tuple[TaxRate, ...]:
    """The customer's own taxes (its tax codes) if it has any, else the organization's (None:
    the organization's). One query either way; the rates are read as Django reads the field
    (exact Decimals on SQLite too)."""
    taxes = Tax.objects.raw(_TAX_RATES_SQL, [customer_id, customer_id])
    return tuple(TaxRate(tax.pk, tax.code, tax.name, tax.rate) for tax in taxes)


def wallet_credit(customer_id: int, *, currency: str, lock: bool = False) -> WalletCredit | None:
    """The customer's active wallet in `currency`, if it has a balance to use."""
    wallets = Wallet.objects.filter(customer_id=customer_id, currency=currency, status=WalletStatus.ACTIVE).filter(
        # Expired, even if the minute's expiry job has not run yet: its credit is void.
        Q(expiration_at__isnull=True) | Q(expiration_at__gt=timezone.now())
    )
    if lock:
        wallets = wallets.select_for_update()
    wallet = wallets.first()
    if wallet is None or wallet.balance <= 0:
        return None
    return WalletCredit(wallet.pk, wallet.balance)
