"""Create an API key for /api/v1 and print it once (only its SHA-256 is stored)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key named NAME and print it. It cannot be shown again; revoke it in the admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="What the key is for, e.g. 'production ingest'.")
        parser.add_argument("--quiet", action="store_true", help="Print only the key.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 128:
            raise CommandError("NAME must be 1 to 128 characters")
        key, raw = api_key_create(name=name)
        if options["quiet"]:
            self.stdout.write(raw)
            return
        self.stdout.write(f"API key {key.name!r} created. Copy it now; it is not stored and cannot be shown again:")
        self.stdout.write(raw)
        self.stdout.write("Use it as: Authorization: Bearer <key>")
