"""What steps 4, 5 and 7 of an invoice read (DESIGN §6): the customer's applied coupons, the taxes
that apply to it, and its wallet; as the pure engine takes them (billing.engine.adjustments).

`lock`: the invoice is being finalized under the customer's lock; the applied coupons and the
wallet it may consume are locked too, as their balances move with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from billing.engine.adjustments import CouponCredit, TaxRate, WalletCredit
from billing.engine.vocabulary import CouponFrequency, CouponStatus, CouponType, WalletStatus
from billing.models import AppliedCoupon, Coupon, Tax, Wallet


def coupon_credits(customer_id: int, *, currency: str, lock: bool = False) -> tuple[CouponCredit, ...]:
    """The customer's active applied coupons usable on an invoice in `currency`, oldest first."""
    applied = (
        AppliedCoupon.objects.filter(customer_id=customer_id, status=CouponStatus.ACTIVE)
        .select_related("coupon")
        .order_by("created_at", "id")
    )
    if lock:
        applied = applied.select_for_update(of=("self",))
    out = []
    for row in applied:
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


def tax_rates(customer_id: int | None) -> tuple[TaxRate, ...]:
    """The customer's own taxes (its tax codes) if it has any, else the organization's (None:
    the organization's)."""
    own = Tax.objects.filter(customer_taxes__customer_id=customer_id).order_by("code") if customer_id else []
    taxes = list(own) or list(Tax.objects.filter(applied_to_organization=True).order_by("code"))
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
