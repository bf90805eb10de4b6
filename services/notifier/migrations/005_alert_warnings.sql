-- The legal warnings an alert's structure is told (codes of schemas/warnings.py, from orientation.decided
-- schema 1.1): rendered as their sentences; empty for alerts recorded before.
ALTER TABLE alert
    ADD COLUMN warnings jsonb NOT NULL DEFAULT '[]';
