"""Signed, expiring links to an invoice's or a credit note's PDF: the API's `file_url`.

Lago's `file_url` is a link anyone holding it can open (it is mailed to customers, pasted into
tickets): no admin login, no API key. So the link itself is the permission: the token in it is
`kind` and `pk` signed with Django's TimestampSigner under a salt of its own (a token signed for
anything else in the project is worthless here), and it stops working after
settings.BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS (7 days by default). A client wanting a fresh link
fetches the invoice or note again.

The view answers:
- 200 with the PDF as an attachment, named as the admin names it, with `Cache-Control: private,
  no-store` (a billing document must not stay in a shared or disk cache after the link expires);
- 404 for a tampered or malformed token, and for a draft invoice (a draft changes until it is
  finalized: it has no link, as Lago gives drafts no file);
- 410 Gone for an expired token: the link was good once; the client should get a new one;
- 503 with PdfUnavailable's message when this machine cannot make PDFs.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseGone
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from billing.documents.pdf import (
    PdfUnavailable,
    credit_note_pdf_filename,
    invoice_pdf_filename,
    render_credit_note_pdf,
    render_invoice_pdf,
)
from billing.models import InvoiceStatus
from billing.selectors.credit_notes import credit_notes_with_relations
from billing.selectors.invoices import invoices_with_relations

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
KINDS = frozenset({INVOICE, CREDIT_NOTE})
SALT = "billing.documents.links"
URL_NAME = "document-pdf"
UNKNOWN_KIND = "unknown document kind {kind!r}: expected one of " + ", ".join(sorted(KINDS))
LINK_INVALID = "This document link is not valid."
LINK_EXPIRED = "This document link has expired; ask for a new one."
DOCUMENT_NOT_FOUND = "There is no such document."
CACHE_CONTROL = "private, no-store"
UNAVAILABLE_STATUS = 503  # Service Unavailable: this machine cannot make PDFs now
PDF_CONTENT_TYPE = "application/pdf"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


def _signer() -> TimestampSigner:
    return TimestampSigner(salt=SALT)


def document_token(kind: str, pk: int) -> str:
    """The signed, timestamped token naming one document."""
    if kind not in KINDS:
        raise ValueError(UNKNOWN_KIND.format(kind=kind))
    return _signer().sign_object([kind, pk])


def document_url(request: HttpRequest | None, kind: str, pk: int) -> str:
    """The link serving the document's PDF, absolute: on the host a request asked, else (a
    webhook, an email) on BILLING_PUBLIC_URL."""
    path = reverse(URL_NAME, args=[document_token(kind, pk)])
    return request.build_absolute_uri(path) if request is not None else settings.BILLING_PUBLIC_URL + path


def _pdf(kind: str, pk: int) -> tuple[bytes, str]:
    """The document's PDF and file name; Http404 when there is no such document to serve."""
    if kind == INVOICE:
        invoice = invoices_with_relations().filter(pk=pk).exclude(status=InvoiceStatus.DRAFT).first()
        if invoice is None:
            raise Http404(DOCUMENT_NOT_FOUND)
        return render_invoice_pdf(invoice), invoice_pdf_filename(invoice)
    note = credit_notes_with_relations().filter(pk=pk).first()
    if note is None:
        raise Http404(DOCUMENT_NOT_FOUND)
    return render_credit_note_pdf(note), credit_note_pdf_filename(note)


@require_safe
def document_pdf(request: HttpRequest, token: str) -> HttpResponse:
    """Serve the PDF a signed link names, to whoever holds the link (see the module docstring)."""
    max_age = timedelta(seconds=settings.BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS)
    try:
        value = _signer().unsign_object(token, max_age=max_age)
    except SignatureExpired:  # before BadSignature, its parent class
        return HttpResponseGone(LINK_EXPIRED, content_type=TEXT_CONTENT_TYPE)
    except BadSignature as exc:
        raise Http404(LINK_INVALID) from exc
    match value:
        case [str() as kind, int() as pk] if kind in KINDS:
            pass
        case _:  # signed by us, so only a change of format gets here
            raise Http404(LINK_INVALID)
    try:
        content, filename = _pdf(kind, pk)
    except PdfUnavailable as exc:
        return HttpResponse(str(exc), status=UNAVAILABLE_STATUS, content_type=TEXT_CONTENT_TYPE)
    response = HttpResponse(content, content_type=PDF_CONTENT_TYPE)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["Cache-Control"] = CACHE_CONTROL
    return response
