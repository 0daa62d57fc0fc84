"""Named SQL statements, loaded once from the `.sql` files beside this module."""

from __future__ import annotations

from importlib import resources
from typing import LiteralString, cast


def _load(folder: str) -> dict[str, LiteralString]:
    root = resources.files("taskflow.store") / "sql" / folder
    return {
        entry.name.removesuffix(".sql"): cast(LiteralString, entry.read_text(encoding="utf-8"))
        for entry in root.iterdir()
        if entry.name.endswith(".sql")
    }


QUERIES: dict[str, LiteralString] = _load("queries")
MIGRATIONS: dict[str, LiteralString] = _load("migrations")
