-- Indexes for statements that must stay lookups as the tables grow (docs/orientation.md, "Statements as the
-- tables grow").
--
-- A procedure's assignments in creation order: the trêve reminders read its latest one's correlation id. With
-- only (procedure_id), the planner walked assignment_created backwards over the whole table for each due
-- procedure (seconds per sweep on 60,000 assignments); the new key serves every lookup by procedure as well.
CREATE INDEX assignment_by_procedure_created ON assignment (procedure_id, created_at);
DROP INDEX assignment_by_procedure;
-- The same index as 004's assignment_open: one less to write on every assignment opened or closed.
DROP INDEX assignment_open_since;
-- The trêve reminders' sweep: the decisions whose earliest expulsion date is the end of the trêve, instead of
-- the latest decision of every procedure ever decided.
CREATE INDEX decision_earliest_expulsion ON decision ((result ->> 'earliest_expulsion_date'));
