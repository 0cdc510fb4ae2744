"""Postgres migrations: plain SQL files applied once each, in name order, per schema.

A schema is a namespace: `public` is the live projection, and `cv replay postgres --into S` rebuilds into schema S
with the same migrations, so a replayed copy can be compared with (or swapped for) the live one.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(conn: psycopg.Connection, schema: str = "public") -> list[str]:
    """Apply every pending migration to `schema` (created if missing); return the names applied."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(727274)")  # one migrator at a time
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r[0] for r in conn.execute("SELECT name FROM schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            if path.name in done:
                continue
            conn.execute(path.read_text())
            conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (path.name,))
            applied.append(path.name)
    return applied


def connect(dsn: str, schema: str = "public", **kw: object) -> psycopg.Connection:
    """A connection whose search_path is `schema` (then public, where PostGIS lives)."""
    return psycopg.connect(dsn, options=f"-c search_path={schema},public", **kw)  # type: ignore[arg-type]
