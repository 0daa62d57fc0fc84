"""The token file check in isolation: constant-time comparison over every entry, reload on change."""

from __future__ import annotations

import hmac
import os
from pathlib import Path

import pytest

from taskflow.api import auth
from taskflow.api.auth import TokenFile

TOKENS = [f"token-number-{i:02d}-0123456789" for i in range(5)]


@pytest.fixture
def token_file(tmp_path: Path) -> TokenFile:
    path = tmp_path / "tokens"
    path.write_text("".join(f"{t} name{i}\n" for i, t in enumerate(TOKENS)))
    tokens = TokenFile(path)
    tokens.load_strict()
    return tokens


@pytest.mark.parametrize("presented", [TOKENS[0], TOKENS[-1], "no-such-token-0123456789", "x"])
def test_every_entry_is_compared_with_compare_digest(
    token_file: TokenFile, presented: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    token_file.check(presented)
    # Same number of comparisons wherever (or whether) the token matches, all of equal-length digests.
    assert calls == [(32, 32)] * len(TOKENS)


def test_names_and_reload_on_change(token_file: TokenFile) -> None:
    assert token_file.check(TOKENS[3]) == "name3"
    stat = token_file.path.stat()
    token_file.path.write_text(f"{TOKENS[4]} renamed\n")
    os.utime(token_file.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # even within one mtime tick
    assert token_file.check(TOKENS[3]) is None
    assert token_file.check(TOKENS[4]) == "renamed"
