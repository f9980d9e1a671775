-- Every change to a job row is numbered and announced, so that an API process
-- may serve job objects from memory (service/job_cache.h): `version` counts the
-- row's updates (the row lock orders them, so a higher version is always the
-- later state), and NOTIFY refinery_job carries the id of each row changed or
-- deleted. A trigger, so that no writer can forget: the notification is sent
-- at the commit of the change, with it, or not at all.
ALTER TABLE jobs ADD COLUMN version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION refinery_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.version := OLD.version + 1;
        PERFORM pg_notify('refinery_job', NEW.id);
        RETURN NEW;
    END IF;
    PERFORM pg_notify('refinery_job', OLD.id);
    RETURN OLD;
END $$;

CREATE TRIGGER jobs_version BEFORE UPDATE OR DELETE ON jobs FOR EACH ROW
    EXECUTE FUNCTION refinery_job_changed();
