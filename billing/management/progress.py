"""Progress output for long management commands: a bar on a terminal, plain lines in CI logs."""

from __future__ import annotations

import time
from typing import Any


class Progress:
    def __init__(self, stream: Any, label: str, *, every_seconds: float = 5.0) -> None:
        self.stream = stream
        self.label = label
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.every = every_seconds
        self.last = 0.0
        self.shown = False

    def update(self, done: int, total: int, note: str = "") -> None:
        now = time.monotonic()
        final = done == total
        if self.tty:
            width = 30
            filled = width * done // total if total else width
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} {note}", ending="")
            self.shown = True
        elif final or now - self.last >= self.every:
            self.stream.write(f"{self.label}: {done}/{total} {note}".rstrip())
            self.last = now

    def finish(self) -> None:
        if self.tty and self.shown:
            self.stream.write("")
