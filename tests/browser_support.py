"""What the browser test needs from the machine: Debian's Chromium, driven by Playwright.

Playwright never downloads a browser here: it drives the system's /usr/bin/chromium through
`executable_path`. When Chromium is missing and the test runs as root on a machine with
apt-get, it is installed (`apt-get install -y chromium`, with `apt-get update` first if the
package lists do not know it yet), each step time-limited. Otherwise the test is skipped with
the reason, never failed for want of a browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
APT_UPDATE_SECONDS = 300
APT_INSTALL_SECONDS = 900
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _apt_get(*args: str, timeout: int) -> tuple[bool, str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(["apt-get", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return False, f"`apt-get {' '.join(args)}` did not finish within {timeout} s"
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    return done.returncode == 0, tail[0]


def ensure_chromium() -> str | None:
    """None when /usr/bin/chromium is there (installing it if we may), else why it is not."""
    if CHROMIUM.exists():
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and there is no apt-get to install it (install Debian's `chromium`)"
    if os.geteuid() != 0:
        return f"{CHROMIUM} is missing; install it as root: apt-get install -y chromium"
    ok, message = _apt_get("install", "-y", "-q", "chromium", timeout=APT_INSTALL_SECONDS)
    if not ok:  # most often: the package lists are empty or stale
        updated, update_message = _apt_get("update", "-q", timeout=APT_UPDATE_SECONDS)
        if not updated:
            return f"apt-get update failed ({update_message}), so {CHROMIUM} could not be installed"
        ok, message = _apt_get("install", "-y", "-q", "chromium", timeout=APT_INSTALL_SECONDS)
    if not ok or not CHROMIUM.exists():
        return f"apt-get install chromium failed ({message})"
    return None


def launch(playwright: Any) -> Any:
    """The system Chromium, headless; Playwright's own browser builds are never used."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS))


def artifact(name: str) -> Path:
    """A path in test-artifacts/ (git-ignored), created on first use."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
