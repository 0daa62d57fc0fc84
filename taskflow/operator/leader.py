"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it.

Several operator replicas may run; only the Lease holder runs the kopf handlers (TaskDags and
autoscaling), every replica serves HTTP. Safety rests on three points:
- Every write is a replace with the resourceVersion last read, so of two replicas racing for an
  expired Lease exactly one wins (the other gets 409 Conflict).
- Expiry is judged by the local monotonic clock: a Lease counts as expired only if its
  resourceVersion has not changed for `duration` seconds *as observed here*, so clock skew between
  nodes cannot make a follower take over early.
- The holder gives up (and the process exits) when it has not renewed for 2/3 of `duration`,
  which is before any follower may take over.
Handlers are idempotent anyway (the engine's idempotency key, merge patches), so a short overlap
during a partition would cost duplicate work, not duplicate runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from taskflow.operator.kube import KubeApi, KubeError

log = logging.getLogger(__name__)


def _micro_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeadershipLost(Exception):
    pass


class LeaderElector:
    def __init__(self, kube: KubeApi, *, name: str, namespace: str, identity: str, duration_s: float) -> None:
        self.kube = kube
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.duration_s = duration_s
        self._observed: tuple[str | None, float] = (None, 0.0)  # (resourceVersion, when first seen)
        self._last_renew = 0.0

    def _body(self, *, resource_version: str | None, acquire_time: str, transitions: int) -> dict[str, Any]:
        now = _micro_time(datetime.now(UTC))
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration_s)),
                "acquireTime": acquire_time,
                "renewTime": now,
                "leaseTransitions": transitions,
            },
        }

    async def try_acquire(self) -> bool:
        """One attempt to take or renew the Lease; True if this replica holds it afterwards."""
        coordination = self.kube.coordination
        try:
            lease = await self.kube.call(coordination.read_namespaced_lease, self.name, self.namespace)
        except KubeError as exc:
            if exc.status != 404:
                raise
            now = _micro_time(datetime.now(UTC))
            try:
                await self.kube.call(
                    coordination.create_namespaced_lease,
                    self.namespace,
                    self._body(resource_version=None, acquire_time=now, transitions=0),
                )
            except KubeError as create_exc:
                if create_exc.status == 409:  # another replica created it first
                    return False
                raise
            self._last_renew = time.monotonic()
            return True

        spec = lease.spec
        version = lease.metadata.resource_version
        holder = spec.holder_identity if spec else None
        if version != self._observed[0]:
            self._observed = (version, time.monotonic())
        mine = holder == self.identity
        expired = time.monotonic() - self._observed[1] > self.duration_s
        if not (mine or not holder or expired):
            return False
        transitions = int(spec.lease_transitions or 0) if spec else 0
        acquire_time = (
            _micro_time(spec.acquire_time) if mine and spec and spec.acquire_time else _micro_time(datetime.now(UTC))
        )
        body = self._body(
            resource_version=version, acquire_time=acquire_time, transitions=transitions if mine else transitions + 1
        )
        try:
            await self.kube.call(coordination.replace_namespaced_lease, self.name, self.namespace, body)
        except KubeError as exc:
            if exc.status == 409:  # someone else wrote first: they hold it
                return False
            raise
        if not mine:
            log.info("took the Lease %s/%s (previous holder %r)", self.namespace, self.name, holder)
        self._last_renew = time.monotonic()
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or `stop` is set (False)."""
        log.info("waiting for the Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("leading as %s", self.identity)
                    return True
            except KubeError as exc:
                log.warning("cannot read or write the Lease: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.duration_s / 5)
            except TimeoutError:
                pass
        return False

    async def hold(self) -> None:
        """Renew until leadership is lost; then raise `LeadershipLost`. Cancel to stop renewing."""
        while True:
            await asyncio.sleep(self.duration_s / 5)
            try:
                if not await self.try_acquire():
                    raise LeadershipLost(f"another replica took the Lease {self.namespace}/{self.name}")
            except KubeError as exc:
                log.warning("cannot renew the Lease: %s", exc)
            if time.monotonic() - self._last_renew > self.duration_s * 2 / 3:
                raise LeadershipLost(f"could not renew the Lease {self.namespace}/{self.name} in time")

    async def release(self) -> None:
        """On a clean shutdown: clear the holder so a follower takes over at once, not after expiry."""
        try:
            lease = await self.kube.call(self.kube.coordination.read_namespaced_lease, self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            body = self._body(
                resource_version=lease.metadata.resource_version,
                acquire_time=_micro_time(lease.spec.acquire_time or datetime.now(UTC)),
                transitions=int(lease.spec.lease_transitions or 0),
            )
            body["spec"]["holderIdentity"] = None
            await self.kube.call(self.kube.coordination.replace_namespaced_lease, self.name, self.namespace, body)
        except KubeError as exc:
            log.warning("could not release the Lease: %s", exc)
