-- "Sortie de trêve" reminders (docs/domain.md §7): one row per procedure and end of trêve, written
-- in the transaction of its decision and outbox row, so a procedure is reminded once whatever the replicas
-- and restarts. decision_id is NULL when there was nobody to remind (no structure held the procedure).
CREATE TABLE truce_reminder (
    procedure_id uuid        NOT NULL,
    truce_end    date        NOT NULL,
    decision_id  uuid,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (procedure_id, truce_end)
);
