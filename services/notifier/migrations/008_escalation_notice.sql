-- An assignment left OUVERTE (orientation's assignment.escalation): the reminder to its structure, or the
-- alert to the CCAPEX secretariat naming the structure (its référentiel name) that has not answered.
ALTER TABLE alert
    ADD COLUMN escalation text,          -- STRUCTURE_REMINDER | SECRETARIAT_ALERT
    ADD COLUMN escalation_days integer,  -- working days waited
    ADD COLUMN silent_structure text;
