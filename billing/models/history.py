"""Who made a change, for the catalog's and commitments' django-simple-history records."""

from __future__ import annotations


def history_user(instance: object = None, request: object = None, **kwargs: object) -> object | None:
    """Who made a change, for django-simple-history: a staff user, never an API client."""
    from django.contrib.auth.models import AbstractBaseUser

    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) else None
