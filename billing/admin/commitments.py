"""Admin for prepaid commitments (DESIGN §3 "Commitments", §4 "Admin"); their ledger is
billing.admin.ledger.

- The list shows each commitment's balance, summed by the database in the list query itself (a
  subquery over the ledger per row, so the page costs the same few queries however many rows it
  shows). On SQLite that sum is a float; it is only displayed, rounded to the currency's minor
  unit. The commitment page shows the exact balance (billing.selectors.commitments.balance).
- Finance staff add a commitment to a subscription by its first day (local midnight in the
  customer's time zone) and length in months; billing.services.commitments creates it (or
  changes a pending one) and refuses what it must (a terminated subscription, an overlapping
  term, …): the form shows the service's refusal. A term that has started is prepaid at once
  (commitment_activate): its invoice is issued and the purchase credited. Once started,
  everything on its page is read-only: it is canceled or adjusted by the actions.
- "Adjust balance…" records an adjustment with who made it and why (adjustment_create).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.translation import ngettext

from billing.admin.ledger import LedgerEntryInline
from billing.admin.shared import action_page, admin_link, admin_url, report_refusals
from billing.documents.formats import commitment_label, format_amount, format_day, format_money, term_days
from billing.engine.money import amount_field_kwargs, currency_minor_digits, format_decimal, minor_unit, quantize_money
from billing.models import Commitment, CommitmentStatus, LedgerEntry, Subscription, SubscriptionStatus
from billing.selectors.commitments import balance
from billing.services.commitments import (
    ADJUSTMENT_BELOW_ZERO,
    AMOUNT_PRECISION,
    CommitmentError,
    adjustment_create,
    commitment_activate,
    commitment_cancel,
    commitment_create,
    commitment_term,
    commitment_update,
)
from metering.days import local_date

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Messages are constants so tests can match them.
STARTED_NOTE = (
    "This commitment has started, so its terms are read-only: cancel it or adjust its balance with the "
    "actions on the commitment list. Its ledger is append-only."
)
PENDING_NOTE = (
    "Pending: the term has not started. It is invoiced in full (and its purchase credited) on its first day; "
    "until then its terms can be edited."
)
START_DAY_HELP = (
    "The term starts at midnight of this day in the customer's time zone and ends the given number of months "
    "later (the day clamped to the month's end). A day that has come is prepaid at once."
)
COMMITMENT_PREPAID = "The term has started: prepayment invoice {number} for {total} {currency} was issued."
ADJUST_WOULD_GO_BELOW_ZERO = "{commitment}: {error}"
NOTHING_TO_ADJUST = "None of the selected commitments can be adjusted: only pending or active ones can."
COMMITMENTS_ADJUSTED = (
    "The balance of %(count)d commitment was adjusted by %(amount)s.",
    "The balances of %(count)d commitments were adjusted by %(amount)s.",
)
CANCEL_REFUSED = "{commitment} is {status}: only pending or active commitments can be canceled."
COMMITMENTS_CANCELED = ("%(count)d commitment was canceled.", "%(count)d commitments were canceled.")
REASON_MISSING = "Give a reason: every adjustment is kept in the ledger with one."


def signed_money(amount: Decimal, commitments: Sequence[Commitment]) -> str:
    """+$100.50 / -$100.50 in the commitments' currency (with the code alone if they differ)."""
    currencies = {commitment.currency for commitment in commitments}
    if len(currencies) != 1:
        return f"{amount:+}"
    shown = format_money(abs(amount), currencies.pop())
    return f"-{shown}" if amount < 0 else f"+{shown}"


AMOUNT_ZERO = "Give a non-zero amount: positive adds to the balance, negative takes from it."

# What the actions may touch: an expired or canceled commitment draws no more, so a balance added
# to it could never be used, and it is finished already.
LIVE = (CommitmentStatus.PENDING, CommitmentStatus.ACTIVE)


# --- Forms --------------------------------------------------------------------------------------


