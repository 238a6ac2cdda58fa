"""The pricing engine is pure (DESIGN §7): nothing under billing/engine/ imports Django or a
database driver, directly or through what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import billing.engine

BLOCKED = ("django", "rest_framework", "psycopg", "sqlite3", "simple_history", "sequences", "django_q")

PROBE = """
import importlib, importlib.abc, pkgutil, sys

BLOCKED = {blocked!r}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"the pure engine imported {{name}}")
        return None

sys.meta_path.insert(0, Blocker())
import billing.engine
modules = [m.name for m in pkgutil.walk_packages(billing.engine.__path__, "billing.engine.")]
for name in modules:
    importlib.import_module(name)
print(len(modules))
"""


def test_every_engine_module_imports_without_django_or_a_database() -> None:
    root = Path(billing.engine.__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(blocked=BLOCKED)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
    )
    assert result.returncode == 0, result.stderr
    modules = list(Path(billing.engine.__file__).parent.glob("*.py"))
    assert int(result.stdout) == len(modules) - 1  # every module but __init__


def test_the_probe_does_block_django() -> None:
    """The check above can fail: a module importing Django is refused by the same probe."""
    root = Path(billing.engine.__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(blocked=BLOCKED) + "\nimport billing.models\n"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
    )
    assert result.returncode != 0
    assert "the pure engine imported django" in result.stderr
