-- The relay deletes rows once the broker acknowledged them, instead of stamping published_at: Kafka keeps
-- what was published, the table holds only what is pending (it no longer grows without bound), and a
-- delete costs far less than rewriting a row of several kB to set one column.
DELETE FROM outbox WHERE published_at IS NOT NULL;
DROP INDEX outbox_unpublished;
ALTER TABLE outbox DROP COLUMN published_at;
