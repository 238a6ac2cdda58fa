"""Documents as PDF: their HTML (billing.documents.invoice, billing.documents.credit_note) laid
out by WeasyPrint.

`render_pdf` lays out any of our HTML documents; `render_invoice_pdf` and
`render_credit_note_pdf` are it applied to the two documents, and the `*_pdf_filename`
functions name the files (the admin's download, the signed links of billing.documents.links).

The documents are self-contained (inline CSS, no images or fonts from anywhere), and WeasyPrint
is given a URL fetcher that fetches nothing but `data:` URLs: rendering never reaches the
network or the file system, whatever a customer's name or address contains. The documents'
`@page` rule sets A4 and its margins; their `@media print` rules drop the screen background.

WeasyPrint draws text with Pango, loaded from system libraries when weasyprint is first
imported. On Debian or Ubuntu they are SYSTEM_PACKAGES (plus a font, e.g. fonts-dejavu-core);
when one is missing, render_pdf raises PdfUnavailable with a message naming them, instead of an
OSError from deep inside cffi.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from billing.documents.credit_note import render_credit_note_html
from billing.documents.invoice import render_invoice_html
from billing.models import CreditNote, Invoice

SYSTEM_PACKAGES = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "libfontconfig1", "fonts-dejavu-core")
LIBRARIES_MISSING = (
    "PDF documents need WeasyPrint's system libraries (Pango, HarfBuzz, fontconfig), which could not be "
    "loaded: {error}. On Debian or Ubuntu install them with: apt-get install " + " ".join(SYSTEM_PACKAGES)
)
WEASYPRINT_MISSING = "PDF documents need the weasyprint package: pip install 'weasyprint>=62,<80'."
OUTSIDE_URL_REFUSED = "the document loads nothing from outside ({url!r} refused)"


class PdfUnavailable(RuntimeError):
    """The PDF cannot be made on this machine (a package or a system library is missing)."""


def _weasyprint() -> Any:
    try:
        weasyprint = import_module("weasyprint")
    except OSError as exc:  # cffi's dlopen of libpango-1.0 / libpangoft2-1.0 / … failed
        raise PdfUnavailable(LIBRARIES_MISSING.format(error=exc)) from exc
    except ImportError as exc:
        raise PdfUnavailable(WEASYPRINT_MISSING) from exc
    return weasyprint


def _data_urls_only(weasyprint: Any) -> Any:
    """A URL fetcher for `data:` URLs only, in the API of the installed WeasyPrint."""
    fetcher_class = getattr(getattr(weasyprint, "urls", None), "URLFetcher", None)
    if fetcher_class is not None:  # WeasyPrint 66 and later: a URLFetcher instance
        return fetcher_class(allowed_protocols={"data"})

    def fetch(url: str, *args: Any, **kwargs: Any) -> Any:  # older: a function
        if not url.startswith("data:"):
            raise ValueError(OUTSIDE_URL_REFUSED.format(url=url))
        return weasyprint.default_url_fetcher(url, *args, **kwargs)

    return fetch


def render_pdf(html: str) -> bytes:
    """A self-contained HTML document as PDF bytes (raises PdfUnavailable without WeasyPrint's
    libraries). Only `data:` URLs are fetched, so the HTML may carry customer text safely."""
    weasyprint = _weasyprint()
    document = weasyprint.HTML(string=html, base_url=None, url_fetcher=_data_urls_only(weasyprint))
    pdf: bytes = document.write_pdf()
    return pdf


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice document as PDF bytes (raises PdfUnavailable without WeasyPrint's libraries)."""
    return render_pdf(render_invoice_html(invoice))


def render_credit_note_pdf(note: CreditNote) -> bytes:
    """The credit note document as PDF bytes (raises PdfUnavailable without WeasyPrint's libraries)."""
    return render_pdf(render_credit_note_html(note))


def invoice_pdf_filename(invoice: Invoice) -> str:
    """INV-2026-000001.pdf, or draft-42.pdf before the invoice has a number."""
    return f"{invoice.number or f'draft-{invoice.pk}'}.pdf"


def credit_note_pdf_filename(note: CreditNote) -> str:
    """INV-2026-000001-CN1.pdf: a note is numbered from the invoice it credits, so its file sorts
    beside the invoice's."""
    return f"{note.number}.pdf"
