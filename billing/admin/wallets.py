"""Admin for wallets (DESIGN §6 "Wallets"): prepaid credits per customer and currency.

- The list shows each wallet's customer, balance in money and in credits, ongoing balance (the
  balance less the usage so far: billing.selectors.wallets), status and expiry; filter by
  customer, status, currency.
- "Add wallet" is a form of our own that calls billing.services.wallets.wallet_create (rate,
  expiry, the first paid and granted credits): its refusals show next to the input they are
  about, and nothing is stored.
- A wallet's page is read-only, with its transactions (the history: every movement, with the
  invoice that bought or used the credit); for staff who may change wallets it has "Top up"
  (paid credits are invoiced at once on a `credit` invoice, usable once that invoice is paid;
  granted credits at once) and "Void credits". "Terminate selected wallets" voids the balance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from billing.admin.money_input import add_service_errors
from billing.admin.shared import CustomerFilter, admin_link, admin_page, admin_url, report_refusals, viewable_object
from billing.documents.formats import format_money, format_quantity
from billing.engine.money import ZERO
from billing.engine.vocabulary import WalletStatus, WalletTransactionKind
from billing.models import Wallet, WalletTransaction
from billing.selectors.wallets import OngoingBalance, ongoing_balance
from billing.services.wallets import WalletError, wallet_create, wallet_terminate, wallet_transaction_create
from customers.models import Customer

# Messages are constants so tests can match them.
WALLET_CREATED = "Wallet {wallet} was created for {customer}."
TOPPED_UP = "Wallet {wallet}: {what}."
GRANTED = "{credits} credits granted ({amount}), usable now"
PURCHASED = "{credits} credits invoiced on {invoice} ({amount}), usable once it is paid"
VOIDED = "{credits} credits voided ({amount})"
NOTHING_MOVED = "Nothing was moved: give a number of credits greater than 0."
NOT_ACTIVE = "Wallet {wallet} is terminated: its balance can no longer change."
UNKNOWN_CUSTOMER = "No customer has this external id."
WALLETS_TERMINATED = ("%(count)d wallet was terminated.", "%(count)d wallets were terminated.")
ALREADY_TERMINATED = "{wallet} was terminated already."
CHANGE_WALLET = "billing.change_wallet"

CREDITS_HELP = "A number of credits, at most 5 decimal places."
CREATE_FIELDS = {
    "external_customer_id": "customer",
    "currency": "customer",
    "rate_amount": "rate_amount",
    "name": "name",
    "code": "code",
    "expiration_at": "expiration_at",
    "paid_credits": "paid_credits",
    "granted_credits": "granted_credits",
}
TOP_UP_FIELDS = {"paid_credits": "paid_credits", "granted_credits": "granted_credits", "name": "name"}
VOID_FIELDS = {"voided_credits": "voided_credits", "name": "name"}


def may_change_wallets(request: HttpRequest) -> bool:
    return request.user.has_perm(CHANGE_WALLET)


def credits_field(label: str, help_text: str = CREDITS_HELP, **kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, min_value=0, max_digits=24, decimal_places=5, required=False, help_text=help_text, **kwargs
    )


def _expiry_field() -> forms.DateTimeField:
    return forms.DateTimeField(
        label="Expires at",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Its balance is voided then, and the wallet terminated. Empty: it never expires.",
    )


class WalletCreateForm(forms.Form):
    customer = forms.CharField(label="Customer (external id)", max_length=255)
    rate_amount = forms.DecimalField(
        label="Price of one credit",
        max_digits=20,
        decimal_places=5,
        help_text="In the customer's currency, e.g. 1 (one credit is worth 1.00).",
    )
    name = forms.CharField(max_length=255, required=False)
    code = forms.CharField(max_length=255, required=False, help_text="Empty: made from the name.")
    expiration_at = _expiry_field()
    paid_credits = credits_field("Paid credits", "Invoiced at once; usable once that invoice is paid.")
    granted_credits = credits_field("Granted credits", "Free credits, usable at once.")

    def clean_customer(self) -> Customer:
        customer = Customer.objects.filter(external_id=self.cleaned_data["customer"].strip()).first()
        if customer is None:
            raise forms.ValidationError(UNKNOWN_CUSTOMER)
        return customer


class TopUpForm(forms.Form):
    paid_credits = credits_field("Paid credits", "Invoiced at once (a credit invoice); usable once it is paid.")
    granted_credits = credits_field("Granted credits", "Free credits, usable at once.")
    name = forms.CharField(max_length=255, required=False, help_text="Shown on the transaction (and the invoice).")


class VoidForm(forms.Form):
    voided_credits = credits_field("Credits to void", "At most the balance in credits.")
    name = forms.CharField(max_length=255, required=False, label="Reason", help_text="Kept on the transaction.")


def _credits(value: Decimal) -> str:
    return format_quantity(value)


def _ongoing(obj: Wallet) -> OngoingBalance:
    """The wallet's ongoing balance, computed once per wallet shown."""
    cached: OngoingBalance | None = obj.__dict__.get("_ongoing")
    if cached is None:
        cached = obj.__dict__["_ongoing"] = ongoing_balance(obj, now=timezone.now())
    return cached


