-- One rule for names (README "Names and objects in use"): a model's or a
-- dataset's name is unique within its tenant, and a job may name either by id
-- or by name. Datasets of the same name stored before this rule keep the
-- oldest under its name; the others get their id appended.
UPDATE datasets d SET name = d.name || '-' || d.id
 WHERE EXISTS (SELECT 1 FROM datasets o WHERE o.tenant_id = d.tenant_id AND o.name = d.name
                AND (o.created_at, o.id) < (d.created_at, d.id));
ALTER TABLE datasets ADD CONSTRAINT datasets_tenant_name UNIQUE (tenant_id, name);

-- Rows of the train split that have an answer to learn from (a response, or
-- an assistant turn): POST /v1/jobs refuses a train or teacher-cache job on a
-- dataset without any (multiple-choice rows alone, say). NULL: not counted
-- (stored before this column), the check is left to the job.
ALTER TABLE datasets ADD COLUMN train_answers bigint;
