"""Fixtures shared by the whole suite."""

from __future__ import annotations

from django.conf import settings


def using_postgres() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