def wallet_summary(wallet: Wallet) -> str:
    """A wallet in a sentence: "$100.00 (100 credits)"."""
    return f"{format_money(wallet.balance, wallet.currency)} ({_credits(wallet.credits_balance)} credits)"


# --- The transaction history ------------------------------------------------------------------


class WalletTransactionInline(admin.TabularInline[WalletTransaction, Wallet]):
    """The wallet's movements, newest first, read-only always: they are its history."""

    model = WalletTransaction
    extra = 0
    max_num = 0
    can_delete = False
    fields = (
        "created_at",
        "transaction_type",
        "transaction_status",
        "status",
        "amount_display",
        "credits_moved",
        "invoice_display",
        "name",
        "settled_at",
    )
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    verbose_name_plural = "transactions"

    def get_queryset(self, request: HttpRequest) -> QuerySet[WalletTransaction]:
        return super().get_queryset(request).select_related("wallet", "invoice", "voided_invoice")

    @admin.display(description="credits")
    def credits_moved(self, obj: WalletTransaction) -> str:
        return _credits(obj.credit_amount)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The history is part of the wallet: whoever may see the wallet sees it.
        user = request.user
        return user.has_perm("billing.view_wallet") or user.has_perm(CHANGE_WALLET)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="amount")
    def amount_display(self, obj: WalletTransaction) -> str:
        return format_money(obj.amount, obj.wallet.currency)

    @admin.display(description="invoice")
    def invoice_display(self, obj: WalletTransaction) -> str:
        invoice = obj.invoice or obj.voided_invoice
        if invoice is None:
            return "—"
        link = admin_link("billing_invoice_change", invoice.pk, str(invoice))
        if obj.voided_invoice_id is not None:
            return format_html("{} (voided)", link)
        if obj.transaction_status == WalletTransactionKind.PURCHASED:
            return format_html("{} ({})", link, invoice.get_payment_status_display().lower())
        return link


# --- Wallets ------------------------------------------------------------------------------------


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin[Wallet]):
    list_display = (
        "__str__",
        "customer_display",
        "balance_display",
        "credits_display",
        "ongoing_display",
        "status",
        "expiration_at",
    )
    list_filter = ("status", "currency", CustomerFilter)
    list_select_related = ("customer",)
    search_fields = ("customer__external_id", "customer__name", "name", "code")
    search_help_text = "Customer external id or name, wallet name or code."
    ordering = ("customer__external_id", "-created_at", "-id")
    actions = ("terminate_selected",)
    inlines = [WalletTransactionInline]
    fields = (
        "customer_display",
        "name",
        "code",
        "status",
        "currency",
        "rate_amount",
        "balance_display",
        "credits_display",
        "ongoing_display",
        "consumed_display",
        "expiration_at",
        "terminated_at",
        "last_consumed_credit_at",
        "metadata",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Wallet]:
        return super().get_queryset(request).select_related("customer")

    # --- columns and fields ---

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_display(self, obj: Wallet) -> str:
        return admin_link("customers_customer_change", obj.customer_id, str(obj.customer))

    @admin.display(description="balance", ordering="balance")
    def balance_display(self, obj: Wallet) -> str:
        return format_money(obj.balance, obj.currency)

    @admin.display(description="credits", ordering="credits_balance")
    def credits_display(self, obj: Wallet) -> str:
        return _credits(obj.credits_balance)

    @admin.display(description="ongoing balance")
    def ongoing_display(self, obj: Wallet) -> str:
        ongoing = _ongoing(obj)
        return f"{format_money(ongoing.balance, obj.currency)} ({_credits(ongoing.credits_balance)} credits)"

    @admin.display(description="consumed")
    def consumed_display(self, obj: Wallet) -> str:
        return f"{format_money(obj.consumed_amount, obj.currency)} ({_credits(obj.consumed_credits)} credits)"

    # --- permissions: read-only pages, changes through the services ---

    def has_change_permission(self, request: HttpRequest, obj: Wallet | None = None) -> bool:
        # The model-level permission (obj None) is what the actions and pages need; a wallet's
        # page itself is read-only (no Save button, a POST is refused).
        if obj is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Wallet | None = None) -> bool:
        return False  # terminated instead: its transactions are its history

    # --- pages ---

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/top-up/", self.admin_site.admin_view(self.top_up_view), name="billing_wallet_top_up"
            ),
            path(
                "<path:object_id>/void-credits/",
                self.admin_site.admin_view(self.void_view),
                name="billing_wallet_void_credits",
            ),
        ]
        return own + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None) -> Any:
        """Our own form: billing.services.wallets.wallet_create decides, its refusals show by field."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {"customer": request.GET.get("customer", ""), "rate_amount": "1"}
        form = WalletCreateForm(request.POST if request.method == "POST" else None, initial=initial)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                wallet = wallet_create(
                    customer=data["customer"],
                    rate_amount=data["rate_amount"],
                    name=data["name"],
                    code=data["code"],
                    expiration_at=data["expiration_at"],
                    paid_credits=data["paid_credits"] or ZERO,
                    granted_credits=data["granted_credits"] or ZERO,
                    now=timezone.now(),
                )
            except WalletError as exc:
                add_service_errors(form, exc.errors, CREATE_FIELDS.get)
            else:
                self.message_user(
                    request, WALLET_CREATED.format(wallet=wallet, customer=wallet.customer), messages.SUCCESS
                )
                self._report_movements(request, wallet, list(wallet.transactions.order_by("id")))
                return HttpResponseRedirect(admin_url("billing_wallet_change", wallet.pk) or "../")
        return admin_page(
            self,
            request,
            "admin/billing/wallet/wallet_form.html",
            title="Add wallet",
            form=form,
            submit="Create wallet",
            step="Add",
        )

    def _movement_form_view(self, request: HttpRequest, object_id: str, *, void: bool) -> HttpResponse:
        if not may_change_wallets(request):
            raise PermissionDenied
        wallet = viewable_object(self, request, object_id)
        if isinstance(wallet, HttpResponse):
            return wallet
        form_class = VoidForm if void else TopUpForm
        form = form_class(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            try:
                made = wallet_transaction_create(
                    wallet=wallet,
                    paid_credits=data.get("paid_credits") or ZERO,
                    granted_credits=data.get("granted_credits") or ZERO,
                    voided_credits=data.get("voided_credits") or ZERO,
                    name=data["name"],
                    now=timezone.now(),
                )
            except WalletError as exc:
                add_service_errors(form, exc.errors, (VOID_FIELDS if void else TOP_UP_FIELDS).get)
            else:
                if not made:
                    form.add_error(None, NOTHING_MOVED)
                else:
                    self._report_movements(request, wallet, made)
                    return HttpResponseRedirect(admin_url("billing_wallet_change", wallet.pk) or "../")
        return admin_page(
            self,
            request,
            "admin/billing/wallet/wallet_form.html",
            title=f"{'Void credits of' if void else 'Top up'} {wallet}",
            form=form,
            wallet=wallet,
            wallet_url=admin_url("billing_wallet_change", wallet.pk),
            balance=wallet_summary(wallet),
            note=NOT_ACTIVE.format(wallet=wallet) if wallet.status != WalletStatus.ACTIVE else "",
            submit="Void credits" if void else "Top up",
            step="Void credits" if void else "Top up",
        )

    def top_up_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._movement_form_view(request, object_id, void=False)

    def void_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._movement_form_view(request, object_id, void=True)

    def _report_movements(self, request: HttpRequest, wallet: Wallet, made: list[WalletTransaction]) -> None:
        parts: list[str] = []
        for movement in made:
            amount = format_money(movement.amount, wallet.currency)
            credits = _credits(movement.credit_amount)
            if movement.transaction_status == WalletTransactionKind.PURCHASED and movement.invoice is not None:
                invoice = admin_link("billing_invoice_change", movement.invoice.pk, str(movement.invoice))
                parts.append(format_html(PURCHASED, credits=credits, invoice=invoice, amount=amount))
            elif movement.transaction_status == WalletTransactionKind.GRANTED:
                parts.append(GRANTED.format(credits=credits, amount=amount))
            elif movement.transaction_status == WalletTransactionKind.VOIDED:
                parts.append(VOIDED.format(credits=credits, amount=amount))
        if parts:
            what = format_html("; ".join(["{}"] * len(parts)), *parts)
            self.message_user(request, format_html(TOPPED_UP, wallet=str(wallet), what=what), messages.SUCCESS)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Wallet | None = None,
    ) -> HttpResponse:
        # The buttons, for an active wallet and staff who may use them (no one is shown a button
        # that refuses them).
        if obj is not None and obj.status == WalletStatus.ACTIVE and may_change_wallets(request):
            context["top_up_url"] = admin_url("billing_wallet_top_up", obj.pk)
            context["void_credits_url"] = admin_url("billing_wallet_void_credits", obj.pk)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- actions ---

    @admin.action(description="Terminate selected wallets (their balance is voided)", permissions=["change"])
    def terminate_selected(self, request: HttpRequest, queryset: QuerySet[Wallet]) -> None:
        done, refusals = 0, []
        now = timezone.now()
        for wallet in queryset.order_by("id"):
            if wallet.status != WalletStatus.ACTIVE:
                refusals.append(ALREADY_TERMINATED.format(wallet=wallet))
                continue
            wallet_terminate(wallet=wallet, now=now)
            done += 1
        self.message_user(
            request,
            ngettext(*WALLETS_TERMINATED, done) % {"count": done},
            messages.SUCCESS if done else messages.WARNING,
        )
        report_refusals(self, request, refusals)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


def customer_wallets(customer: Customer) -> list[dict[str, Any]]:
    """The customer page's wallets: each with its balance, ongoing balance and a link."""
    rows = []
    for wallet in Wallet.objects.filter(customer=customer).select_related("customer").order_by("status", "-id"):
        if wallet.status != WalletStatus.ACTIVE and not wallet.balance:
            continue  # a terminated wallet holds nothing: its page keeps its history
        ongoing = _ongoing(wallet)
        rows.append(
            {
                "link": admin_link("billing_wallet_change", wallet.pk, str(wallet)),
                "balance": wallet_summary(wallet),
                "ongoing": format_money(ongoing.balance, wallet.currency),
                "status": wallet.get_status_display(),
                "expires": wallet.expiration_at,
            }
        )
    return rows
