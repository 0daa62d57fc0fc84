"""Static checks: SQL text only ever comes from the .sql files (values are always bound parameters),
and Redis key names are only built in taskflow/queue/keys.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "taskflow"
SQL_CALLS = {"execute", "executemany", "copy", "stream"}
KEY_LIKE = re.compile(r"(^|\{)taskflow:[a-z{]")  # "taskflow:ready:..." — not messages like "taskflow: bad setting"


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(encoding="utf-8"))) for path in sorted(PACKAGE.rglob("*.py"))]


def _is_sql_text(node: ast.expr) -> bool:
    """A query named from the loaded .sql files, a plain variable holding one, or a constant string."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return node.value.id in {"QUERIES", "MIGRATIONS"}  # dicts loaded from the .sql files
    return isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def test_sql_is_never_built_from_strings() -> None:
    offenders = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS
                    and node.args and not _is_sql_text(node.args[0])):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {ast.unparse(node.args[0])[:60]}")
    assert offenders == [], "SQL built at run time (use a .sql file and bound parameters):\n" + "\n".join(offenders)


def test_redis_key_prefixes_live_in_keys_py() -> None:
    offenders = []
    for path, tree in _sources():
        if path.parts[-2:] == ("queue", "keys.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                if KEY_LIKE.search(text):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == [], "Redis key built outside taskflow/queue/keys.py:\n" + "\n".join(offenders)
