-- The jobs table is a queue: rows change state quickly and the claim scan walks
-- the head of jobs_claim, where claimed rows leave dead index entries. Vacuum it
-- early and without throttling so that the scan stays short under load.
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                      autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);