class CommitmentForm(forms.ModelForm[Commitment]):
    """A new or pending commitment: its first day (local) and months; the end is computed."""

    start_day = forms.DateField(label="First day", help_text=START_DAY_HELP)

    class Meta:
        model = Commitment
        fields = ("subscription", "amount", "start_day", "months", "covers", "auto_renew")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "subscription" in self.fields:
            subscriptions = cast("forms.ModelChoiceField[Subscription]", self.fields["subscription"])
            subscriptions.queryset = (
                Subscription.objects.exclude(status=SubscriptionStatus.TERMINATED)
                .select_related("customer")
                .order_by("external_id")
            )
        if "amount" in self.fields:
            self.fields["amount"].help_text = "Prepaid in full at the start of the term, in the plan's currency."
        if "months" in self.fields:
            cast(forms.IntegerField, self.fields["months"]).min_value = 1
        if self.instance.pk is not None:
            tz = self.instance.subscription.customer.timezone
            self.fields["start_day"].initial = local_date(self.instance.term_start, tz)
            # The column keeps 10 decimal places; the input shows the amount as typed (1440, not 1440.0000000000).
            self.initial["amount"] = Decimal(format_decimal(self.instance.amount))

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what super().clean() returns
        subscription: Subscription | None = cleaned.get("subscription")
        if subscription is None and self.instance.subscription_id is not None:
            subscription = self.instance.subscription
        amount, start_day, months = cleaned.get("amount"), cleaned.get("start_day"), cleaned.get("months")
        if subscription is None or amount is None or start_day is None or not months:
            return cleaned
        # The service's own check, to show its refusal on the form; it checks again when it saves.
        try:
            commitment_term(
                subscription=subscription,
                amount=amount,
                start_day=start_day,
                months=months,
                exclude=self.instance if self.instance.pk else None,
            )
        except CommitmentError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return cleaned


class AdjustmentForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=amount_field_kwargs()["max_digits"],
        decimal_places=amount_field_kwargs()["decimal_places"],
        help_text="Signed, in the commitment's currency: 100 adds to the balance, -100 takes from it.",
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept with the ledger entry, with your name.",
        error_messages={"required": REASON_MISSING},
    )

    def __init__(self, *args: Any, commitments: Sequence[Commitment], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commitments = commitments

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(self.fields["reason"].error_messages["required"])
        return reason

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError(AMOUNT_ZERO)
        for currency in sorted({c.currency for c in self.commitments}):
            if amount != amount.quantize(minor_unit(currency)):
                raise forms.ValidationError(
                    AMOUNT_PRECISION.format(currency=currency, digits=currency_minor_digits(currency))
                )
        return amount

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what super().clean() returns
        amount = cleaned.get("amount")
        if amount is not None and amount < 0:
            # Checked here so the page says so before anything is written; the service checks
            # again under the commitment's row lock.
            for commitment in self.commitments:
                current = balance(commitment)
                if current + amount < 0:
                    error = ADJUSTMENT_BELOW_ZERO.format(
                        balance=quantize_money(current, commitment.currency), currency=commitment.currency
                    )
                    label = commitment_label(commitment)
                    self.add_error("amount", ADJUST_WOULD_GO_BELOW_ZERO.format(commitment=label, error=error))
        return cleaned


# --- Commitments --------------------------------------------------------------------------------


@admin.register(Commitment)
class CommitmentAdmin(admin.ModelAdmin[Commitment]):
    form = CommitmentForm
    list_display = (
        "subscription_display",
        "customer_display",
        "amount_display",
        "term_display",
        "status",
        "balance_display",
        "invoice_display",
    )
    list_filter = ("status", "covers", "auto_renew")
    list_select_related = ("subscription__customer", "invoice")
    search_fields = ("subscription__customer__external_id", "subscription__external_id")
    search_help_text = "Customer or subscription external id."
    ordering = ("-term_start", "-id")
    autocomplete_fields = ("subscription",)
    actions = ("adjust_balance", "cancel_selected")

    # The fields of a started commitment's page, all read-only.
    started_fields = (
        "subscription_link",
        "customer_display",
        "status",
        "amount_display",
        "term_display",
        "months",
        "covers",
        "auto_renew",
        "balance_exact",
        "invoice_display",
        "renewed_from",
        "renewal_display",
        "created_at",
        "updated_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Commitment]:
        ledger = (
            LedgerEntry.objects.filter(commitment=OuterRef("pk"))
            .order_by()
            .values("commitment")
            .annotate(total=Sum("amount"))
            .values("total")
        )
        return (
            super()
            .get_queryset(request)
            .select_related("subscription__customer", "subscription__plan", "invoice")
            .annotate(ledger_balance=Subquery(ledger, output_field=DecimalField(**amount_field_kwargs())))
        )

    # --- columns and fields ---

    @admin.display(description="subscription", ordering="subscription__external_id")
    def subscription_display(self, obj: Commitment) -> str:
        return obj.subscription.external_id

    @admin.display(description="subscription")
    def subscription_link(self, obj: Commitment) -> str:
        return admin_link("billing_subscription_change", obj.subscription_id, obj.subscription.external_id)

    @admin.display(description="customer", ordering="subscription__customer__external_id")
    def customer_display(self, obj: Commitment) -> str:
        return obj.subscription.customer.external_id

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: Commitment) -> str:
        return f"{format_amount(obj.amount, obj.currency)} {obj.currency}"

    @admin.display(description="term start", ordering="term_start")
    def term_start_display(self, obj: Commitment) -> str:
        return format_day(local_date(obj.term_start, obj.subscription.customer.timezone))

    @admin.display(description="term end (last day)", ordering="term_end")
    def term_end_display(self, obj: Commitment) -> str:
        return format_day(local_date(obj.term_end, obj.subscription.customer.timezone) - timedelta(days=1))

    @admin.display(description="term")
    def term_display(self, obj: Commitment) -> str:
        return term_days(obj)

    @admin.display(description="balance", ordering="ledger_balance")
    def balance_display(self, obj: Commitment) -> str:
        # The database's sum (a float on SQLite, hence the rounding to the minor unit).
        total = getattr(obj, "ledger_balance", None)
        return f"{format_amount(total if total is not None else Decimal(0), obj.currency)} {obj.currency}"

    @admin.display(description="balance")
    def balance_exact(self, obj: Commitment) -> str:
        return f"{format_amount(balance(obj), obj.currency)} {obj.currency}"

    @admin.display(description="prepayment invoice", ordering="invoice__number")
    def invoice_display(self, obj: Commitment) -> str:
        if obj.invoice is None:
            return "—"
        return admin_link("billing_invoice_change", obj.invoice.pk, str(obj.invoice))

    @admin.display(description="renewed by")
    def renewal_display(self, obj: Commitment) -> str:
        renewal = Commitment.objects.filter(renewed_from=obj).first()
        if renewal is None:
            return "—"
        return admin_link("billing_commitment_change", renewal.pk, commitment_label(renewal))

    # --- pages ---

    def get_inlines(
        self, request: HttpRequest, obj: Commitment | None
    ) -> list[type[admin.options.InlineModelAdmin[Any, Any]]]:
        return [LedgerEntryInline] if obj is not None else []  # a new commitment has no ledger yet

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, obj: Commitment | None = None, **kwargs: Any
    ) -> HttpResponse:
        if obj is not None:
            # Named by its label: the model's string prints all 10 stored decimal places of the amount.
            context["subtitle"] = context["commitment_label"] = commitment_label(obj)
        kwargs["obj"] = obj
        return super().render_change_form(request, context, *args, **kwargs)

    def _started(self, obj: Commitment | None) -> bool:
        return obj is not None and obj.status != CommitmentStatus.PENDING

    def get_fieldsets(self, request: HttpRequest, obj: Commitment | None = None) -> Any:
        if obj is None:
            return ((None, {"fields": ("subscription", "amount", "start_day", "months", "covers", "auto_renew")}),)
        if self._started(obj):
            return (
                (None, {"fields": self.started_fields[:10], "description": STARTED_NOTE}),
                ("History", {"fields": self.started_fields[10:], "classes": ("collapse",)}),
            )
        return (
            (
                None,
                {
                    "fields": (
                        "subscription_link",
                        "customer_display",
                        "status",
                        "amount",
                        "start_day",
                        "months",
                        "covers",
                        "auto_renew",
                        "term_display",
                    ),
                    "description": PENDING_NOTE,
                },
            ),
            ("History", {"fields": ("created_at", "updated_at"), "classes": ("collapse",)}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Commitment | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        if self._started(obj):
            return self.started_fields
        return ("subscription_link", "customer_display", "status", "term_display", "created_at", "updated_at")

    def get_form(self, request: HttpRequest, obj: Commitment | None = None, change: bool = False, **kwargs: Any) -> Any:
        if self._started(obj):
            # Everything is read-only: a form with no fields at all.
            kwargs["form"] = forms.ModelForm
            kwargs["fields"] = ()
        return super().get_form(request, obj, change=change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Commitment | None = None) -> bool:
        # The model-level permission (obj None) is what the actions need; a started commitment's
        # page is read-only (no Save button, and a POST is refused).
        if self._started(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Commitment | None = None) -> bool:
        # Only a pending commitment without a ledger may go; a started one is canceled instead.
        if obj is not None and (self._started(obj) or obj.entries.exists()):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it would reach started commitments
        return actions

    def save_model(self, request: HttpRequest, obj: Commitment, form: Any, change: bool) -> None:
        data = form.cleaned_data
        terms = {
            "amount": data["amount"],
            "start_day": data["start_day"],
            "months": data["months"],
            "covers": data["covers"],
            "auto_renew": data["auto_renew"],
        }
        if change:
            saved = commitment_update(commitment=obj, **terms)
        else:
            saved = commitment_create(subscription=data["subscription"], **terms)
        tz = saved.subscription.customer.timezone
        if local_date(saved.term_start, tz) <= local_date(timezone.now(), tz):
            invoice = commitment_activate(commitment=saved)
            self.message_user(
                request,
                COMMITMENT_PREPAID.format(
                    number=invoice.number, total=format_amount(invoice.total, saved.currency), currency=saved.currency
                ),
                messages.INFO,
            )
            saved.refresh_from_db()
        # The add and change views go on with `obj` (history entry, redirect): make it the row saved.
        for field in Commitment._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False
        obj._state.db = saved._state.db

    # --- actions ---

    def _row(self, commitment: Commitment) -> dict[str, Any]:
        return {
            "commitment": commitment_label(commitment),
            "url": admin_url("billing_commitment_change", commitment.pk),
            "subscription": commitment.subscription.external_id,
            "customer": commitment.subscription.customer.external_id,
            "term": term_days(commitment),
            "status": commitment.get_status_display(),
            "balance": f"{format_amount(balance(commitment), commitment.currency)} {commitment.currency}",
        }

    @admin.action(description="Adjust balance…", permissions=["change"])
    def adjust_balance(self, request: HttpRequest, queryset: QuerySet[Commitment]) -> HttpResponse | None:
        """Ask for a signed amount and a reason, then record an adjustment on each commitment."""
        selected = list(queryset.order_by("term_start", "id"))
        adjustable = [c for c in selected if c.status in LIVE]
        refused = [c for c in selected if c.status not in LIVE]
        if not adjustable:
            self.message_user(request, NOTHING_TO_ADJUST, messages.WARNING)
            return None
        form = AdjustmentForm(request.POST if "apply" in request.POST else None, commitments=adjustable)
        if form.is_bound and form.is_valid():
            amount = form.cleaned_data["amount"]
            done, refusals = 0, []
            for commitment in adjustable:
                try:
                    # created_by: the ledger records who moved the balance (signed-in staff, never anonymous).
                    adjustment_create(
                        commitment=commitment,
                        amount=amount,
                        reason=form.cleaned_data["reason"],
                        user=cast("User", request.user),
                    )
                except CommitmentError as exc:  # e.g. a drawdown got there first
                    refusals.append(f"{commitment_label(commitment)}: {exc}")
                else:
                    done += 1
            self.message_user(
                request,
                ngettext(*COMMITMENTS_ADJUSTED, done) % {"count": done, "amount": signed_money(amount, adjustable)},
                messages.SUCCESS if done else messages.WARNING,
            )
            report_refusals(self, request, refusals)
            return None
        return action_page(
            self,
            request,
            "admin/billing/commitment/adjust_balance.html",
            action_name="adjust_balance",
            selected_ids=[c.pk for c in selected],
            title="Adjust commitment balance",
            form=form,
            adjustable=[self._row(c) for c in adjustable],
            refused=[self._row(c) for c in refused],
        )

    @admin.action(description="Cancel selected commitments", permissions=["change"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Commitment]) -> None:
        done, refusals = 0, []
        for commitment in queryset.order_by("term_start", "id"):
            if commitment.status not in LIVE:
                status = commitment.get_status_display().lower()
                refusals.append(CANCEL_REFUSED.format(commitment=commitment_label(commitment), status=status))
                continue
            try:
                commitment_cancel(commitment=commitment)
            except CommitmentError as exc:  # finished meanwhile
                refusals.append(f"{commitment_label(commitment)}: {exc}")
            else:
                done += 1
        self.message_user(
            request,
            ngettext(*COMMITMENTS_CANCELED, done) % {"count": done},
            messages.SUCCESS if done else messages.WARNING,
        )
        report_refusals(self, request, refusals)
