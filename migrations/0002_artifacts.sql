-- Files that jobs produce, stored under REFINERY_DATA_DIR/artifacts/<tenant>/<id>.
CREATE TABLE artifacts (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants(id),
    job_id        text REFERENCES jobs(id) ON DELETE SET NULL,
    kind          text NOT NULL,
    name          text NOT NULL,
    bytes         bigint NOT NULL,
    sha256        text NOT NULL,
    content_type  text NOT NULL DEFAULT 'application/octet-stream',
    path          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_job ON artifacts (job_id, created_at);
CREATE INDEX artifacts_tenant ON artifacts (tenant_id, created_at DESC);
