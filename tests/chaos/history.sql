-- The fault-injection suite's recorder, installed in a test database only (never a migration).
-- Every status a task takes is appended here by the same transaction that changed it; `seq`
-- comes from a sequence inside that transaction, so if transaction X committed before
-- transaction Y began, X's rows sort before Y's (what the DAG order check relies on).
CREATE TABLE chaos_transitions (
    seq        bigserial PRIMARY KEY,
    task_id    uuid NOT NULL,
    old_status text,
    new_status text NOT NULL,
    fence      bigint NOT NULL,
    at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION chaos_record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO chaos_transitions (task_id, old_status, new_status, fence) VALUES (NEW.id, NULL, NEW.status, NEW.fence);
    ELSIF OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO chaos_transitions (task_id, old_status, new_status, fence) VALUES (NEW.id, OLD.status, NEW.status, NEW.fence);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chaos_record_transition
    AFTER INSERT OR UPDATE OF status ON taskflow_tasks
    FOR EACH ROW EXECUTE FUNCTION chaos_record_transition();
