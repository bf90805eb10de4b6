-- delivery and alert keep their history (sent deliveries, expanded alerts) but every row changes state a few
-- times in its first seconds: pending → sending → sent, AWAITING_CONTACTS → EXPANDED. state is in the
-- predicates of their partial indexes (delivery_due, delivery_leased, delivery_sending_procedure,
-- alert_awaiting), so no such update is HOT: each leaves a dead entry in those small indexes, which the
-- claim and the planner read at every wake until a vacuum removes it (a bitmap scan never marks one dead).
-- The default trigger, 50 dead tuples + 20 % of the table, waits longer and longer as the history grows:
-- after 100,000 deliveries, some 20,000 dead entries. A fixed threshold vacuums them every ~1,000 rows sent
-- (delivery: about two dead tuples per row; alert: one or two), whatever the history. The heap part is cheap (the
-- visibility map skips the settled history); the cost delay is left at its default because, unlike the
-- outbox, these tables' indexes over the whole history are scanned by every vacuum that cleans indexes.
-- Analysed after 5 % of the table changed (default 10 %): statistics taken during a backlog, when most
-- deliveries were pending, are replaced sooner.
ALTER TABLE delivery SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE alert SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05
);
