"""Django settings. Every value comes from the environment (see README, "Configuration")."""

from __future__ import annotations

from pathlib import Path

import django_stubs_ext
from csp.constants import NONE, SELF, UNSAFE_INLINE

from config.env import (
    env_bool,
    env_db,
    env_email,
    env_http_url,
    env_int,
    env_list,
    env_optional_url,
    env_str,
    secret_key,
)

# Django's generic classes (ModelAdmin, ModelForm, Paginator, …) take type arguments in their
# stubs (`admin.ModelAdmin[Invoice]`); this lets them take them at run time too (a no-op there).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key("SECRET_KEY", VAR_DIR / "secret_key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- HTTPS (README "Production") ----------------------------------------------------------
# Behind a TLS proxy: trust its X-Forwarded-Proto header (and only behind one that sets it).
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0, maximum=2 * 365 * 86400)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this site only
# (the admin, the API docs and the invoice documents need nothing else); inline styles are
# allowed for the self-contained invoice HTML. CSP_REPORT_ONLY=true reports instead of blocking.
_CSP = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
if env_bool("CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = _CSP
else:
    CONTENT_SECURITY_POLICY = _CSP

INSTALLED_APPS = [
    "config.admin.BackOfficeAdminConfig",  # Django's admin, named after the product, the dashboard as home
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "sequences",
    "nested_admin",
    "simple_history",
    "csp",
    "customers",
    "metering",
    "billing",
]

MIDDLEWARE = [
    "config.middleware.ApiErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The Page* middleware is Django's, whitenoise's and simple_history's, skipped by the two
    # event endpoints only, which use none of it (config.middleware.NotOnEventPaths).
    "config.middleware.PageWhiteNoiseMiddleware",
    "config.middleware.PageSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Django's own, by name: its deploy check (security.W003) looks for this very path.
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.PageAuthenticationMiddleware",
    "config.middleware.PageMessageMiddleware",
    "config.middleware.PageHistoryRequestMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.PageCSPMiddleware",  # django-csp's, not on the API's JSON
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the django-q2 cluster write to the same file: WAL lets readers run
    # beside one writer, IMMEDIATE takes the write lock at BEGIN (no upgrade deadlocks), and
    # the timeout makes a writer wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not :memory:, so tests that start other processes (server, cluster) share it.
    _db_file = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {"NAME": str(_db_file.with_name(f"test-{_db_file.name}"))}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    # Off by default: a health check is one more round trip (`SELECT 1`) on every request, a
    # fifth of a single event's cost. Without it a connection the server dropped (a restart)
    # fails the one request that finds it, cleanly (503 with Retry-After, config.middleware);
    # Django then closes it at the end of that request and the next request reconnects. On:
    # that request is spared, every request pays the check.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", False)
    # The lookup every event needs (billing.selectors.event_owners) runs through a server-side
    # binding cursor, which psycopg prepares after this many runs on a connection: planned once,
    # not per request (planning cost five times its execution). Django's own cursors bind
    # client-side and never prepare. Off behind a pooler that cannot carry prepared statements
    # (PgBouncer before 1.21 in transaction mode).
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# Days read "November 1, 2026" and instants name their zone, as billing.documents.formats writes them.
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve admin assets even before collectstatic has run

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.api.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Billing API",
    "DESCRIPTION": "Lago-compatible usage events, customers, subscriptions, current usage and invoices.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files ship with the app (no CDN): the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name per choice set that several serializers share.
    "ENUM_NAME_OVERRIDES": {
        "PaymentStatusEnum": "billing.engine.vocabulary.PaymentStatus",
    },
    # Every operation documents the errors it may answer, in Lago's envelope (config.openapi).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_error_responses",
    ],
}

