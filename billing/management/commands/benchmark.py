"""`manage.py benchmark [--quick]`: the performance suite (DESIGN §5).

The suite is not part of the installable app: it lives in the repository's tests/benchmarks/
(see its command module for what it measures) and needs a checkout. Installed without one, this
command says so instead.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

NEEDS_CHECKOUT = (
    "The benchmark suite ships with the repository (tests/benchmarks/), not with the installed package: "
    "run manage.py benchmark from a checkout ({error})."
)

try:
    from tests.benchmarks.command import Command
except ImportError as missing:
    _error = str(missing)

    class Command(BaseCommand):  # type: ignore[no-redef]
        help = "Benchmark the app (needs a checkout of the repository: tests/benchmarks/)."

        def handle(self, *args: Any, **options: Any) -> None:
            raise CommandError(NEEDS_CHECKOUT.format(error=_error))


__all__ = ["Command"]
