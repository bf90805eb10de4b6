-- Escalation of assignments left OUVERTE (docs/orientation.md): one row per assignment and step
-- (STRUCTURE_REMINDER, then SECRETARIAT_ALERT), written in the transaction of its outbox row, so each step
-- is published once whatever the replicas and restarts. sent_on is the service clock's day (Europe/Paris)
-- of the step: the secretariat's working days are counted from the reminder's.
CREATE TABLE assignment_escalation (
    assignment_id uuid        NOT NULL REFERENCES assignment,
    step          text        NOT NULL,
    sent_on       date        NOT NULL,
    event_id      uuid        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assignment_id, step)
);
CREATE INDEX assignment_open ON assignment (created_at) WHERE status = 'OUVERTE';
