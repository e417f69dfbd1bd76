-- CHECK tasks.attempt >= 0, added NOT VALID then validated: writers wait only for the catalog change
-- dbops:risk medium
-- dbops:estimated-duration 1m
-- dbops:requires 20250527100000
-- dbops:zero-downtime
-- dbops:transaction off

-- migrate:up
-- Two transactions on purpose: in one, ADD CONSTRAINT's ACCESS EXCLUSIVE lock would be held through
-- the validating scan. On its own, VALIDATE takes only SHARE UPDATE EXCLUSIVE (reads and writes go on).
ALTER TABLE tasks ADD CONSTRAINT tasks_attempt_positive CHECK (attempt >= 0) NOT VALID;
ALTER TABLE tasks VALIDATE CONSTRAINT tasks_attempt_positive;

-- migrate:down
ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_attempt_positive;
