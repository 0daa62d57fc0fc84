"""kopf timer that scales annotated worker Deployments from queue depth (decisions in `scaling.py`).

Each tick per Deployment labelled `taskflow.io/component: worker`:
1. read its policy from annotations (a bad annotation gives one Warning Event, no scaling);
2. count runnable work of its queues in Redis (ready + leased + delayed due within the pre-warm);
3. set `controller.kubernetes.io/pod-deletion-cost` on its pods from their heartbeats (idle pods
   cheapest), so that a scale-down removes idle workers and keeps busy ones;
4. scale through the `scale` subresource: up at once, down only after the stabilisation window.
The recommendation history lives in memory of the leader; a new leader starts with the current
replica count as its only recommendation, so it never scales down before a full window passed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kopf

from taskflow.core.errors import InvalidInput, Unavailable
from taskflow.engine import Engine
from taskflow.operator import scaling
from taskflow.operator.builders import KubeEvent
from taskflow.operator.config import OperatorSettings
from taskflow.operator.kube import KubeApi, KubeError, ObjectRef

log = logging.getLogger(__name__)


class WorkerAutoscaler:
    def __init__(self, engine: Engine, kube: KubeApi, settings: OperatorSettings) -> None:
        self.engine = engine
        self.kube = kube
        self.settings = settings
        self._history: dict[str, list[scaling.Recommendation]] = {}
        self._complaint: dict[str, str] = {}  # uid -> last annotation problem reported (one Event each)

    def register(self, registry: kopf.OperatorRegistry) -> None:
        kopf.timer(
            "apps", "v1", "deployments", id="autoscale", registry=registry,
            labels={scaling.COMPONENT_LABEL: scaling.WORKER_COMPONENT},
            interval=self.settings.scale_interval, sharp=True,
        )(self.on_tick)  # fmt: skip
        # No change handlers on Deployments: kopf then writes nothing to them (no finalizer, no
        # last-handled annotation), so the chart owns every field but spec.replicas.

    async def on_tick(self, body: kopf.Body, **_: Any) -> None:
        meta = body.metadata
        namespace, name, uid = meta.namespace or "", meta.name or "", meta.uid or ""
        ref = ObjectRef("apps/v1", "Deployment", namespace, name, uid)
        try:
            policy = scaling.policy_from_annotations(
                dict(meta.annotations),
                default_prewarm_s=self.settings.prewarm,
                default_stabilisation_s=self.settings.scale_down_stabilisation,
            )
        except InvalidInput as exc:
            if self._complaint.get(uid) != exc.message:  # one log line and one Event per new problem
                self._complaint[uid] = exc.message
                log.warning("not scaling %s/%s: %s", namespace, name, exc.message)
                await self.kube.post_event(ref, KubeEvent("Warning", "BadScalingAnnotation", exc.message))
            return
        self._complaint.pop(uid, None)

        loads: list[scaling.QueueLoad] = []
        try:
            for queue in policy.queues:
                counts = await self.engine.queue.load(queue, int(policy.prewarm_s * 1000))
                loads.append(scaling.QueueLoad(counts["ready"], counts["leased"], counts["due_soon"]))
        except Unavailable as exc:
            log.warning("not scaling %s/%s: %s", namespace, name, exc.message)
            return  # keep the current count while Redis cannot be read
        work = scaling.runnable_work(loads)
        desired = scaling.desired_replicas(work, policy)
        current = int(body.spec.get("replicas", 1))
        now = time.monotonic()
        history = self._history.get(uid) or [scaling.Recommendation(now, current)]
        replicas, self._history[uid] = scaling.stabilise(
            current, desired, history, now=now, window_s=policy.stabilisation_s
        )

        match_labels = dict((body.spec.get("selector") or {}).get("matchLabels") or {})
        if match_labels:
            await self._mark_deletion_costs(namespace, match_labels)
        if replicas != current:
            await self.kube.scale_deployment(namespace, name, replicas)
            verb = "up" if replicas > current else "down"
            message = f"scaled {verb} from {current} to {replicas}: {work} runnable task(s) on {','.join(policy.queues)}"
            log.info("%s/%s %s", namespace, name, message)
            await self.kube.post_event(ref, KubeEvent("Normal", f"Scaled{verb.capitalize()}", message))

    async def _mark_deletion_costs(self, namespace: str, match_labels: dict[str, str]) -> None:
        """Idle pods (no task in flight per their heartbeat) become the cheapest to delete."""
        try:
            pods = await self.kube.list_pods(namespace, match_labels)
            states = await self.engine.queue.worker_states(sorted(pods))
        except (KubeError, Unavailable) as exc:
            log.warning("cannot read worker pods or heartbeats in %s: %s", namespace, exc)
            return
        busy: dict[str, int | None] = {}
        for pod, state in states.items():
            try:
                busy[pod] = int(state.get("busy", "0"))
            except ValueError:
                busy[pod] = None
        for pod, cost in scaling.deletion_cost_patches(pods, busy).items():
            try:
                await self.kube.annotate_pod(namespace, pod, {scaling.DELETION_COST_ANNOTATION: str(cost)})
            except KubeError as exc:
                log.warning("cannot set the deletion cost of pod %s/%s: %s", namespace, pod, exc)
