-- The outbox is a queue: each row lives a few milliseconds, from its insert to the relay's delete, so the
-- table is mostly dead tuples between two vacuums, and every relay wake reads through them (the pkey's
-- index entries of deleted rows until vacuum drops them). The default trigger, 50 dead tuples + 20 % of
-- the table's estimated size, scales with an estimate taken whenever the table happened to hold a backlog,
-- and its cost delay throttles the vacuum that should catch up after one. A fixed threshold vacuums the
-- queue at every autovacuum round once some hundreds of rows went through it, whatever its past size, and
-- without pausing: the live part is small, a vacuum of it is cheap.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_cost_delay = 0
);
