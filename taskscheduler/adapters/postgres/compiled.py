"""Statements written with SQLAlchemy Core, compiled once to the SQL text psycopg runs.

The hot statements (the api's insert, the worker's claim and outcome) skip SQLAlchemy at run
time: its per-statement work (cache key, execution context, result metadata) cost more CPU than
their round trips."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]

# psycopg caches its parse of a statement's %(name)s placeholders up to this length
# (MAX_CACHED_STATEMENT_LENGTH in psycopg/_queries.py) and parses a longer one on every call.
CACHED_TEXT_LENGTH = 4096


@dataclass(frozen=True)
class Compiled:
    """A statement as psycopg runs it: its text, and the values of the literals it holds."""

    text: str
    literals: dict[str, Any]

    @classmethod
    def of(cls, statement: sa.Executable) -> Compiled:
        compiled = statement.compile(dialect=DIALECT)  # type: ignore[attr-defined]
        text = str(compiled)
        assert "POSTCOMPILE" not in text, "an IN list needs SQLAlchemy at run time"
        assert len(text) <= CACHED_TEXT_LENGTH, f"{len(text)} characters: psycopg parses it anew"
        literals = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required
        }
        return cls(text, literals)

    def parameters(self, values: dict[str, Any]) -> dict[str, Any]:
        """The statement's parameters: its literals and `values`."""
        return self.literals | values
