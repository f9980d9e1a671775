-- Tenants, API keys, jobs and their events: the queue lives here.

CREATE TABLE tenants (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored; the key itself is shown once.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    key_hash    bytea NOT NULL UNIQUE,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE jobs (
    id                text PRIMARY KEY,
    -- Insertion order, the pagination cursor (ids are random).
    seq               bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id         text NOT NULL REFERENCES tenants(id),
    type              text NOT NULL,
    status            text NOT NULL DEFAULT 'queued'
                      CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    params            jsonb NOT NULL,
    metadata          jsonb,
    result            jsonb,
    error             text,
    progress          double precision NOT NULL DEFAULT 0,
    priority          integer NOT NULL DEFAULT 0,
    attempts          integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
    parent_id         text REFERENCES jobs(id),
    lease_owner       text,
    lease_expires_at  timestamptz,
    run_after         timestamptz NOT NULL DEFAULT now(),
    cancel_requested  boolean NOT NULL DEFAULT false,
    checkpoint        jsonb,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at        timestamptz,
    finished_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The claim query walks this index: queued jobs by priority, then age.
CREATE INDEX jobs_claim ON jobs (priority DESC, seq) WHERE status = 'queued';
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_tenant_seq ON jobs (tenant_id, seq DESC);
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;

-- Idempotency-Key → job, kept at least 24 hours (the rescuer prunes older rows).
CREATE TABLE idempotency_keys (
    tenant_id     text NOT NULL REFERENCES tenants(id),
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    job_id        text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE job_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX job_events_job ON job_events (job_id, id);
