"""The back office's admin site: Django's, named after the product, with the billing dashboard
as its home page.

`BackOfficeAdminConfig` replaces "django.contrib.admin" in INSTALLED_APPS, so `admin.site` (and
every `@admin.register`) is this site. Its index shows the dashboard's figures and charts
(billing.admin.dashboard, for staff who may view invoices) above Django's app list; there is no
public site to "view", so that link is gone and `/` redirects here (config.urls).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse

PRODUCT = "Billing back office"


class BackOfficeSite(admin.AdminSite):
    site_header = PRODUCT
    site_title = PRODUCT
    index_title = "Home"
    site_url = None  # no public site beside the back office

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        from billing.admin.dashboard import home_context

        return super().index(request, {**home_context(request, self), **(extra_context or {})})


class BackOfficeAdminConfig(AdminConfig):
    default_site = "config.admin.BackOfficeSite"
