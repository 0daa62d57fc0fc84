"""Authentication of the REST API: bearer tokens from a file, and Kubernetes ServiceAccount tokens.

Modes (`TASKFLOW_AUTH_MODE`): `tokens` (the default), `kubernetes`, `tokens+kubernetes`, `none`.
`/health` and `/ready` stay open so that kubelet probes work without a secret; every other path,
including unknown ones (no endpoint discovery without a token), needs `Authorization: Bearer <token>`.

Design notes:
- The token file is re-read when its inode, size or mtime changes, so rotating a token means
  rewriting the file (or updating the mounted Secret, which kubelet swaps atomically) — no restart.
  If the file cannot be read after start-up, no file token is accepted until it can (fail closed).
- Comparisons are constant-time: we compare SHA-256 digests of the presented token with each
  configured digest using `hmac.compare_digest`, and always look at every configured token, so
  neither the position of a match nor the length of a token shows in the timing.
- TokenReview answers (positive and negative) are cached for `auth_kube_cache_ttl` seconds, keyed by
  the token's digest (the token itself is never stored, logged or echoed).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from taskflow.api.errors import error_response
from taskflow.core.errors import TaskflowError, Unavailable
from taskflow.core.settings import Settings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/health", "/ready"})
MIN_TOKEN_LENGTH = 16
PRINCIPAL = web.RequestKey("principal", str)
"""Who sent the request: the token's name from the file, or the Kubernetes username."""
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_CACHE_LIMIT = 10_000


class AuthConfigError(TaskflowError):
    """The authentication settings cannot work; the message says what to set."""


def _digest(token: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 as surrogates; keep them, never raise on them.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    name: str


def parse_token_lines(text: str) -> tuple[list[_Entry], list[str]]:
    """Entries of a token file, and one problem per bad line (naming the line, never the token)."""
    entries: list[_Entry] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        token, _, name = line.partition(" ")
        if len(token) < MIN_TOKEN_LENGTH:
            problems.append(f"line {number}: the token is shorter than {MIN_TOKEN_LENGTH} characters")
            continue
        entries.append(_Entry(_digest(token), name.strip() or f"token-line-{number}"))
    return entries, problems


class TokenFile:
    """The accepted static tokens, re-read whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._entries: list[_Entry] = []

    def load_strict(self) -> None:
        """First load at start-up: any problem is fatal, with a message saying what to fix."""
        try:
            text = self.path.read_text(encoding="utf-8")
            stamp = self._stat()
        except OSError as exc:
            raise AuthConfigError(
                f"cannot read TASKFLOW_AUTH_TOKENS_FILE {self.path}: {exc.strerror}; create it with one token per line"
            ) from None
        entries, problems = parse_token_lines(text)
        if problems:
            raise AuthConfigError(f"TASKFLOW_AUTH_TOKENS_FILE {self.path}: " + "; ".join(problems))
        if not entries:
            raise AuthConfigError(
                f"TASKFLOW_AUTH_TOKENS_FILE {self.path} holds no token; add one per line "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        self._entries, self._stamp = entries, stamp

    def _stat(self) -> tuple[int, int, int, int]:
        st = os.stat(self.path)  # follows symlinks: a Secret volume swaps its ..data link
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _refresh(self) -> None:
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            if self._stamp is not None:
                log.error("cannot read the token file %s (%s); no file token is accepted until it can be read",
                          self.path, exc.strerror)
            self._entries, self._stamp = [], None
            return
        entries, problems = parse_token_lines(text)
        for problem in problems:
            log.warning("token file %s: %s; that line is ignored", self.path, problem)
        log.info("token file %s re-read: %d tokens", self.path, len(entries))
        self._entries, self._stamp = entries, stamp

    def check(self, token: str) -> str | None:
        """The name of the matching token, or None. Looks at every entry (constant time per entry)."""
        self._refresh()
        presented = _digest(token)
        found: str | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry.name
        return found


class TokenReviewer:
    """Validates Kubernetes ServiceAccount tokens with the TokenReview API (authentication.k8s.io/v1)."""

    def __init__(self, settings: Settings) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if settings.auth_kube_kubeconfig is not None:
                config.load_kube_config(
                    config_file=str(settings.auth_kube_kubeconfig), client_configuration=configuration
                )
            else:
                config.load_incluster_config(client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            raise AuthConfigError(
                f"cannot configure the Kubernetes client for TokenReview ({exc}); run in a pod with a "
                "ServiceAccount, or set TASKFLOW_AUTH_KUBE_KUBECONFIG"
            ) from None
        self._api_client = client.ApiClient(configuration)
        self._authn = client.AuthenticationV1Api(self._api_client)
        self._client = client
        self.audience = settings.auth_kube_audience
        self.allowed_users = frozenset(settings.auth_kube_allowed_users)
        self.cache_ttl = settings.auth_kube_cache_ttl
        self._cache: dict[bytes, tuple[float, str | None]] = {}

    def close(self) -> None:
        self._api_client.close()

    async def review(self, token: str) -> str | None:
        """The Kubernetes username behind the token, or None if it is not valid for our audience."""
        key = _digest(token)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = await asyncio.to_thread(self._ask, token)
        if self.cache_ttl > 0:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
            self._cache[key] = (now + self.cache_ttl, user)
        return user

    def _ask(self, token: str) -> str | None:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        c = self._client
        body = c.V1TokenReview(spec=c.V1TokenReviewSpec(token=token, audiences=[self.audience]))
        try:
            answer: Any = self._authn.create_token_review(body)
        except ApiException as exc:
            # Only status and reason: never the bodies, which could echo the request.
            if exc.status in (401, 403):
                log.error("the Kubernetes API refused our TokenReview (%s %s); grant this API's identity "
                          "`create` on `tokenreviews.authentication.k8s.io`", exc.status, exc.reason)
            raise Unavailable(
                f"cannot check the token with the Kubernetes API right now ({exc.status} {exc.reason}); retry later"
            ) from None
        except (HTTPError, OSError) as exc:
            raise Unavailable(
                f"cannot reach the Kubernetes API to check the token ({type(exc).__name__}); retry later"
            ) from None
        status = answer.status
        if status is None or not status.authenticated or status.user is None:
            return None
        if self.audience not in (status.audiences or []):
            return None
        username = str(status.user.username or "")
        if self.allowed_users and username not in self.allowed_users:
            log.info("Kubernetes user %s authenticated but is not in TASKFLOW_AUTH_KUBE_ALLOWED_USERS", username)
            return None
        return username


class Authenticator:
    """What the middleware asks: who is behind this bearer token (or nobody)?"""

    def __init__(self, tokens: TokenFile | None, reviewer: TokenReviewer | None) -> None:
        self.tokens = tokens
        self.reviewer = reviewer

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator | None:
        """None when auth is disabled; raises `AuthConfigError` when the chosen mode is not configured."""
        mode = settings.auth_mode
        if mode == "none":
            log.warning("API authentication is DISABLED (TASKFLOW_AUTH_MODE=none): anyone who can reach the "
                        "port can submit and cancel work; use this only for local development")
            return None
        tokens = reviewer = None
        if "tokens" in mode:
            if settings.auth_tokens_file is None:
                raise AuthConfigError(
                    f"TASKFLOW_AUTH_MODE={mode} needs TASKFLOW_AUTH_TOKENS_FILE (a file with one bearer token per "
                    "line); or set TASKFLOW_AUTH_MODE=kubernetes, or TASKFLOW_AUTH_MODE=none for local development"
                )
            tokens = TokenFile(settings.auth_tokens_file)
            tokens.load_strict()
        if "kubernetes" in mode:
            reviewer = TokenReviewer(settings)
        return cls(tokens, reviewer)

    async def authenticate(self, token: str) -> str | None:
        if self.tokens is not None:
            name = self.tokens.check(token)
            if name is not None:
                return name
        if self.reviewer is not None and _JWT.fullmatch(token):
            return await self.reviewer.review(token)
        return None

    def close(self) -> None:
        if self.reviewer is not None:
            self.reviewer.close()


def _unauthorized(message: str, *, invalid: bool) -> web.Response:
    response = error_response(401, message)
    challenge = 'Bearer realm="taskflow"'
    if invalid:
        challenge += ', error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def auth_middleware(authenticator: Authenticator) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def authenticate(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _unauthorized(
                "authentication required: send `Authorization: Bearer <token>` (the CLI and client read "
                "TASKFLOW_API_TOKEN or TASKFLOW_API_TOKEN_FILE)",
                invalid=False,
            )
        principal = await authenticator.authenticate(token)
        if principal is None:
            log.info("rejected a bearer token for %s %s from %s", request.method, request.path, request.remote)
            return _unauthorized("the bearer token is not valid (unknown, expired or revoked)", invalid=True)
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate
