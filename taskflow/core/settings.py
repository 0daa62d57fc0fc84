"""Typed settings read from `TASKFLOW_*` environment variables (names from the seed where it has them).

Settings are built once at start-up and passed explicitly; nothing reads the environment at import time.
"""

from __future__ import annotations

import os
import socket

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pathlib import Path
from typing import Annotated, Literal

from taskflow.core.durations import Seconds
from taskflow.core.names import QUEUE_NAME_PATTERN


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASKFLOW_", extra="ignore")

    # --- connections -----------------------------------------------------------------------
    postgres_dsn: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/taskflow"),
        description="libpq connection string of the PostgreSQL database that holds the truth.",
    )
    postgres_pool_size: int = Field(10, ge=1, description="Connections per process in the PostgreSQL pool.")
    redis_addr: str = Field("127.0.0.1:6379", description="host:port of Redis (or a redis:// / rediss:// URL).")
    redis_db: int = Field(0, ge=0, description="Redis logical database number.")
    redis_password: SecretStr | None = Field(None, description="Redis AUTH password (ElastiCache auth token).")
    redis_tls: bool = Field(False, description="Connect to Redis over TLS (ElastiCache in-transit encryption).")

    # --- API ---------------------------------------------------------------------------------
    http_host: str = Field("0.0.0.0", description="Address the REST API listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port the REST API listens on.")
    max_body_bytes: int = Field(32 * 1024 * 1024, description="Largest request body the API reads, in bytes.")
    max_payload_bytes: int = Field(1024 * 1024, description="Largest payload of one task, in bytes of JSON.")
    max_dag_steps: int = Field(20_000, ge=1, description="Most steps one DAG may have.")
    max_dag_edges: int = Field(100_000, ge=0, description="Most edges one DAG may have.")
    max_json_depth: int = Field(
        64, ge=2, le=512, description="Deepest nesting of arrays/objects a request body may have (checked before parsing)."
    )

    # --- API authentication (see docs/security.md) ---------------------------------------------
    auth_mode: Literal["none", "tokens", "kubernetes", "tokens+kubernetes"] = Field(
        "tokens",
        description="How the REST API authenticates callers. `tokens`: bearer tokens from auth_tokens_file; "
        "`kubernetes`: ServiceAccount tokens checked with the TokenReview API; `none`: no authentication "
        "(local development only). The API refuses to start when the chosen mode has nothing configured.",
    )
    auth_tokens_file: Path | None = Field(
        None,
        description="File of accepted bearer tokens, one per line: `<token> [name]`; `#` starts a comment. "
        "Re-read when it changes (rotation without restart; a mounted Kubernetes Secret works).",
    )
    auth_kube_audience: str = Field(
        "taskflow", min_length=1, description="Audience a ServiceAccount token must be minted for (kubernetes modes)."
    )
    auth_kube_kubeconfig: Path | None = Field(
        None, description="Kubeconfig used to call TokenReview; unset = the pod's in-cluster ServiceAccount."
    )
    auth_kube_allowed_users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="If set, only these Kubernetes usernames (e.g. system:serviceaccount:ns:name) are accepted "
        "(comma separated).",
    )
    auth_kube_cache_ttl: Seconds = Field(
        10.0, ge=0, description="How long a TokenReview answer is reused, in seconds (0 = ask every time)."
    )

    # --- worker ------------------------------------------------------------------------------
    worker_id: str = Field(default_factory=_default_worker_id, description="Identifier of this worker process.")
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["default"], description="Queues this worker takes tasks from (comma separated)."
    )
    concurrency: int = Field(16, ge=1, description="Tasks one worker process runs at the same time.")
    claim_batch: int = Field(32, ge=1, description="Most tasks one claim takes from Redis in one round trip.")
    lock_ttl: Seconds = Field(
        60.0,
        gt=0,
        description="Lease of a claimed task, in seconds; a worker renews it every lock_ttl/3 while the handler runs, "
        "and a task whose lease ran out is given to another worker.",
    )
    poll_interval: Seconds = Field(
        0.1,
        gt=0,
        description="Longest an idle worker waits before it looks for due delayed tasks again, in seconds. "
        "New ready tasks wake workers at once.",
    )
    shutdown_grace: Seconds = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long in-flight tasks may run before they are handed back, in seconds "
        "(keep below the pod's terminationGracePeriodSeconds).",
    )
    imports: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Python modules to import so their @taskflow.task handlers register."
    )

    # --- retries -----------------------------------------------------------------------------
    default_max_retries: int = Field(3, ge=0, le=100, description="Retries of a task that does not say.")
    backoff_base: Seconds = Field(1.0, ge=0, description="Delay before the first retry; doubles each retry.")
    backoff_cap: Seconds = Field(300.0, ge=0, description="Longest delay between two attempts.")

    # --- reconciler ----------------------------------------------------------------------------
    reconcile_interval: Seconds = Field(
        1.0, gt=0, description="How often the reconciler repairs Redis from PostgreSQL and reclaims expired leases."
    )
    requeue_grace: Seconds = Field(
        5.0,
        ge=0,
        description="A queued task must be this old before the reconciler re-enqueues it (gives the normal path time).",
    )
    full_resync_interval: Seconds = Field(
        30.0, gt=0, description="How often the reconciler compares every due task in PostgreSQL with Redis."
    )

    @field_validator("queues", "imports", "auth_kube_allowed_users", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("queues")
    @classmethod
    def _check_queue_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not QUEUE_NAME_PATTERN.fullmatch(name):
                raise ValueError(f"queue name {name!r} must match {QUEUE_NAME_PATTERN.pattern}")
        if not value:
            raise ValueError("name at least one queue")
        return value