# --- Billing (DESIGN §3–§4) ---------------------------------------------------------------
# Hours after a period ends during which its invoice stays a recomputable draft.
BILLING_GRACE_PERIOD_HOURS = env_int("BILLING_GRACE_PERIOD_HOURS", 0, minimum=0, maximum=24 * 31)
# Worker processes `close_period` closes with (its --workers default; PostgreSQL only).
BILLING_CLOSE_WORKERS = env_int("BILLING_CLOSE_WORKERS", 2, minimum=1, maximum=64)
# Events older than this many days are rejected.
BILLING_EVENT_MAX_AGE_DAYS = env_int("BILLING_EVENT_MAX_AGE_DAYS", 35, minimum=1, maximum=3660)
# Most events accepted by POST /api/v1/events/batch.
BILLING_EVENTS_BATCH_MAX = env_int("BILLING_EVENTS_BATCH_MAX", 1000, minimum=1, maximum=100_000)
# The seller shown on invoices.
BILLING_SELLER_NAME = env_str("BILLING_SELLER_NAME", "Segment Demo Inc.")
# Days from an invoice's issuing date to its due date, for customers without their own term.
BILLING_NET_PAYMENT_TERM_DAYS = env_int("BILLING_NET_PAYMENT_TERM_DAYS", 0, minimum=0, maximum=365)
# How long a link to an invoice's or credit note's PDF (the API's file_url) works, in seconds.
BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS = env_int(
    "BILLING_DOCUMENT_LINK_MAX_AGE_SECONDS", 7 * 86400, minimum=60, maximum=365 * 86400
)
# Where this app is reached from outside: links in webhooks and emails (file_url) start with it.
BILLING_PUBLIC_URL = env_http_url("BILLING_PUBLIC_URL", "http://127.0.0.1:8000")
# How far back and ahead a subscription may start (POST /api/v1/subscriptions, the admin): a
# back-dated subscription is invoiced for every period since it started.
BILLING_SUBSCRIPTION_MAX_PAST_DAYS = env_int("BILLING_SUBSCRIPTION_MAX_PAST_DAYS", 366, minimum=0, maximum=3660)
BILLING_SUBSCRIPTION_MAX_FUTURE_DAYS = env_int("BILLING_SUBSCRIPTION_MAX_FUTURE_DAYS", 366, minimum=0, maximum=3660)

# --- Webhooks (DESIGN §6 "Webhooks") ------------------------------------------------------------
# The HMAC-SHA256 signing key; unset: a key generated once and stored in the database.
WEBHOOK_HMAC_KEY = env_str("WEBHOOK_HMAC_KEY", "")
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=120)
# Attempt n + 1 waits WEBHOOK_RETRY_BASE_SECONDS × 2^(n − 1) after attempt n failed.
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 60, minimum=1, maximum=86400)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=30)

# --- Email (invoice emails) ----------------------------------------------------------------------
# An email URL (django-environ): smtp://user:password@host:587, smtp+tls://…, consolemail://.
_EMAIL = env_email("EMAIL_URL", "consolemail://")
EMAIL_BACKEND: str = _EMAIL["EMAIL_BACKEND"]
EMAIL_HOST: str = _EMAIL.get("EMAIL_HOST") or "localhost"
EMAIL_PORT: int = int(_EMAIL.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER: str = _EMAIL.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD: str = _EMAIL.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS: bool = bool(_EMAIL.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL: bool = bool(_EMAIL.get("EMAIL_USE_SSL"))
EMAIL_FILE_PATH: str = _EMAIL.get("EMAIL_FILE_PATH") or str(VAR_DIR / "emails")
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "billing@localhost")

# --- API limits (config.parsers) ----------------------------------------------------------
# Largest request body read, in bytes; a larger one is refused with 413 before it is parsed.
BILLING_API_MAX_BODY_BYTES = env_int("BILLING_API_MAX_BODY_BYTES", 1_048_576, minimum=1024, maximum=100 * 1_048_576)
# Deepest nesting of a JSON body (the response renderer takes 255 levels: stay well below).
BILLING_API_MAX_JSON_DEPTH = env_int("BILLING_API_MAX_JSON_DEPTH", 32, minimum=4, maximum=200)

# --- django-q2 ----------------------------------------------------------------------------
REDIS_URL = env_optional_url("REDIS_URL")
Q_CLUSTER: dict[str, object] = {
    # Clusters with the same name share one queue: several machines, one Redis.
    "name": env_str("Q_CLUSTER_NAME", "billing"),
    "workers": env_int("Q_WORKERS", 2, minimum=1, maximum=64),
    "timeout": 1800,
    "retry": 3600,
    "max_attempts": 1,
    "catch_up": False,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": env_str("LOG_LEVEL", "INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]),
    },
}
