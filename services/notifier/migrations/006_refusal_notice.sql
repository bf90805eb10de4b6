-- A partner's refusal told to the CCAPEX secretariat (the default referent): the alert remembers which
-- structure refused (its name in the référentiel) and the refusal's code; both NULL for other alerts.
ALTER TABLE alert
    ADD COLUMN refused_by text,
    ADD COLUMN refusal_reason text;
-- A refusal finds the alert its assignment was announced with (its reference, stage, commune, urgency).
CREATE INDEX alert_assignment ON alert (assignment_id) WHERE assignment_id IS NOT NULL;
