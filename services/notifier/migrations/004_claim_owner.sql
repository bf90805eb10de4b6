-- The database session that claimed a delivery (its backend pid and start time). A row left `sending` by a
-- session that no longer exists was orphaned by a dead process: it is taken back at once instead of after
-- its lease (the lease stays the backstop). Rows claimed before this migration have no owner: lease only.
ALTER TABLE delivery
    ADD COLUMN owner_pid     integer,
    ADD COLUMN owner_started timestamptz;
