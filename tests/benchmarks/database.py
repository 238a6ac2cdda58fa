"""The benchmark's own database: `<name>_bench` on the server of DATABASE_URL.

It is created empty, migrated by `manage.py migrate` in a child process, filled, and dropped at
the end. Every child process (the web server, load generators, the period closer) gets DATABASE_URL of
this database in its environment; the benchmark command itself reaches it only with psycopg,
never through Django's default connection, so real data cannot be touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

BENCH_SUFFIX = "_bench"
NEEDS_POSTGRES = (
    "The benchmark needs PostgreSQL: set DATABASE_URL=postgres://user@host:5432/name. It creates and drops "
    "its own database <name>_bench on that server and never touches <name>. (SQLite is not measured: the "
    "scale targets of DESIGN §5 are for PostgreSQL.)"
)
ROOT = Path(__file__).resolve().parents[2]


class BenchmarkError(Exception):
    """The benchmark cannot run (wrong database, a child process failed)."""


@dataclass(frozen=True)
class BenchDatabase:
    name: str
    url: str  # DATABASE_URL for child processes
    params: dict[str, Any]  # psycopg.connect keyword arguments, without dbname

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        return psycopg.connect(dbname=self.name, autocommit=autocommit, **self.params)

    def child_env(self, **extra: str) -> dict[str, str]:
        # LOG_LEVEL=ERROR: no log line per 401 probe or per request in the server's output.
        env = {"DATABASE_URL": self.url, "PYTHONUNBUFFERED": "1", "DEBUG": "false", "LOG_LEVEL": "ERROR"}
        return {**os.environ, **env, **extra}


def bench_database(settings_db: dict[str, Any], env_url: str | None) -> BenchDatabase:
    """Where the benchmark's database goes, derived from the configured one; refuses SQLite."""
    if settings_db.get("ENGINE") != "django.db.backends.postgresql" or not env_url:
        raise BenchmarkError(NEEDS_POSTGRES)
    name = f"{settings_db['NAME']}{BENCH_SUFFIX}"
    parts = urlsplit(env_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    params: dict[str, Any] = {
        key: value
        for key, value in {
            "host": settings_db.get("HOST") or None,
            "port": settings_db.get("PORT") or None,
            "user": settings_db.get("USER") or None,
            "password": settings_db.get("PASSWORD") or None,
        }.items()
        if value is not None
    }
    params.update({k: v for k, v in (settings_db.get("OPTIONS") or {}).items() if isinstance(v, (str, int))})
    return BenchDatabase(name=name, url=url, params=params)


def _admin_connection(db: BenchDatabase, fallback: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dbname="postgres", autocommit=True, **db.params)
    except psycopg.OperationalError:
        return psycopg.connect(dbname=fallback, autocommit=True, **db.params)


def recreate(db: BenchDatabase, *, fallback: str) -> None:
    """Drop the bench database if a previous run left it, and create it empty."""
    if not db.name.endswith(BENCH_SUFFIX):  # never drop anything the benchmark did not name
        raise BenchmarkError(f"refusing to recreate {db.name!r}: not a benchmark database")
    with _admin_connection(db, fallback) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db.name)))


def drop(db: BenchDatabase, *, fallback: str) -> None:
    if not db.name.endswith(BENCH_SUFFIX):
        raise BenchmarkError(f"refusing to drop {db.name!r}: not a benchmark database")
    with _admin_connection(db, fallback) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.name)))


def manage(db: BenchDatabase, *args: str, timeout: float = 900) -> str:
    """Run `manage.py ARGS` against the bench database; its output, or BenchmarkError."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=db.child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def python_module(db: BenchDatabase, module: str, *args: str, timeout: float = 900) -> str:
    """Run `python -m MODULE ARGS` against the bench database; its stdout, or BenchmarkError."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=db.child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"{module} {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout
