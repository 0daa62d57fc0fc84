"""ServiceAccount tokens checked with TokenReview against the real kube-apiserver.

The API authenticates to the apiserver as its own ServiceAccount (a kubeconfig with that account's
token), which is allowed exactly `create` on `tokenreviews.authentication.k8s.io`. Clients present
tokens minted for the audience the API is configured with.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from taskflow.api.app import create_app
from taskflow.core.settings import Settings
from taskflow.engine import Engine
from tests.kube.cluster import KubeTestCluster
from tests.kube.conftest import BUILD_TIMEOUT
from tests.helpers import eventually
from tests.writes import written

pytestmark = [pytest.mark.kube, pytest.mark.timeout(BUILD_TIMEOUT + 300)]

AUDIENCE = "taskflow-test"
STATIC = "static-token-0123456789abcdef"


@dataclass
class Kube:
    cluster: KubeTestCluster
    namespace: str
    api_kubeconfig: Path

    def token(self, account: str, *, audience: str | None = AUDIENCE) -> str:
        exists = self.cluster.kubectl("get", "serviceaccount", account, "-n", self.namespace, check=False)
        if exists.returncode != 0:
            self.cluster.kubectl("create", "serviceaccount", account, "-n", self.namespace)
        args = ["create", "token", account, "-n", self.namespace, "--duration=10m"]
        if audience:
            args.append(f"--audience={audience}")
        return self.cluster.kubectl(*args).stdout.strip()


@pytest.fixture
def kube(cluster: KubeTestCluster) -> Kube:
    ns = f"tokenreview-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    role = f"{ns}-reviewer"
    cluster.kubectl("create", "clusterrole", role, "--verb=create", "--resource=tokenreviews.authentication.k8s.io")
    cluster.kubectl("create", "clusterrolebinding", role, f"--clusterrole={role}",
                    f"--serviceaccount={ns}:taskflow-api")
    api_token = cluster.token_for_service_account(ns, "taskflow-api")
    return Kube(cluster, ns, cluster.kubeconfig_for_token(api_token, user="taskflow-api"))


async def _serve(engine: Engine, settings: Settings, **update: object) -> TestServer:
    server = TestServer(create_app(engine, settings.model_copy(update=update)))
    await server.start_server()
    return server


async def _status(server: TestServer, token: str, *, submit: bool = True) -> int:
    """Status of a task submission (or, with submit=False, of a read that writes nothing)."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        url = str(server.make_url("/api/v1/tasks"))
        async with session.request("POST" if submit else "GET", url, json={"type": "noop"} if submit else None) as resp:
            return resp.status


@pytest.fixture
async def kube_api(kube: Kube, engine: Engine, settings: Settings, tmp_path: Path) -> AsyncIterator[TestServer]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{STATIC} ci\n")
    server = await _serve(engine, settings, auth_mode="tokens+kubernetes", auth_tokens_file=tokens,
                          auth_kube_kubeconfig=kube.api_kubeconfig, auth_kube_audience=AUDIENCE,
                          auth_kube_cache_ttl=0.0)
    yield server
    await server.close()


async def test_service_account_token_for_our_audience_is_accepted(kube: Kube, kube_api: TestServer) -> None:
    assert await _status(kube_api, kube.token("submitter")) == 202
    assert await _status(kube_api, STATIC) == 202  # the token file works beside it


async def test_wrong_audience_garbage_and_revoked_tokens_are_401_and_write_nothing(
    kube: Kube, kube_api: TestServer, engine: Engine
) -> None:
    good = kube.token("leaver")
    assert await _status(kube_api, good) == 202
    before = await written(engine)
    default_audience = kube.token("someone", audience=None)  # minted for the apiserver, not for us
    other_audience = kube.token("someone", audience="another-service")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    assert await _status(kube_api, default_audience) == 401
    assert await _status(kube_api, other_audience) == 401
    assert await _status(kube_api, forged) == 401
    assert await _status(kube_api, "not.a.jwt") == 401
    # Deleting the ServiceAccount revokes its tokens (the apiserver checks the account still exists,
    # once its own short token cache has moved on).
    kube.cluster.kubectl("delete", "serviceaccount", "leaver", "-n", kube.namespace)
    await eventually(lambda: _status(kube_api, good, submit=False), lambda status: status == 401, timeout=60,
                     what="the deleted account's token to be refused")
    assert await _status(kube_api, good) == 401
    assert await written(engine) == before


async def test_allowed_users_restricts_accounts(kube: Kube, engine: Engine, settings: Settings) -> None:
    server = await _serve(engine, settings, auth_mode="kubernetes", auth_kube_kubeconfig=kube.api_kubeconfig,
                          auth_kube_audience=AUDIENCE,
                          auth_kube_allowed_users=[f"system:serviceaccount:{kube.namespace}:operator"])
    try:
        assert await _status(server, kube.token("operator")) == 202
        assert await _status(server, kube.token("stranger")) == 401
    finally:
        await server.close()


async def test_answers_are_cached_briefly(kube: Kube, engine: Engine, settings: Settings) -> None:
    server = await _serve(engine, settings, auth_mode="kubernetes", auth_kube_kubeconfig=kube.api_kubeconfig,
                          auth_kube_audience=AUDIENCE, auth_kube_cache_ttl=300.0)
    try:
        token = kube.token("cached")
        assert await _status(server, token) == 202
        kube.cluster.kubectl("delete", "serviceaccount", "cached", "-n", kube.namespace)
        # Within the cache TTL the earlier answer stands (documented: revocation takes up to the TTL).
        assert await _status(server, token) == 202
    finally:
        await server.close()


async def test_api_identity_without_tokenreview_permission_is_503_and_logged(
    kube: Kube, engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    weak = kube.cluster.kubeconfig_for_token(kube.token("no-rbac", audience=None), user="no-rbac")
    server = await _serve(engine, settings, auth_mode="kubernetes", auth_kube_kubeconfig=weak,
                          auth_kube_audience=AUDIENCE)
    token = kube.token("submitter")
    try:
        with caplog.at_level(logging.ERROR, logger="taskflow.api.auth"):
            assert await _status(server, token) == 503
    finally:
        await server.close()
    assert "tokenreviews.authentication.k8s.io" in caplog.text
    assert token not in caplog.text
