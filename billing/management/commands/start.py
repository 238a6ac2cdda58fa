"""Start the whole app: web server and django-q2 cluster, together, stopped together.

1. Apply migrations, collect static files.
2. Load the shipped Segment catalog and the demo data (both idempotent).
3. Make sure the admin user exists and print its login.
4. Run granian (WEB_WORKERS processes of WEB_THREADS threads each) and `manage.py qcluster` as
   child processes; Ctrl-C (SIGINT) or SIGTERM stops both, and if either exits the other is
   stopped too.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

ADMIN_USERNAME = "admin"


def admin_password() -> str:
    """ADMIN_PASSWORD, else a password generated once for this checkout (kept in var/)."""
    if os.environ.get("ADMIN_PASSWORD"):
        return os.environ["ADMIN_PASSWORD"]
    path = Path(settings.VAR_DIR) / "admin-password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(12))
    return path.read_text().strip()


def web_server_command(host: str, port: int, workers: int, threads: int, *, access_log: bool = True) -> list[str]:
    """granian serving config.wsgi: the HTTP protocol in Rust, Django in `threads` threads of each
    of `workers` processes. Threads, as gunicorn's gthread had them: one serves while another
    waits on the database, and each holds a database connection (workers × threads in all).
    In seven alternating pairs of one single-event load, its workers spent less CPU a request than
    gunicorn's gthread workers with as many processes and threads every time, by 0.05 to 1.2 ms
    (median 0.8; gunicorn parses HTTP in Python), and batches of 1,000 cost less in both pairs."""
    return [
        str(Path(sys.executable).with_name("granian")),
        "--interface",
        "wsgi",
        "config.wsgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        # Its longest: a thread (and its database connection) is kept through a quiet spell.
        "--blocking-threads-idle-timeout",
        "600",
        "--no-ws",
        "--access-log" if access_log else "--no-access-log",
        # A worker that does not stop within 10 s of SIGTERM is killed, as gunicorn's graceful timeout did.
        "--workers-kill-timeout",
        "10",
    ]


class Command(BaseCommand):
    help = "Set up (migrate, catalog, demo data, admin user) and run the web server with the task cluster."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
        parser.add_argument("--threads", type=int, default=int(os.environ.get("WEB_THREADS", "4")))
        parser.add_argument("--no-demo", action="store_true", help="Do not create the demo customers.")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        call_command("load_catalog", stdout=self.stdout)
        if not options["no_demo"]:
            call_command("demo", stdout=self.stdout)
        call_command("setup_schedules", stdout=self.stdout)
        call_command("setup_roles", stdout=self.stdout)
        password = self.ensure_admin()

        host, port = options["host"], options["port"]
        children = [
            subprocess.Popen([sys.executable, "manage.py", "qcluster"]),
            subprocess.Popen(web_server_command(host, port, options["workers"], options["threads"])),
        ]
        broker = "Redis" if settings.REDIS_URL else "ORM (database)"
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  Billing is starting on http://{host}:{port}/admin/\n"
                f"  Login: {ADMIN_USERNAME} / {password}\n"
                f"  API docs: http://{host}:{port}/api/docs/   database: {db}   task broker: {broker}\n"
                f"  Press Ctrl-C to stop the web server and the task cluster.\n"
            )
        )
        self.supervise(children)

    def ensure_admin(self) -> str:
        password = admin_password()
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username=ADMIN_USERNAME, defaults={"email": "admin@example.com"})
        if not (user.is_superuser and user.is_staff and user.check_password(password)):
            user.is_superuser = user.is_staff = user.is_active = True
            user.set_password(password)
            user.save()
        return password

    def supervise(self, children: list[subprocess.Popen[bytes]]) -> None:
        stopping = False

        def stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.stdout.write("Stopped.")
        failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
        if failed and not stopping:
            sys.exit(1)
