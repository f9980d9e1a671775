-- Datasets: JSONL files validated line by line at upload (or written by jobs).
CREATE TABLE datasets (
    id               text PRIMARY KEY,
    tenant_id        text NOT NULL REFERENCES tenants(id),
    name             text NOT NULL,
    schema           text NOT NULL CHECK (schema IN ('prompt_response', 'messages')),
    rows_train       bigint NOT NULL DEFAULT 0,
    rows_validation  bigint NOT NULL DEFAULT 0,
    rows_test        bigint NOT NULL DEFAULT 0,
    multiple_choice  bigint NOT NULL DEFAULT 0,
    bytes            bigint NOT NULL,
    sha256           text NOT NULL,
    path             text NOT NULL,
    source_job_id    text REFERENCES jobs(id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX datasets_tenant ON datasets (tenant_id, created_at DESC, id);
