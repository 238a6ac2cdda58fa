from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from billing.documents.links import document_pdf

urlpatterns = [
    # The back office is the site: `/` is its home page (the dashboard).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("billing/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("billing.api.urls")),
    path("nested_admin/", include("nested_admin.urls")),
    path("documents/<str:token>", document_pdf, name="document-pdf"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file: no inline script, so the
    # Content-Security-Policy needs no exception for the docs.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]

# Django's own error pages: Lago's JSON envelope under /api/, the usual pages elsewhere.
handler400 = "config.api.bad_request"
handler403 = "config.api.permission_denied"
handler404 = "config.api.page_not_found"
handler500 = "config.api.server_error"
