"""The engine: submissions, state changes and their mirroring from PostgreSQL into Redis."""

from taskflow.engine.engine import Engine

__all__ = ["Engine"]
