"""Hypothesis strategies generated from our OpenAPI document (the subset of JSON Schema pydantic emits).

`valid(schema)` draws values the schema accepts; `request_bodies(schema)` mixes those with mutations
(a field dropped, replaced by any JSON, an unknown field, boundary numbers, NUL and odd Unicode in strings,
deep nesting) and with raw bytes that are not JSON at all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import strategies as st

Schema = dict[str, Any]

# Strings that have broken parsers, databases and key layouts before; NUL (which PostgreSQL text and
# jsonb cannot hold) is drawn often on purpose.
odd_text = st.sampled_from(["\x00", "a\x00b", "\x00" * 3]) | st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\u202e", "\ud7ff", "\U0001f600", "../../etc/passwd", "'; DROP TABLE taskflow_tasks;--",
     "{taskflow:default}", "a}:{b", "%00", "\\u0000", "A" * 300, "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
     "1999-12-31T23:59:59Z", "2000-01-01T00:00:00+14:00", "NaN", "-0", "null", "\n", "default\n"]
) | st.text(max_size=40)
boundary_ints = st.sampled_from(
    [0, -1, 1, 100, 101, -1_000_000, 1_000_000, -1_000_001, 1_000_001, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]
) | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what JSON encoders emit
any_json = st.recursive(
    st.one_of(st.none(), st.booleans(), boundary_ints, st.floats(allow_nan=False, allow_infinity=False), odd_text,
              odd_text),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(odd_text, children, max_size=4),
    max_leaves=12,
)


def _resolve(schema: Schema, defs: dict[str, Schema]) -> Schema:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _datetimes() -> st.SearchStrategy[str]:
    now = datetime.now(UTC)
    return st.datetimes(min_value=datetime(2000, 1, 2), max_value=(now + timedelta(days=300)).replace(tzinfo=None)).map(
        lambda d: d.replace(tzinfo=UTC).isoformat()
    ) | st.just("0001-01-01T00:00:00Z")


def valid(schema: Schema, defs: dict[str, Schema], *, depth: int = 0) -> st.SearchStrategy[Any]:
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        return st.one_of([valid(s, defs, depth=depth) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind is None:  # JsonValue: anything
        return any_json
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), max_value=schema.get("maximum"), allow_nan=False)
    if kind == "string":
        if schema.get("format") == "uuid":
            return st.uuids().map(str)
        if schema.get("format") == "date-time":
            return _datetimes()
        if "pattern" in schema:
            strategy = st.from_regex(re.compile(schema["pattern"]), fullmatch=True)
        else:
            strategy = st.text(min_size=schema.get("minLength", 0), max_size=12)
        lo, hi = schema.get("minLength", 0), schema.get("maxLength")
        return strategy.filter(lambda s: len(s) >= lo and (hi is None or len(s) <= hi))
    if kind == "array":
        return st.lists(valid(schema["items"], defs, depth=depth + 1), min_size=max(1, schema.get("minItems", 0)),
                        max_size=4)
    if kind == "object":
        props: dict[str, Schema] = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: valid(v, defs, depth=depth + 1) for k, v in props.items() if k in required},
            optional={k: valid(v, defs, depth=depth + 1) for k, v in props.items() if k not in required},
        )
    raise AssertionError(f"schema kind {kind!r} not handled: {schema}")


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    value = draw(base)
    if not isinstance(value, dict) or not value:
        return draw(any_json)
    value = dict(value)
    key = draw(st.sampled_from(sorted(value)))
    how = draw(st.sampled_from(["drop", "replace", "unknown", "odd_text", "boundary", "deep", "list_item"]))
    if how == "drop":
        del value[key]
    elif how == "replace":
        value[key] = draw(any_json)
    elif how == "unknown":
        value[draw(odd_text)] = draw(any_json)
    elif how == "odd_text":
        value[key] = draw(odd_text)
    elif how == "boundary":
        value[key] = draw(boundary_ints)
    elif how == "deep":
        levels = draw(st.integers(min_value=1, max_value=200))  # orjson.dumps stops at 255
        value[key] = orjson.loads(b"[" * levels + b"]" * levels)
    elif how == "list_item" and isinstance(value[key], list) and value[key]:
        items = list(value[key])
        items[draw(st.integers(0, len(items) - 1))] = draw(_mutated(st.just(items[0])) if isinstance(items[0], dict)
                                                           else any_json)
        value[key] = items
    return value


def request_bodies(schema: Schema, defs: dict[str, Schema]) -> st.SearchStrategy[bytes]:
    """Bodies to POST: mostly JSON (valid or mutated), some raw bytes."""
    good = valid(schema, defs)
    as_json = st.one_of(good, _mutated(good), _mutated(good), any_json).map(orjson.dumps)
    raw = st.binary(max_size=64) | st.sampled_from(
        [b"", b"{", b"null", b"[]", b'{"type": "noop"', b"\xff\xfe", b'{"type": "\\ud800"}', b'{"type": "noop"}' * 2,
         b"{" * 2000 + b"}" * 2000]
    )
    return st.one_of(as_json, as_json, as_json, raw)
