"""One-off invoices (billing.services.one_off_invoices): add-on lines, the customer's taxes, the
total; what is refused, with nothing stored; the webhook, the email and the PDF."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from billing.documents.invoice import invoice_context, render_invoice_html
from billing.documents.pdf import PdfUnavailable, render_invoice_pdf
from billing.engine.vocabulary import CouponFrequency, CouponType, InvoiceKind, InvoiceType, WebhookType
from billing.models import (
    AddOn,
    AppliedCoupon,
    Coupon,
    Invoice,
    InvoiceEmail,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    PaymentStatus,
    WebhookDelivery,
)
from billing.services.addons import add_on_create
from billing.services.invoice_emails import email_context
from billing.services.one_off_invoices import (
    BOUNDARIES,
    CURRENCY_NOT_CUSTOMERS,
    FEES_REQUIRED,
    NO_PRICE_IN_CURRENCY,
    PRICE_NEGATIVE,
    UNITS_NOT_POSITIVE,
    UNKNOWN_ADD_ON,
    OneOffFee,
    OneOffInvoiceError,
    one_off_invoice_create,
)
from billing.services.taxes import customer_taxes_set, tax_create
from billing.services.webhooks import webhook_endpoint_create
from customers.models import Customer
from tests.factories import CustomerFactory

NOW = datetime(2026, 9, 15, 10, 30, tzinfo=UTC)

pytestmark = [pytest.mark.django_db, pytest.mark.frozen_clock(NOW)]


@pytest.fixture
def setup() -> AddOn:
    return add_on_create(
        code="setup", name="Set-up fee", amount=Decimal(125), currency="USD", description="Account set-up"
    )


@pytest.fixture
def acme() -> Customer:
    customer: Customer = CustomerFactory(external_id="acme", currency="USD", email="ap@acme.test")
    return customer


def lines(invoice: Invoice) -> list[tuple[str, str, Decimal, Decimal]]:
    return [
        (line.kind, line.description, line.amount, line.tax_amount) for line in invoice.lines.order_by("position", "id")
    ]


def stored() -> tuple[int, int, int, int]:
    return (
        Invoice.objects.count(),
        InvoiceLine.objects.count(),
        InvoiceEmail.objects.count(),
        WebhookDelivery.objects.count(),
    )


def test_two_set_up_fees_with_the_organizations_20_percent_tax_are_300(setup: AddOn, acme: Customer) -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)

    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup", units=Decimal(2))], now=NOW)

    assert (invoice.kind, invoice.invoice_type, invoice.subscription) == (
        InvoiceKind.ONE_OFF,
        InvoiceType.ONE_OFF,
        None,
    )
    assert (invoice.status, invoice.payment_status) == (InvoiceStatus.FINALIZED, PaymentStatus.PENDING)
    assert invoice.number and invoice.number.startswith("INV-2026-")
    assert invoice.period_start == invoice.period_end == NOW
    assert invoice.total == Decimal("300.00")
    assert lines(invoice) == [
        (LineKind.ADD_ON, "Set-up fee", Decimal("250.00"), Decimal("50.00")),
        (LineKind.TAX, "VAT (20 %)", Decimal("50.00"), Decimal(0)),
    ]
    fee = invoice.lines.get(kind=LineKind.ADD_ON)
    assert (fee.quantity, fee.unit_amount) == (Decimal(2), Decimal(125))
    assert fee.details == {
        "add_on_id": setup.pk,
        "add_on_code": "setup",
        "add_on_name": "Set-up fee",
        "description": "Account set-up",
    }


def test_no_coupon_applies_to_a_one_off_invoice(setup: AddOn, acme: Customer) -> None:
    coupon = Coupon.objects.create(
        code="half", name="Half off", coupon_type=CouponType.PERCENTAGE, percentage_rate=Decimal(50)
    )
    AppliedCoupon.objects.create(
        coupon=coupon,
        customer=acme,
        coupon_type=CouponType.PERCENTAGE,
        percentage_rate=Decimal(50),
        frequency=CouponFrequency.FOREVER,
    )
    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup", units=Decimal(2))], now=NOW)
    assert invoice.total == Decimal("250.00")
    assert not invoice.lines.filter(kind=LineKind.COUPON).exists()
    assert not invoice.coupon_applications.exists()


def test_a_customers_tax_codes_replace_the_organizations_taxes(setup: AddOn, acme: Customer) -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)
    tax_create(code="gst", name="GST", rate=Decimal("5.5"))
    tax_create(code="pst", name="PST", rate=Decimal("7.25"))
    globex: Customer = CustomerFactory(external_id="globex", currency="USD")
    customer_taxes_set(customer=globex, tax_codes=["pst", "gst"])

    theirs = one_off_invoice_create(customer=globex, fees=[OneOffFee(add_on_code="setup")], now=NOW)
    ours = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup")], now=NOW)

    # 125 × 5.5 % = 6.875 → 6.88; 125 × 7.25 % = 9.0625 → 9.06: each tax line rounded once.
    assert [(line[0], line[1], line[2]) for line in lines(theirs)] == [
        (LineKind.ADD_ON, "Set-up fee", Decimal("125.00")),
        (LineKind.TAX, "GST (5.5 %)", Decimal("6.88")),
        (LineKind.TAX, "PST (7.25 %)", Decimal("9.06")),
    ]
    assert theirs.total == Decimal("140.94")
    assert theirs.lines.get(kind=LineKind.ADD_ON).tax_amount == Decimal("15.94")
    assert ours.total == Decimal("150.00")


def test_without_any_tax_the_invoice_is_its_fees(setup: AddOn, acme: Customer) -> None:
    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup")], now=NOW)
    assert lines(invoice) == [(LineKind.ADD_ON, "Set-up fee", Decimal("125.00"), Decimal(0))]
    assert invoice.total == Decimal("125.00")


def test_each_fee_may_set_its_price_units_name_description_and_dates(setup: AddOn, acme: Customer) -> None:
    add_on_create(
        code="training",
        name="Training",
        amount=Decimal("80.00"),
        currency="USD",
        invoice_display_name="On-site training",
    )
    fees = [
        OneOffFee(add_on_code="setup", unit_amount=Decimal("99.99"), units=Decimal("1.5"), description="Discounted"),
        OneOffFee(add_on_code="training", invoice_display_name="Training day"),
        OneOffFee(add_on_code="training"),
        OneOffFee(
            add_on_code="setup",
            from_datetime=datetime(2026, 9, 1, tzinfo=UTC),
            to_datetime=datetime(2026, 9, 30, tzinfo=UTC),
        ),
    ]
    invoice = one_off_invoice_create(customer=acme, fees=fees, now=NOW)
    rows = list(invoice.lines.order_by("position"))
    # 1.5 × 99.99 = 149.985 → 149.99 (rounded once, half up).
    assert [(r.description, r.quantity, r.unit_amount, r.amount) for r in rows] == [
        ("Set-up fee", Decimal("1.5"), Decimal("99.99"), Decimal("149.99")),
        ("Training day", Decimal(1), Decimal(80), Decimal("80.00")),
        ("On-site training", Decimal(1), Decimal(80), Decimal("80.00")),
        ("Set-up fee", Decimal(1), Decimal(125), Decimal("125.00")),
    ]
    assert rows[0].details["description"] == "Discounted"
    assert (rows[3].period_start, rows[3].period_end) == (
        datetime(2026, 9, 1, tzinfo=UTC),
        datetime(2026, 9, 30, tzinfo=UTC),
    )
    assert (rows[1].period_start, rows[1].period_end) == (NOW, NOW)
    assert invoice.total == Decimal("434.99")


def test_a_free_one_off_invoice_is_settled_at_once(acme: Customer) -> None:
    add_on_create(code="gift", name="Welcome kit", amount=Decimal(0), currency="USD")
    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="gift")], now=NOW)
    assert (invoice.total, invoice.payment_status, invoice.paid_at) == (Decimal("0.00"), PaymentStatus.SUCCEEDED, NOW)


def test_it_is_announced_and_emailed_once(setup: AddOn, acme: Customer) -> None:
    webhook_endpoint_create(webhook_url="https://hooks.example/lago")
    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup", units=Decimal(2))], now=NOW)

    delivery = WebhookDelivery.objects.get()
    assert (delivery.webhook_type, delivery.object_type, delivery.object_id) == (
        WebhookType.INVOICE_ONE_OFF_CREATED,
        "invoice",
        str(invoice.pk),
    )
    assert '"invoice_type":"one_off"' in delivery.body
    email = InvoiceEmail.objects.get()
    assert (email.invoice, email.to) == (invoice, "ap@acme.test")
    context = email_context(invoice)
    assert context["purpose"] == "One-off invoice: Set-up fee"
    assert context["total"] == "$250.00"


@pytest.mark.parametrize(
    ("fees", "currency", "field", "message"),
    [
        ([], None, "fees", FEES_REQUIRED),
        ([OneOffFee(add_on_code="nope")], None, "fees.0.add_on_code", UNKNOWN_ADD_ON.format(code="nope")),
        ([OneOffFee(add_on_code="setup", units=Decimal(0))], None, "fees.0.units", UNITS_NOT_POSITIVE),
        ([OneOffFee(add_on_code="setup", units=Decimal(-1))], None, "fees.0.units", UNITS_NOT_POSITIVE),
        (
            [OneOffFee(add_on_code="setup"), OneOffFee(add_on_code="setup", unit_amount=Decimal("-0.01"))],
            None,
            "fees.1.unit_amount_cents",
            PRICE_NEGATIVE,
        ),
        ([OneOffFee(add_on_code="setup")], "EUR", "currency", CURRENCY_NOT_CUSTOMERS.format(currency="USD")),
        (
            [OneOffFee(add_on_code="setup", from_datetime=NOW)],
            None,
            "fees.0.from_datetime",
            BOUNDARIES,
        ),
    ],
)
def test_invalid_input_is_refused_naming_the_field_and_stores_nothing(
    setup: AddOn, acme: Customer, fees: list[OneOffFee], currency: str | None, field: str, message: str
) -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)
    before = stored()
    with pytest.raises(OneOffInvoiceError) as refused:
        one_off_invoice_create(customer=acme, fees=fees, currency=currency, now=NOW)
    assert refused.value.errors == {field: [message]}
    assert stored() == before


def test_an_add_on_priced_in_another_currency_needs_a_price_in_the_invoices(acme: Customer) -> None:
    add_on_create(code="audit", name="Audit", amount=Decimal(100), currency="EUR")
    with pytest.raises(OneOffInvoiceError) as refused:
        one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="audit")], now=NOW)
    assert refused.value.errors == {
        "fees.0.unit_amount_cents": [NO_PRICE_IN_CURRENCY.format(code="audit", add_on_currency="EUR", currency="USD")]
    }
    assert not Invoice.objects.exists()
    invoice = one_off_invoice_create(
        customer=acme, fees=[OneOffFee(add_on_code="audit", unit_amount=Decimal("110.00"))], now=NOW
    )
    assert (invoice.currency, invoice.total) == ("USD", Decimal("110.00"))


def test_a_yen_invoice_rounds_to_whole_yen(acme: Customer) -> None:
    tanaka: Customer = CustomerFactory(external_id="tanaka", currency="JPY", timezone="Asia/Tokyo")
    tax_create(code="jct", name="JCT", rate=Decimal(10))
    customer_taxes_set(customer=tanaka, tax_codes=["jct"])
    add_on_create(code="kit", name="Kit", amount=Decimal(1235), currency="JPY")
    invoice = one_off_invoice_create(customer=tanaka, fees=[OneOffFee(add_on_code="kit", units=Decimal(3))], now=NOW)
    # 3 × ¥1,235 = ¥3,705; 10 % = 370.5 → ¥371.
    assert [(line[0], line[2]) for line in lines(invoice)] == [
        (LineKind.ADD_ON, Decimal(3705)),
        (LineKind.TAX, Decimal(371)),
    ]
    assert invoice.total == Decimal(4076)


# --- The document ---------------------------------------------------------------------------


def test_the_document_shows_a_one_off_invoice_with_its_add_ons_and_taxes(setup: AddOn, acme: Customer) -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)
    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup", units=Decimal(2))], now=NOW)

    context = invoice_context(invoice)
    assert (context["kind_label"], context["has_period"], context["plan_name"]) == ("One-off invoice", False, "")
    assert (context["sub_total"], context["taxes_total"], context["total"]) == ("$250.00", "$50.00", "$300.00")
    assert [(row["kind"], row["quantity"], row["unit_price"], row["amount"]) for row in context["lines"]] == [
        ("add_on", "2", "$125.00", "$250.00"),
        ("tax", "", "", "$50.00"),
    ]
    assert context["lines"][0]["notes"] == ["Account set-up"]
    html = render_invoice_html(invoice)
    assert "One-off invoice" in html and "Billing period" not in html and "Subscription" not in html
    assert "VAT (20 %)" in html and "$300.00" in html


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_the_pdf_renders(setup: AddOn, acme: Customer) -> None:
    tax_create(code="vat", name="VAT", rate=Decimal(20), applied_to_organization=True)
    invoice = one_off_invoice_create(customer=acme, fees=[OneOffFee(add_on_code="setup", units=Decimal(2))], now=NOW)
    try:
        content = render_invoice_pdf(invoice)
    except PdfUnavailable as exc:
        pytest.skip(f"WeasyPrint cannot make PDFs here: {exc}")
    assert content.startswith(b"%PDF")
    text = pdf_text(content)
    assert invoice.number is not None and invoice.number in text
    for expected in ("One-off invoice", "Set-up fee", "VAT (20 %)", "$300.00"):
        assert expected in text, expected


def test_nothing_of_a_refusal_is_half_stored(setup: AddOn, acme: Customer, settings: Any) -> None:
    # The second fee is refused: the first one is not billed alone.
    with pytest.raises(OneOffInvoiceError):
        one_off_invoice_create(
            customer=acme, fees=[OneOffFee(add_on_code="setup"), OneOffFee(add_on_code="nope")], now=NOW
        )
    assert stored() == (0, 0, 0, 0)
