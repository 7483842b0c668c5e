"""The prediction log's schema: versioned SQL migrations, monthly partitions, retention.

Migrations are the ``migrations/NNNN_name.sql`` files shipped in this package, applied in
order at start, each in the same transaction as its row in ``aiinfra_schema_migrations``,
under an advisory lock so that several workers or replicas starting at once apply each one
exactly once. Applying them again is a no-op.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

from psycopg import AsyncConnection, sql

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys: "aiinfra" schema changes, partition changes.
MIGRATION_LOCK = 0x616969_6E6672_01
PARTITION_LOCK = 0x616969_6E6672_02
VERSION_TABLE = "aiinfra_schema_migrations"
PARENT = "predictions"
_FILE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_PARTITION = re.compile(rf"{PARENT}_p(\d{{4}})(\d{{2}})")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The shipped migrations in version order; versions must run 1, 2, 3… without gaps."""
    found = []
    for entry in resources.files("serving.predlog").joinpath("migrations").iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text()))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, … without gaps: "
                           f"{[m.version for m in found]}")
    return found


async def migrate(conn: AsyncConnection, migrations: list[Migration] | None = None
                  ) -> list[int]:
    """Apply the migrations not yet applied; returns the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, "
            "name text NOT NULL, checksum text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())")
        cursor = await conn.execute(f"SELECT version, checksum FROM {VERSION_TABLE}")
        applied = dict(await cursor.fetchall())
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    log.warning("applied migration differs from the shipped file",
                                extra={"version": migration.version, "migration": migration.name})
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {VERSION_TABLE} (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum))
            applied_now.append(migration.version)
    if applied_now:
        log.info("prediction log schema migrated", extra={"versions": applied_now})
    return applied_now


def month_of(moment: datetime) -> tuple[int, int]:
    moment = moment.astimezone(UTC)
    return moment.year, moment.month


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def months_between(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    months = [first]
    while months[-1] < last:
        months.append(_next_month(*months[-1]))
    return months


def partition_name(year: int, month: int) -> str:
    return f"{PARENT}_p{year:04d}{month:02d}"


async def ensure_partitions(conn: AsyncConnection, months: list[tuple[int, int]]) -> None:
    """Create the monthly partitions for ``months`` (UTC) unless they exist."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        for year, month in months:
            upper = _next_month(year, month)
            await conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
            ).format(sql.Identifier(partition_name(year, month)), sql.Identifier(PARENT),
                     sql.Literal(f"{year:04d}-{month:02d}-01 00:00:00+00"),
                     sql.Literal(f"{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00")))


async def partitions(conn: AsyncConnection) -> list[str]:
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname", (PARENT,))
    return [name for (name,) in await cursor.fetchall()]


async def drop_expired_partitions(conn: AsyncConnection, retention_days: int,
                                  now: datetime | None = None) -> list[str]:
    """Drop the monthly partitions that end before ``now - retention_days``."""
    if retention_days <= 0:
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    dropped = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        for name in await partitions(conn):
            match = _PARTITION.fullmatch(name)
            if match is None:
                continue
            year, month = _next_month(int(match[1]), int(match[2]))
            if datetime(year, month, 1, tzinfo=UTC) <= cutoff:
                await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                dropped.append(name)
        await conn.execute("DELETE FROM predlog_batches WHERE written_at < now() - interval "
                           "'1 day'")
    if dropped:
        log.info("prediction log partitions past retention dropped",
                 extra={"partitions": dropped, "retention_days": retention_days})
    return dropped
