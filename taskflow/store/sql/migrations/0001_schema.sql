-- Taskflow schema, version 1.
-- PostgreSQL holds the truth about every task and DAG run; Redis only indexes what is due.

CREATE SEQUENCE taskflow_fence_seq;

CREATE TABLE taskflow_dag_runs (
    id               uuid PRIMARY KEY,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    idempotency_key  text UNIQUE,
    total_steps      integer NOT NULL CHECK (total_steps > 0),
    unfinished_steps integer NOT NULL CHECK (unfinished_steps >= 0),
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);

CREATE TABLE taskflow_tasks (
    id               uuid PRIMARY KEY,
    type             text NOT NULL,
    queue            text NOT NULL DEFAULT 'default',
    payload          jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL
                     CHECK (status IN ('pending', 'queued', 'running', 'completed', 'failed', 'dlq', 'cancelled')),
    priority         integer NOT NULL DEFAULT 0,
    scheduled_at     timestamptz NOT NULL DEFAULT now(),
    retry_count      integer NOT NULL DEFAULT 0,   -- failed attempts counted against max_retries
    max_retries      integer NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    attempts         integer NOT NULL DEFAULT 0,   -- every start ever, including after a manual DLQ retry
    error_message    text,
    result           jsonb,
    fence            bigint NOT NULL DEFAULT 0,    -- taken from taskflow_fence_seq at every start
    worker_id        text,
    lease_expires_at timestamptz,
    dag_run_id       uuid REFERENCES taskflow_dag_runs (id) ON DELETE CASCADE,
    step_id          text,
    pending_parents  integer NOT NULL DEFAULT 0 CHECK (pending_parents >= 0),
    idempotency_key  text UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    UNIQUE (dag_run_id, step_id)
);

-- The reconciler's sweeps: claimable tasks by the time they last changed status, expired leases.
CREATE INDEX taskflow_tasks_claimable ON taskflow_tasks (updated_at) WHERE status IN ('queued', 'failed');
CREATE INDEX taskflow_tasks_leases ON taskflow_tasks (lease_expires_at) WHERE status = 'running';
-- Listing by status (the DLQ among them) and by type, newest pages by id.
CREATE INDEX taskflow_tasks_status ON taskflow_tasks (status, id);
CREATE INDEX taskflow_tasks_type ON taskflow_tasks (type, id);

CREATE TABLE taskflow_dag_edges (
    dag_run_id uuid NOT NULL REFERENCES taskflow_dag_runs (id) ON DELETE CASCADE,
    parent_id  uuid NOT NULL,
    child_id   uuid NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX taskflow_dag_edges_child ON taskflow_dag_edges (child_id);
CREATE INDEX taskflow_dag_edges_run ON taskflow_dag_edges (dag_run_id);

CREATE TABLE taskflow_attempts (
    task_id     uuid NOT NULL REFERENCES taskflow_tasks (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    fence       bigint NOT NULL,
    worker_id   text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('completed', 'failed', 'lease_expired', 'handed_back', 'cancelled', 'dead_lettered')),
    error       text,
    PRIMARY KEY (task_id, attempt)
);

-- Legal status transitions; the same table as taskflow.core.status.ALLOWED_TASK_TRANSITIONS.
CREATE TABLE taskflow_task_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO taskflow_task_transitions (from_status, to_status) VALUES
    ('pending', 'queued'), ('pending', 'cancelled'),
    ('queued', 'running'), ('queued', 'cancelled'),
    ('running', 'completed'), ('running', 'failed'), ('running', 'dlq'), ('running', 'cancelled'),
    ('running', 'queued'),
    ('failed', 'running'), ('failed', 'cancelled'),
    ('dlq', 'queued');

CREATE FUNCTION taskflow_check_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM taskflow_task_transitions
                   WHERE from_status = OLD.status AND to_status = NEW.status) THEN
        RAISE EXCEPTION 'illegal task status transition % -> % (task %)', OLD.status, NEW.status, OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END
$$;

CREATE TRIGGER taskflow_tasks_transition
    BEFORE UPDATE OF status ON taskflow_tasks
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION taskflow_check_transition();
