"""Operator settings (env `TASKFLOW_OPERATOR_*`), apart from the engine's `Settings`.

Built once at start-up by the CLI and passed explicitly, like `taskflow.core.settings.Settings`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from taskflow.core.durations import Seconds


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKFLOW_OPERATOR_", extra="ignore")

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch; empty means all (needs namespaces list/watch)."
    )
    leader_elect: bool = Field(False, description="Run the kopf handlers only while holding the Lease (HA).")
    lease_name: str = Field("taskflow-operator", description="Name of the coordination.k8s.io Lease.")
    lease_namespace: str | None = Field(None, description="Namespace of the Lease; POD_NAMESPACE when unset.")
    lease_duration: Seconds = Field(
        15.0, gt=0, description="A leader that has not renewed for this long is replaced, in seconds."
    )
    identity: str | None = Field(None, description="Lease holder identity; POD_NAME or the host name when unset.")

    status_min_interval: Seconds = Field(
        1.0,
        gt=0,
        description="Least time between two status patches of one TaskDag, in seconds; notifications that "
        "arrive in between are coalesced into one patch (plus 1 s per 5,000 steps for large DAGs).",
    )
    resync_interval: Seconds = Field(
        30.0, gt=0, description="How often every unfinished TaskDag's status is repaired from PostgreSQL, in seconds."
    )
    max_listed_steps: int = Field(
        500, ge=0, description="Most steps listed one by one in .status.steps (counts always cover all steps)."
    )
    max_step_events: int = Field(
        10, ge=0, description="Most per-step Events (retry, dead-letter) posted per status update of one TaskDag."
    )

    scale_interval: Seconds = Field(5.0, gt=0, description="How often worker Deployments are rescaled, in seconds.")
    prewarm: Seconds = Field(
        30.0, ge=0, description="Delayed tasks due within this many seconds count as work (workers start ahead)."
    )
    scale_down_stabilisation: Seconds = Field(
        120.0,
        ge=0,
        description="A Deployment is scaled down only to the highest replica count recommended during this "
        "many seconds (so it does not flap); scaling up is immediate.",
    )

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
