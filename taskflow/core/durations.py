"""Durations written the way the seed's environment variables write them (Go style: `60s`, `100ms`, `1m30s`)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Return seconds from a number (already seconds) or a Go-style duration string."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '60s' or '100ms'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(
                    f"cannot read {value!r} as a duration: write seconds (e.g. 1.5) or a Go-style duration such as 60s, 100ms or 1m30s"
                ) from None
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError("a duration must be a number of seconds or a string like '60s' or '100ms'")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative (got {value!r})")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]
"""A duration in seconds that also accepts `60s`, `100ms`, `1m30s` in settings."""
