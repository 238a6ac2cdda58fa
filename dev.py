#!/usr/bin/env python3
"""The two commands of the README's quick start, for a fresh machine with Python 3.11+.

    python3 dev.py run     # install, then start the app (SQLite + django-q2's ORM broker by default)
    python3 dev.py test    # install, then run the whole test suite (uses DATABASE_URL when set)

Both create `.venv/` beside this file and install the project from pyproject.toml into it
(again only when pyproject.toml has changed). Extra arguments go to pytest (`test`) or to
`manage.py start` (`run`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".installed-from"


SYSTEM_LIBRARIES = {
    "libpango-1.0.so.0": "libpango-1.0-0",
    "libpangoft2-1.0.so.0": "libpangoft2-1.0-0",
    "libharfbuzz-subset.so.0": "libharfbuzz-subset0",
}
FONTS = {"/usr/share/fonts/truetype/dejavu": "fonts-dejavu-core"}  # a PDF needs at least one font


def install_system_libraries() -> None:
    """WeasyPrint (PDF invoices) needs Pango; install it with apt-get where we can."""
    if sys.platform != "linux":
        return
    try:
        found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return
    missing = [pkg for lib, pkg in SYSTEM_LIBRARIES.items() if lib not in found]
    missing += [pkg for path, pkg in FONTS.items() if not os.path.isdir(path)]
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"Installing {', '.join(missing)} (for PDF invoices) …", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=False, env=env)
    else:
        print(f"PDF invoices need the system packages: {' '.join(missing)} (not installed).", flush=True)


def install() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file may be run by an older python3
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not PYTHON.exists():
        print(f"Creating {VENV.relative_to(ROOT)}/ …", flush=True)
        venv.create(VENV, with_pip=True)
    install_system_libraries()
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    print("Installing dependencies from pyproject.toml (a few minutes the first time) …", flush=True)
    started = time.monotonic()
    # pip's own lines (one per package collected, then the install) show the progress.
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", "-e", ".[dev]"],
        cwd=ROOT,
        check=True,
    )
    STAMP.write_text(wanted)
    print(f"Dependencies installed in {time.monotonic() - started:.0f} s.", flush=True)


def parallel(extra: list[str]) -> list[str]:
    """pytest-xdist's options: a worker a CPU core, each with its own test database.

    The suite is CPU-bound (Django, the pricing engine, PostgreSQL or SQLite on the same
    machine), so a worker a core divides its time by about the number of cores. pytest-django
    gives each worker its own test database (test_<name>_gw0, _gw1, …; test-db.sqlite3_gw0, …),
    and every test that starts processes or a server names them after that database or a free
    port. The caller's own `-n` comes later on the line and wins (`-n 0`: one process, no
    workers; `--pdb` alone does the same). With `-p no:xdist` the plugin is off and its options
    would not parse, so none are given.
    """
    if "no:xdist" in extra or "-pno:xdist" in extra:
        return []
    return ["-n", "auto"]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in {"run", "test"}:
        sys.exit(__doc__)
    command, extra = sys.argv[1], sys.argv[2:]
    install()
    os.chdir(ROOT)
    args = {
        "run": [str(PYTHON), "manage.py", "start", *extra],
        # -rs: the summary says why each skipped test was skipped.
        "test": [str(PYTHON), "-m", "pytest", "-rs", *parallel(extra), *extra],
    }[command]
    # exec: Ctrl-C and the exit code go straight to the app or pytest.
    os.execv(str(PYTHON), args)


if __name__ == "__main__":
    main()
