-- jobs.seq is an identity column (GENERATED ALWAYS: no writer sets it), so its
-- values are unique by construction, and no query looks a job up by seq alone
-- (listing walks jobs_tenant_seq, claiming jobs_claim). Its UNIQUE index only
-- cost every new row version of a job (created, claimed, finished: a status
-- change is never a HOT update) one more index insert.
ALTER TABLE jobs DROP CONSTRAINT jobs_seq_key;
