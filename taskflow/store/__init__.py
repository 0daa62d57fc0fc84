"""PostgreSQL: the source of truth. Owns every SQL statement (in `sql/`) and the migrations."""

from taskflow.store.store import Change, StartedTask, Store

__all__ = ["Change", "StartedTask", "Store"]
