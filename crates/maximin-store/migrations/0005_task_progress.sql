-- How far a running task has come (percent), reported by its runner with
-- each lease renewal and shown by the task's query.
ALTER TABLE tasks ADD COLUMN progress INTEGER NOT NULL DEFAULT 0;
