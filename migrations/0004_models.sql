-- Registered checkpoint folders (and, later, the models jobs produce).
CREATE TABLE models (
    id             text PRIMARY KEY,
    tenant_id      text NOT NULL REFERENCES tenants(id),
    name           text NOT NULL,
    path           text NOT NULL,
    architecture   text NOT NULL,
    parameters     bigint NOT NULL,
    dtype          text NOT NULL,
    bytes          bigint NOT NULL,
    quantization   jsonb,
    source_job_id  text REFERENCES jobs(id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX models_tenant ON models (tenant_id, created_at DESC, id);
