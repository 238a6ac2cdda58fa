"""The invoice as PDF: its HTML document (billing.documents.invoice) laid out by WeasyPrint.

The document is self-contained (inline CSS, no images or fonts from anywhere), and WeasyPrint
is given a URL fetcher that fetches nothing but `data:` URLs: rendering never reaches the
network or the file system, whatever a customer's name or address contains. The document's
`@page` rule sets A4 and its margins; its `@media print` rules drop the screen background.

WeasyPrint draws text with Pango, loaded from system libraries when weasyprint is first
imported. On Debian or Ubuntu they are SYSTEM_PACKAGES (plus a font, e.g. fonts-dejavu-core);
when one is missing, render_invoice_pdf raises PdfUnavailable with a message naming them,
instead of an OSError from deep inside cffi.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from billing.documents.invoice import render_invoice_html
from billing.models import Invoice

SYSTEM_PACKAGES = ("libpango-1.0-0", "libpangoft2-1.0-0", "libharfbuzz-subset0", "libfontconfig1", "fonts-dejavu-core")
LIBRARIES_MISSING = (
    "PDF invoices need WeasyPrint's system libraries (Pango, HarfBuzz, fontconfig), which could not be "
    "loaded: {error}. On Debian or Ubuntu install them with: apt-get install " + " ".join(SYSTEM_PACKAGES)
)
WEASYPRINT_MISSING = "PDF invoices need the weasyprint package: pip install 'weasyprint>=62,<80'."


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
            raise ValueError(f"the invoice document loads nothing from outside ({url!r} refused)")
        return weasyprint.default_url_fetcher(url, *args, **kwargs)

    return fetch


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice document as PDF bytes (raises PdfUnavailable without WeasyPrint's libraries)."""
    weasyprint = _weasyprint()
    html = render_invoice_html(invoice)
    document = weasyprint.HTML(string=html, base_url=None, url_fetcher=_data_urls_only(weasyprint))
    pdf: bytes = document.write_pdf()
    return pdf


def invoice_pdf_filename(invoice: Invoice) -> str:
    """INV-2026-000001.pdf, or draft-42.pdf before the invoice has a number."""
    return f"{invoice.number or f'draft-{invoice.pk}'}.pdf"
