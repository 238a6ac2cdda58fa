"""Reading settings from the environment.

Every setting comes from an environment variable through django-environ and has a safe local
default. A value that cannot be used stops start-up with ``ImproperlyConfigured`` naming the
variable, instead of a bare ``ValueError`` from deep inside Django.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import environ
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

env = environ.Env()


def _read(name: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise ImproperlyConfigured(f"{name}: cannot use {env.str(name, default='')!r} ({exc})") from exc


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default="").strip().lower()
    if raw == "":
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}: expected true or false, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    value: int = _read(name, lambda: env.int(name, default=default))
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ImproperlyConfigured(f"{name}: must be {bound}, got {value}")
    return value


def env_str(name: str, default: str, *, choices: list[str] | None = None) -> str:
    value = env.str(name, default=default).strip() or default
    if choices is not None and value not in choices:
        raise ImproperlyConfigured(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    return _read(name, lambda: [v.strip() for v in env.list(name, default=default) if v.strip()])


def env_db(name: str, default: str) -> dict[str, Any]:
    config: dict[str, Any] = _read(name, lambda: env.db_url(name, default=default))
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"{name}: unsupported database URL scheme")
    if config["ENGINE"] not in {
        "django.db.backends.sqlite3",
        "django.db.backends.postgresql",
    }:
        raise ImproperlyConfigured(f"{name}: only sqlite:// and postgres:// URLs are supported")
    return config


def env_optional_url(name: str) -> str | None:
    raw: str = env.str(name, default="").strip()
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured(f"{name}: expected a redis:// or rediss:// URL, got {raw!r}")
    return raw


def env_email(name: str, default: str) -> dict[str, Any]:
    """Django's EMAIL_* settings from an email URL (django-environ): smtp://user:pass@host:port,
    smtp+tls://…, smtp+ssl://…, consolemail://, filemail:///path, memorymail://, dummymail://."""
    config: dict[str, Any] = _read(name, lambda: env.email_url(name, default=default))
    if not config.get("EMAIL_BACKEND"):
        raise ImproperlyConfigured(f"{name}: unsupported email URL scheme")
    return config


def env_http_url(name: str, default: str) -> str:
    value = env.str(name, default=default).strip().rstrip("/") or default
    if not value.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"{name}: expected an http:// or https:// URL, got {value!r}")
    return value


def secret_key(name: str, fallback_file: Path) -> str:
    """The secret key from the environment, else one generated once for this checkout.

    A checked-in default key would be shared by every install; a key generated per checkout
    and kept in a git-ignored file is safe for a local run and survives restarts (so admin
    sessions do too). Production sets SECRET_KEY.
    """
    value: str = env.str(name, default="").strip()
    if value:
        if len(value) < 32:
            raise ImproperlyConfigured(f"{name}: must be at least 32 characters long")
        return value
    try:
        fallback_file.parent.mkdir(parents=True, exist_ok=True)
        with fallback_file.open("x") as fh:  # "x": two processes starting at once cannot both write
            fh.write(secrets.token_urlsafe(50))
    except FileExistsError:
        pass
    return fallback_file.read_text().strip()
