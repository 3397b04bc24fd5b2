"""The migrated database equals the one schema.py describes, catalog entry by catalog entry."""

from __future__ import annotations

import difflib
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from taskscheduler.adapters.postgres.schema import metadata
from taskscheduler.devstack.embedded import drop_database
from taskscheduler.settings import Settings, with_driver
from tests.servers import Servers, fresh_database

Catalog = dict[str, dict[str, str]]

# Each query yields (name, definition) rows of one kind of object in the public schema, in the
# server's own normalized text, so that equal definitions compare equal however they were
# written. Alembic's own table is not part of the schema.
CATALOG_QUERIES = {
    "tables": """
        SELECT c.relname, coalesce(array_to_string(c.reloptions, ', '), '')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version'
    """,
    "columns": """
        SELECT c.relname || '.' || a.attname,
               format_type(a.atttypid, a.atttypmod)
               || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END
               || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> 'alembic_version'
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "constraints": """
        SELECT c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname <> 'alembic_version'
    """,
    "indexes": """
        SELECT tablename || '.' || indexname, indexdef
        FROM pg_indexes
        WHERE schemaname = 'public' AND tablename <> 'alembic_version'
    """,
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public'
    """,
    "triggers": """
        SELECT c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT t.tgisinternal
    """,
}


def catalog(url: str) -> Catalog:
    """Every table (with its storage options), column, constraint, index, function and trigger
    of the database, each by name with its definition."""
    with psycopg.connect(with_driver(url, "postgresql")) as conn:
        return {
            kind: {name: definition for name, definition in conn.execute(query).fetchall()}
            for kind, query in CATALOG_QUERIES.items()
        }


def differences(migrated: Catalog, described: Catalog) -> list[str]:
    """One line per object that one database has and the other lacks, or defines otherwise."""
    lines: list[str] = []
    for kind in CATALOG_QUERIES:
        left, right = migrated[kind], described[kind]
        for name in sorted(left.keys() | right.keys()):
            if name not in right:
                lines.append(f"{kind} {name}: only migrated: {left[name]}")
            elif name not in left:
                lines.append(f"{kind} {name}: only in schema.py: {right[name]}")
            elif left[name] != right[name]:
                lines.append(f"{kind} {name} differs:\n{unified(left[name], right[name])}")
    return lines


def unified(migrated: str, described: str) -> str:
    """A unified diff of two definitions (a function's runs over many lines)."""
    diff = difflib.unified_diff(
        migrated.splitlines(), described.splitlines(), "migrated", "schema.py", lineterm=""
    )
    return "\n".join(f"  {line}" for line in diff)


@pytest.fixture
def two_databases(servers: Servers) -> Iterator[tuple[str, str]]:
    """A fresh database built by the migrations (as the service migrates) and one built from
    schema.py (create_all, which runs the trigger DDL attached to its tables)."""
    migrated = fresh_database(servers.database_url, migrate=True)
    described = fresh_database(servers.database_url)
    try:
        engine = sa.create_engine(Settings(database_url=described).sqlalchemy_url)
        metadata.create_all(engine)
        engine.dispose()
        yield migrated, described
    finally:
        for url in (migrated, described):
            drop_database(servers.database_url, url)


def test_the_migrated_database_equals_schema_py(two_databases: tuple[str, str]) -> None:
    migrated, described = (catalog(url) for url in two_databases)
    assert migrated["tables"], "no table read: the catalog queries look in the wrong place"
    assert migrated["triggers"] and migrated["functions"]
    found = differences(migrated, described)
    assert not found, "the migrations and schema.py disagree:\n" + "\n".join(found)
