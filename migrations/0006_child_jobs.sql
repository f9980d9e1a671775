-- Jobs that run other jobs (DESIGN.md "Jobs that run other jobs"). A parent
-- submits children (parent_id, and a child_key unique per parent, so that a
-- rescued parent finds the child it already made instead of making another),
-- then parks in status 'waiting', holding no worker and no lease. When one of
-- its children ends, a wake row is written in the child's own transaction;
-- the reconciler (service/queue.c rf_queue_reconcile, run by every process's
-- listener on NOTIFY refinery_wake and on its rescue tick as the fallback)
-- re-queues the parent, which is claimed again and resumes from its state.
--
-- No statement here locks a parent row and one of its children's rows
-- together: a child ending only inserts a wake row, and the reconciler locks
-- parents and children in separate statements. So the paths that finish
-- children (finish, retry, rescue, cancel) cannot deadlock with the ones that
-- touch parents (park, submit, cancel, wake).

ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled'));

ALTER TABLE jobs
    ADD COLUMN child_key text,
    ADD COLUMN has_children boolean NOT NULL DEFAULT false,
    -- a waiting job asked to be re-queued at this time even if no child ends
    ADD COLUMN wake_at timestamptz;

CREATE UNIQUE INDEX jobs_child_key ON jobs (parent_id, child_key) WHERE child_key IS NOT NULL;
CREATE INDEX jobs_waiting ON jobs (seq) WHERE status = 'waiting';
CREATE INDEX jobs_open_children ON jobs (parent_id)
    WHERE parent_id IS NOT NULL AND status IN ('queued', 'running', 'waiting');

-- "A child of parent_id ended": consumed when the parent reads its children,
-- parks, or is woken.
CREATE TABLE job_wakes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id   text NOT NULL,
    child_id    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_wakes_parent ON job_wakes (parent_id);

CREATE FUNCTION refinery_child_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_wakes (parent_id, child_id) VALUES (NEW.parent_id, NEW.id);
    PERFORM pg_notify('refinery_wake', NEW.parent_id);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_child_ended AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.parent_id IS NOT NULL AND NEW.status IN ('succeeded', 'failed', 'cancelled')
          AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION refinery_child_ended();

-- A job is cancelled only once its children have stopped: until then a cancel
-- (by the API, a runner that stopped, or the rescuer) leaves it waiting, with
-- cancel_requested set, and the reconciler ends it when the last child ends.
CREATE FUNCTION refinery_cancel_waits() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = NEW.id
               AND c.status IN ('queued', 'running', 'waiting')) THEN
        NEW.status := 'waiting';
        NEW.cancel_requested := true;
        NEW.finished_at := NULL;
        NEW.lease_owner := NULL;
        NEW.lease_expires_at := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER jobs_cancel_waits BEFORE UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.status = 'cancelled' AND OLD.status <> 'cancelled' AND NEW.has_children)
    EXECUTE FUNCTION refinery_cancel_waits();
