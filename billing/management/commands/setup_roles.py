"""Create or update the finance permission groups (billing.services.roles); idempotent, run on every start.

1. Bring the groups `Finance` and `Finance read-only` to the permissions billing.services.roles lists.
2. With --finance USERNAME / --read-only USERNAME (repeatable): make those existing users staff
   and put them in that group (and out of the other one).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from billing.services.roles import FINANCE, FINANCE_READ_ONLY, ensure_roles

UNKNOWN_USER = "No user named {username!r}: create it first (e.g. manage.py createsuperuser or the admin)."


class Command(BaseCommand):
    help = "Create or update the Finance and Finance read-only groups; optionally put users in them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--finance",
            action="append",
            default=[],
            metavar="USERNAME",
            help=f"Make this user staff and a member of {FINANCE!r} (repeatable).",
        )
        parser.add_argument(
            "--read-only",
            action="append",
            default=[],
            metavar="USERNAME",
            dest="read_only",
            help=f"Make this user staff and a member of {FINANCE_READ_ONLY!r} (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for role in ensure_roles():
                state = "created" if role.created else ("updated" if role.changed else "up to date")
                self.stdout.write(f"  group {role.name!r}: {state} ({role.permissions} permissions)")
            for username in options["finance"]:
                self.assign(username, FINANCE, FINANCE_READ_ONLY)
            for username in options["read_only"]:
                self.assign(username, FINANCE_READ_ONLY, FINANCE)

    def assign(self, username: str, group_name: str, other_name: str) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist as exc:
            raise CommandError(UNKNOWN_USER.format(username=username)) from exc
        if not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        user.groups.remove(Group.objects.get(name=other_name))
        user.groups.add(Group.objects.get(name=group_name))
        self.stdout.write(f"  user {username!r}: staff, in {group_name!r}")
