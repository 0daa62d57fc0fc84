"""Reading request bodies safely: size, JSON nesting depth and characters PostgreSQL cannot store.

The body size is capped by aiohttp itself (`client_max_size` = TASKFLOW_MAX_BODY_BYTES, answered
with 413). Nesting depth is checked on the raw bytes before the parsed value reaches pydantic or
PostgreSQL (whose jsonb parser has its own stack limit and would fail with an error that is not the
caller's to read). Everything here runs before anything is written.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from taskflow.core.errors import InvalidInput

# A JSON string, written so that the regex engine never backtracks (unrolled loop).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"\[\]|\{\}")
# The escape of U+0000 that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(rb'(?<!\\)(?:\\\\)*\\u0000')


def deeper_than(raw: bytes, limit: int) -> bool:
    """True if the JSON text nests arrays/objects more than `limit` levels deep.

    Strings are removed first (brackets inside them do not count); each regex pass then removes every
    innermost `[]` / `{}` pair, i.e. exactly one level, so `limit` passes empty any text within the limit.
    The work shrinks with every pass; all of it runs in C.
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = _INNERMOST.sub(b"", brackets)
    return bool(brackets)


def parse_json_object(raw: bytes, *, max_depth: int) -> dict[str, Any]:
    """Parse a request body that must be a JSON object, enforcing the depth limit and refusing NUL."""
    if not raw.strip():
        raise InvalidInput("the request body is empty; send a JSON object")
    too_deep = InvalidInput(
        f"the request body nests arrays/objects more than {max_depth} levels deep "
        "(TASKFLOW_MAX_JSON_DEPTH); flatten the payload"
    )
    try:
        data: Any = orjson.loads(raw)  # C parser with its own cap (1024 levels), so parsing itself is safe
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise too_deep from None
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
    # Valid JSON, so the brackets balance; nothing has looked at the value yet.
    if deeper_than(raw, max_depth):
        raise too_deep
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    if _NUL_ESCAPE.search(raw):
        raise InvalidInput("strings must not contain the NUL character (\\u0000): PostgreSQL cannot store it")
    return data
