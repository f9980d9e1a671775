-- Studies: ask/tell optimisation (DESIGN.md "Studies"; service/studies.c).
-- An ask takes the study's row lock (UPDATE … next_number) and reads the
-- trials in the same transaction, so concurrent asks get distinct numbers and
-- each sees the trials asked before it (running ones as pending).

CREATE TABLE studies (
    id           text PRIMARY KEY,
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id    text NOT NULL REFERENCES tenants(id),
    name         text NOT NULL,
    -- as engine/hpo/study.h normalises it: direction, space, sampler, pruner, …
    -- json, not jsonb: the space's dimensions keep their order, which the
    -- samplers depend on (the same seed and tells give the same asks)
    definition   json NOT NULL,
    next_number  integer NOT NULL DEFAULT 0,
    -- the job that made it (an hpo job), and the key that makes creation idempotent
    job_id       text REFERENCES jobs(id) ON DELETE SET NULL,
    create_key   text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX studies_key ON studies (tenant_id, create_key) WHERE create_key IS NOT NULL;
CREATE INDEX studies_tenant ON studies (tenant_id, seq DESC);

CREATE TABLE study_trials (
    study_id     text NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
    number       integer NOT NULL,
    state        text NOT NULL DEFAULT 'running'
                 CHECK (state IN ('running', 'complete', 'pruned', 'failed')),
    params       json NOT NULL, -- in the space's order, as asked
    value        double precision,
    -- the job that evaluates it (an hpo trial's train job)
    job_id       text REFERENCES jobs(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at  timestamptz,
    PRIMARY KEY (study_id, number)
);

-- Intermediate values (report): one per step, the first one kept (as Optuna).
CREATE TABLE study_reports (
    study_id  text NOT NULL,
    number    integer NOT NULL,
    step      bigint NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (study_id, number, step),
    FOREIGN KEY (study_id, number) REFERENCES study_trials (study_id, number) ON DELETE CASCADE
);

-- A trial's job (metadata {"study_id", "trial"}, on a study with a
-- job_report: an hpo trial) that ends failed or cancelled without its trial
-- having been told — a run that failed for good, a queued trial cancelled with
-- its hpo job — fails its trial, so that no trial is left running for ever.
-- (A pruned trial was told already; a success is told by its worker.)
CREATE FUNCTION refinery_trial_job_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE study_trials t SET state = 'failed', finished_at = clock_timestamp(),
           job_id = coalesce(t.job_id, NEW.id)
      FROM studies s
     WHERE s.id = NEW.metadata->>'study_id' AND s.tenant_id = NEW.tenant_id
       AND s.definition->'job_report' IS NOT NULL
       AND t.study_id = s.id AND t.number::text = NEW.metadata->>'trial'
       AND t.state = 'running';
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_trial_ended AFTER UPDATE OF status ON jobs FOR EACH ROW
    WHEN (NEW.metadata ? 'study_id' AND NEW.status IN ('failed', 'cancelled')
          AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled'))
    EXECUTE FUNCTION refinery_trial_job_ended();
