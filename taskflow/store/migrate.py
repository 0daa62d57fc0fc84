"""Versioned schema migrations, safe when several replicas start at once.

Each file in `sql/migrations/` is `NNNN_name.sql`; they run in order, each in its own
transaction, under one advisory lock, and are recorded in `taskflow_schema_migrations`.
"""

from __future__ import annotations

import logging

import psycopg

from taskflow.store.queries import MIGRATIONS, QUERIES

log = logging.getLogger(__name__)

_LOCK_KEY = 0x7A5F_0001  # arbitrary, constant: serialises migrations across replicas


def migration_versions() -> list[tuple[int, str]]:
    """(version, file stem) of every migration shipped, in order."""
    found = []
    for stem in MIGRATIONS:
        number, _, _name = stem.partition("_")
        found.append((int(number), stem))
    return sorted(found)


async def migrate(conn: psycopg.AsyncConnection) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
    applied_now: list[str] = []
    await conn.set_autocommit(True)
    await conn.execute(QUERIES["advisory_lock"], {"key": _LOCK_KEY})
    try:
        await conn.execute(QUERIES["create_migrations_table"])
        cursor = await conn.execute(QUERIES["applied_migrations"])
        done = {row[0] for row in await cursor.fetchall()}
        for version, stem in migration_versions():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(MIGRATIONS[stem])
                await conn.execute(QUERIES["record_migration"], {"version": version, "name": stem})
            log.info("applied migration %s", stem)
            applied_now.append(stem)
    finally:
        await conn.execute(QUERIES["advisory_unlock"], {"key": _LOCK_KEY})
    return applied_now
