"""The few Kubernetes API calls the operator makes outside kopf's own watches.

kopf watches and patches through its own client; the status follower, the autoscaler, Events and
the leader Lease need calls outside a handler's patch, made here with the official client in
worker threads (its calls block). Errors come back as `KubeError` with the HTTP status.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from taskflow.operator.builders import GROUP, KIND, PLURAL, VERSION, KubeEvent, rfc3339

log = logging.getLogger(__name__)

COMPONENT = "taskflow-operator"
_event_seq = itertools.count()


class KubeError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {reason}")
        self.status = status


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Enough of an object to post an Event about it."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


def taskdag_ref(namespace: str, name: str, uid: str) -> ObjectRef:
    return ObjectRef(f"{GROUP}/{VERSION}", KIND, namespace, name, uid)


def default_identity() -> str:
    return os.environ.get("POD_NAME") or socket.gethostname()


def load_config() -> client.ApiClient:
    """In-cluster service account when running in a pod, else KUBECONFIG / ~/.kube/config."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)


class KubeApi:
    def __init__(self, api_client: client.ApiClient, identity: str) -> None:
        self.api_client = api_client
        self.identity = identity
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)

    def close(self) -> None:
        self.api_client.close()

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as exc:
            raise KubeError(int(exc.status or 0), str(exc.reason)) from exc

    # --- TaskDags -----------------------------------------------------------------------------------

    async def get_taskdag(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = await self.call(
                self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
            )
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    async def patch_taskdag_status(
        self, namespace: str, name: str, status: Mapping[str, Any], *, resource_version: str | None = None
    ) -> None:
        """Merge-patch `.status`; with `resource_version`, a concurrent change makes it fail with 409."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        await self.call(
            self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name, body
        )

    # --- workers --------------------------------------------------------------------------------------

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        await self.call(
            self.apps.patch_namespaced_deployment_scale, name, namespace, {"spec": {"replicas": replicas}}
        )

    async def list_pods(self, namespace: str, match_labels: Mapping[str, str]) -> dict[str, dict[str, str]]:
        """Pods selected by `match_labels`: name -> annotations (pods being deleted are left out)."""
        selector = ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
        pods = await self.call(self.core.list_namespaced_pod, namespace, label_selector=selector)
        return {
            p.metadata.name: dict(p.metadata.annotations or {})
            for p in pods.items
            if p.metadata.deletion_timestamp is None
        }

    async def annotate_pod(self, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        await self.call(self.core.patch_namespaced_pod, name, namespace, {"metadata": {"annotations": dict(annotations)}})

    # --- Events ---------------------------------------------------------------------------------------

    async def post_event(self, ref: ObjectRef, event: KubeEvent) -> None:
        """Post a core/v1 Event about `ref`; failures are logged, never raised (Events are best effort)."""
        now = datetime.now(UTC)
        body = {
            "metadata": {
                "name": f"{ref.name}.{now.strftime('%Y%m%d%H%M%S%f')}{next(_event_seq):04d}",
                "namespace": ref.namespace,
            },
            "involvedObject": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "uid": ref.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "source": {"component": COMPONENT},
            "reportingComponent": f"{GROUP}/operator",
            "reportingInstance": self.identity,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
        }
        try:
            await self.call(self.core.create_namespaced_event, ref.namespace, body)
        except KubeError as exc:
            log.warning("could not post Event %s on %s/%s: %s", event.reason, ref.namespace, ref.name, exc)
